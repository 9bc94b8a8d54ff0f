"""Protobuf messages → JSON Schema (2020-12, OpenAPI 3.1's dialect) per the proto3 JSON mapping.

One ``SchemaBuilder`` per document: ``ref(message)`` returns a ``$ref`` and puts
the message's schema (and every type it reaches) into ``components``, keyed by
full name; a recursive message refers to its own component, so building ends.
Field names follow ``json.use_proto_names``, enums ``json.use_enum_numbers``
(contract §4).  The mapping, by field kind::

    int32, sint32, sfixed32     integer (int32)       uint32, fixed32  integer (uint32)
    int64, sint64, sfixed64     string "^-?[0-9]+$"   uint64, fixed64  string "^[0-9]+$"
    float, double               number, or "NaN" / "Infinity" / "-Infinity"
    bytes                       string, contentEncoding base64
    enum                        its value names (or numbers)
    repeated / map              array / object with additionalProperties
    Timestamp, Duration         string date-time / "1.5s";   FieldMask  "a,b.c"
    Struct / Value / ListValue  object / any JSON value / array
    Any                         object with "@type";         Empty  {}
    wrappers                    the wrapped type, or null

Input is laxer than these schemas say (numbers for 64-bit integers, strings for
any number, enum numbers, both field names, null for unset): they describe what
the gateway writes, which it also reads.  ``Comments`` holds the leading
comments of a descriptor set compiled with source info (``protoc
--include_source_info``, ``buf build``), used as descriptions.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from transcoder.descriptors import is_map

Schema = dict[str, Any]

COMPONENTS = "#/components/schemas/"

_T = FieldDescriptor
INT64_PATTERN = "^-?[0-9]+$"
UINT64_PATTERN = "^[0-9]+$"
DURATION_PATTERN = "^-?[0-9]+(\\.[0-9]{1,9})?s$"
FLOAT_SPECIALS = ("NaN", "Infinity", "-Infinity")

_INT32 = {"type": "integer", "format": "int32"}
_UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
# Examples keep Swagger UI from inventing 70-digit strings that match the patterns.
_INT64 = {"type": "string", "format": "int64", "pattern": INT64_PATTERN, "examples": ["0"]}
_UINT64 = {"type": "string", "format": "uint64", "pattern": UINT64_PATTERN, "examples": ["0"]}
_BYTES = {"type": "string", "contentEncoding": "base64"}

_SCALARS: dict[int, Schema] = {
    _T.TYPE_INT32: _INT32,
    _T.TYPE_SINT32: _INT32,
    _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32,
    _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64,
    _T.TYPE_FIXED64: _UINT64,
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: _BYTES,
}


def _float(number_format: str) -> Schema:
    return {
        "anyOf": [
            {"type": "number", "format": number_format},
            {"type": "string", "enum": list(FLOAT_SPECIALS)},
        ]
    }


def _nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null (a wrapper: null means unset)."""
    if "anyOf" in schema:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


_TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339, e.g. 2024-05-01T12:00:00Z (up to nanoseconds).",
}
_DURATION: Schema = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "examples": ["1.5s"],
    "description": "Seconds with up to nine fraction digits and an 's', e.g. 1.5s.",
}
_FIELD_MASK: Schema = {
    "type": "string",
    "description": "Comma-separated lowerCamelCase field paths, e.g. title,author.name.",
}

# The well-known types whose JSON form is not an object of their fields.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": _TIMESTAMP,
    "google.protobuf.Duration": _DURATION,
    "google.protobuf.FieldMask": _FIELD_MASK,
    "google.protobuf.Struct": {
        "type": "object",
        "additionalProperties": True,
        "description": "Any JSON object.",
    },
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {
        "type": "array",
        "items": True,
        "description": "Any JSON array.",
    },
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {
            "@type": {
                "type": "string",
                "description": "The type URL, e.g. type.googleapis.com/google.rpc.ErrorInfo.",
            }
        },
        "additionalProperties": True,
        "description": (
            "A message of the type @type names: its JSON fields beside @type, or, for a "
            'well-known type, its JSON form under "value".'
        ),
    },
    "google.protobuf.Empty": {"type": "object", "description": "Always {}."},
    "google.protobuf.DoubleValue": _nullable(_float("double")),
    "google.protobuf.FloatValue": _nullable(_float("float")),
    "google.protobuf.Int64Value": _nullable(_INT64),
    "google.protobuf.UInt64Value": _nullable(_UINT64),
    "google.protobuf.Int32Value": _nullable(_INT32),
    "google.protobuf.UInt32Value": _nullable(_UINT32),
    "google.protobuf.BoolValue": _nullable({"type": "boolean"}),
    "google.protobuf.StringValue": _nullable({"type": "string"}),
    "google.protobuf.BytesValue": _nullable(_BYTES),
}

# Well-known types a query parameter or path variable can set from text (contract §3).
TEXT_FORMS: dict[str, Schema] = {
    "google.protobuf.Timestamp": _TIMESTAMP,
    "google.protobuf.Duration": _DURATION,
    "google.protobuf.FieldMask": _FIELD_MASK,
    "google.protobuf.DoubleValue": _float("double"),
    "google.protobuf.FloatValue": _float("float"),
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
    "google.protobuf.Int32Value": _INT32,
    "google.protobuf.UInt32Value": _UINT32,
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": _BYTES,
}

_NULL_VALUE = "google.protobuf.NullValue"


def map_schema(key: FieldDescriptor, value: Schema) -> Schema:
    """A map as a JSON object: keys are strings, so integer and bool keys get a pattern."""
    schema: Schema = {"type": "object", "additionalProperties": value}
    if key.type == _T.TYPE_BOOL:
        schema["propertyNames"] = {"enum": ["true", "false"]}
    elif key.type in (_T.TYPE_UINT32, _T.TYPE_FIXED32, _T.TYPE_UINT64, _T.TYPE_FIXED64):
        schema["propertyNames"] = {"pattern": UINT64_PATTERN}
    elif key.type != _T.TYPE_STRING:
        schema["propertyNames"] = {"pattern": INT64_PATTERN}
    return schema


class Comments:
    """Leading comments by name: ``pkg.Msg``, ``pkg.Msg.field``, ``pkg.Enum.V``, ``pkg.Svc.Rpc``."""

    def __init__(self, by_name: dict[str, str] | None = None) -> None:
        self.by_name = by_name or {}

    @classmethod
    def from_files(cls, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> Comments:
        by_name: dict[str, str] = {}
        for file in files:
            names = _element_names(file)
            for location in file.source_code_info.location:
                name = names.get(tuple(location.path))
                text = _clean(location.leading_comments)
                if name is not None and text:
                    by_name.setdefault(name, text)
        return cls(by_name)

    def get(self, name: str) -> str | None:
        return self.by_name.get(name)


def _clean(comment: str) -> str:
    lines = [line.rstrip() for line in comment.splitlines()]
    return textwrap.dedent("\n".join(lines)).strip()


# FileDescriptorProto / DescriptorProto / ... field numbers, as source-info paths use them.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def _element_names(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Source-info path → the element's name (see ``Comments``)."""
    names: dict[tuple[int, ...], str] = {}
    prefix = f"{file.package}." if file.package else ""

    def enum(path: tuple[int, ...], proto: descriptor_pb2.EnumDescriptorProto, name: str) -> None:
        names[path] = name
        for i, value in enumerate(proto.value):
            names[(*path, _ENUM_VALUE, i)] = f"{name}.{value.name}"

    def message(path: tuple[int, ...], proto: descriptor_pb2.DescriptorProto, name: str) -> None:
        names[path] = name
        for i, field in enumerate(proto.field):
            names[(*path, _MESSAGE_FIELD, i)] = f"{name}.{field.name}"
        for i, oneof in enumerate(proto.oneof_decl):
            names[(*path, _MESSAGE_ONEOF, i)] = f"{name}.{oneof.name}"
        for i, nested in enumerate(proto.nested_type):
            message((*path, _MESSAGE_NESTED, i), nested, f"{name}.{nested.name}")
        for i, nested_enum in enumerate(proto.enum_type):
            enum((*path, _MESSAGE_ENUM, i), nested_enum, f"{name}.{nested_enum.name}")

    for i, proto in enumerate(file.message_type):
        message((_FILE_MESSAGE, i), proto, prefix + proto.name)
    for i, enum_proto in enumerate(file.enum_type):
        enum((_FILE_ENUM, i), enum_proto, prefix + enum_proto.name)
    for i, service in enumerate(file.service):
        names[(_FILE_SERVICE, i)] = prefix + service.name
        for j, method in enumerate(service.method):
            names[(_FILE_SERVICE, i, _SERVICE_METHOD, j)] = f"{prefix}{service.name}.{method.name}"
    return names


@dataclass(frozen=True, slots=True)
class SchemaOptions:
    use_proto_names: bool = False
    use_enum_numbers: bool = False


class SchemaBuilder:
    """Builds component schemas on demand; ``components`` maps full names to schemas."""

    def __init__(self, options: SchemaOptions, comments: Comments | None = None) -> None:
        self.options = options
        self.comments = comments or Comments()
        self.components: dict[str, Schema] = {}
        self._optional: dict[str, frozenset[str]] = {}

    def field_name(self, field: FieldDescriptor) -> str:
        return field.name if self.options.use_proto_names else field.json_name

    def ref(self, descriptor: Descriptor | EnumDescriptor) -> Schema:
        """``{"$ref": ...}`` to the type's component, built (with what it reaches) if new."""
        name = descriptor.full_name
        if name not in self.components:
            schema: Schema = {}
            self.components[name] = schema  # before the fields: a recursive field finds it
            if isinstance(descriptor, Descriptor):
                schema.update(self._message(descriptor))
            else:
                schema.update(self._enum(descriptor))
        return {"$ref": COMPONENTS + name}

    def field_schema(self, field: FieldDescriptor, *, describe: bool = True) -> Schema:
        """The JSON value of ``field`` (repeated and map fields included)."""
        if is_map(field):
            entry = field.message_type
            assert entry is not None
            value = self.value_schema(entry.fields_by_name["value"])
            schema = map_schema(entry.fields_by_name["key"], value)
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value_schema(field)}
        else:
            schema = dict(self.value_schema(field))
        if describe:
            self._describe_field(schema, field)
        return schema

    def value_schema(self, field: FieldDescriptor) -> Schema:
        """One value of ``field``: a scalar's schema or a ``$ref`` (repeated ignored)."""
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return self.ref(field.enum_type)
        if field.type == _T.TYPE_DOUBLE:
            return _float("double")
        if field.type == _T.TYPE_FLOAT:
            return _float("float")
        return dict(_SCALARS[field.type])

    def text_schema(self, field: FieldDescriptor) -> Schema | None:
        """One value of ``field`` as a path variable or query parameter, or None if it has none.

        Scalars and enums as in JSON; the well-known types of ``TEXT_FORMS`` by their
        string form (contract §3).
        """
        if field.message_type is None:
            return self.value_schema(field)
        text = TEXT_FORMS.get(field.message_type.full_name)
        return None if text is None else dict(text)

    def description(self, name: str) -> str | None:
        return self.comments.get(name)

    def oneof_name(self, field: FieldDescriptor) -> str | None:
        """The field's oneof, unless that is the synthetic one of a proto3 ``optional``."""
        oneof = field.containing_oneof
        if oneof is None:
            return None
        message = _owner(field)
        optional = self._optional.get(message.full_name)
        if optional is None:
            optional = self._optional[message.full_name] = _proto3_optional(message)
        name: str = oneof.name
        return None if field.name in optional else name

    def field_description(self, field: FieldDescriptor) -> str | None:
        """The field's leading comment, and the oneof it belongs to."""
        parts = []
        comment = self.comments.get(f"{_owner(field).full_name}.{field.name}")
        if comment:
            parts.append(comment)
        oneof = self.oneof_name(field)
        if oneof is not None:
            parts.append(f"Member of oneof `{oneof}`: at most one of its fields is set.")
        return "\n\n".join(parts) or None

    def _describe_field(self, schema: Schema, field: FieldDescriptor) -> None:
        description = self.field_description(field)
        if description:
            schema["description"] = description
        if field.GetOptions().deprecated:
            schema["deprecated"] = True

    def _message(self, descriptor: Descriptor) -> Schema:
        known = WELL_KNOWN.get(descriptor.full_name)
        if known is not None:
            return dict(known)
        properties = {self.field_name(f): self.field_schema(f) for f in descriptor.fields}
        schema: Schema = {"type": "object", "properties": properties}
        required = [self.field_name(f) for f in descriptor.fields if f.is_required]
        if required:
            schema["required"] = required
        parts = []
        comment = self.comments.get(descriptor.full_name)
        if comment:
            parts.append(comment)
        for oneof in descriptor.oneofs:
            if self.oneof_name(oneof.fields[0]) is None:
                continue
            members = ", ".join(f"`{self.field_name(f)}`" for f in oneof.fields)
            parts.append(f"Oneof `{oneof.name}`: at most one of {members}.")
        if parts:
            schema["description"] = "\n\n".join(parts)
        if descriptor.GetOptions().deprecated:
            schema["deprecated"] = True
        return schema

    def _enum(self, descriptor: EnumDescriptor) -> Schema:
        if descriptor.full_name == _NULL_VALUE:
            return {"type": "null"}
        lines = []
        for value in descriptor.values:
            comment = self.comments.get(f"{descriptor.full_name}.{value.name}")
            label = (
                f"`{value.number}`: {value.name}"
                if self.options.use_enum_numbers
                else f"`{value.name}` ({value.number})"
            )
            lines.append(f"- {label}" + (f": {' '.join(comment.split())}" if comment else ""))
        schema: Schema
        if self.options.use_enum_numbers:
            numbers = list(dict.fromkeys(v.number for v in descriptor.values))
            schema = {"type": "integer", "format": "int32", "enum": numbers}
        else:
            schema = {"type": "string", "enum": [v.name for v in descriptor.values]}
        comment = self.comments.get(descriptor.full_name)
        schema["description"] = "\n\n".join(filter(None, [comment, "\n".join(lines)]))
        return schema


def _owner(field: FieldDescriptor) -> Descriptor:
    message = field.containing_type
    assert message is not None  # a message's own field, not an extension
    return message


def _proto3_optional(descriptor: Descriptor) -> frozenset[str]:
    """The message's proto3 ``optional`` fields: each sits alone in a synthetic oneof."""
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return frozenset(f.name for f in proto.field if f.proto3_optional)
