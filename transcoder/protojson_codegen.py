"""Per-type decode and encode functions written as Python source, for ``Codecs`` to ``exec``."""

from __future__ import annotations

import keyword
import math
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from transcoder.descriptors import is_map
from transcoder.field_json import (
    _b64,
    _ConflictError,
    _double,
    _EnumNames,
    _float,
    _Invalid,
    _object,
    _too_deep,
)
from transcoder.wkt_json import _NULL_VALUE, _VALUE

if TYPE_CHECKING:
    from transcoder.message_codec import MessageCodec
    from transcoder.protojson import JsonOptions

F = FieldDescriptor


def _message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def _enum_type(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None
    return field.enum_type


def _map_fields(field: FieldDescriptor) -> tuple[FieldDescriptor, FieldDescriptor]:
    entry = _message_type(field)
    return entry.fields_by_name["key"], entry.fields_by_name["value"]


def _held_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type a field holds (a map's value type for maps), if any."""
    if is_map(field):
        field = _map_fields(field)[1]
    return field.message_type


def _attribute(owner: str, name: str) -> str:
    return f"getattr({owner}, {name!r})" if keyword.iskeyword(name) else f"{owner}.{name}"


def _identifier(full_name: str) -> str:
    """A distinct identifier for a full name (``a.b_c`` and ``a_b.c`` must not collide)."""
    return full_name.replace("_", "__").replace(".", "_")


_ENCODE_HELPERS: Final[dict[str, Any]] = {
    "_double": _double,
    "_float": _float,
    "_b64": _b64,
    "_null": lambda value: None,
    "_copysign": math.copysign,
}


def _element_encoder(field: FieldDescriptor, codec: MessageCodec) -> str | None:
    """The name, in the codec's namespace, of the function for one value of ``field``."""
    cpp = field.cpp_type
    if cpp in (F.CPPTYPE_INT64, F.CPPTYPE_UINT64):
        return "str"
    if cpp == F.CPPTYPE_DOUBLE:
        return "_double"
    if cpp == F.CPPTYPE_FLOAT:
        return "_float"
    if field.type == F.TYPE_BYTES:
        return "_b64"
    namespace = codec._namespace
    if cpp == F.CPPTYPE_ENUM:
        enum = _enum_type(field)
        if codec._codecs.options.use_enum_numbers:
            return None
        if enum.full_name == _NULL_VALUE:
            return "_null"
        name = "_enum_" + _identifier(enum.full_name)
        if name not in namespace:
            namespace[name] = _EnumNames((v.number, v.name) for v in enum.values).__getitem__
        return name
    if cpp == F.CPPTYPE_MESSAGE:
        full_name = _message_type(field).full_name
        name = "_msg_" + _identifier(full_name)
        codec._links[name] = full_name  # the function is put in when the codecs are linked
        return name
    return None


def _value_expression(field: FieldDescriptor, source: str, codec: MessageCodec) -> str:
    """A Python expression for the JSON form of ``field`` read from ``source``."""
    if is_map(field):
        key_field, value_field = _map_fields(field)
        value_function = _element_encoder(value_field, codec)
        key = {F.CPPTYPE_BOOL: "('true' if k else 'false')", F.CPPTYPE_STRING: "k"}.get(
            key_field.cpp_type, "str(k)"
        )
        if key == "k" and value_function is None:
            return f"dict({source})"
        value = "v" if value_function is None else f"{value_function}(v)"
        return f"{{{key}: {value} for k, v in {source}.items()}}"
    function = _element_encoder(field, codec)
    if field.is_repeated:
        return f"list({source})" if function is None else f"list(map({function}, {source}))"
    return source if function is None else f"{function}({source})"


def _encoder_source(codec: MessageCodec) -> str:
    """``def encode(m)`` for a regular message: fields in declaration order."""
    options = codec._codecs.options
    literal: list[str] = []  # leading fields that are always written go into the literal
    lines: list[str] = []
    for field in codec.descriptor.fields:
        key = field.name if options.use_proto_names else field.json_name
        read = _attribute("m", field.name)
        if field.has_presence:
            lines.append(f"    if m.HasField({field.name!r}):")
            lines.append(f"        d[{key!r}] = {_value_expression(field, read, codec)}")
        elif options.emit_unpopulated:
            expression = _value_expression(field, read, codec)
            if lines:
                lines.append(f"    d[{key!r}] = {expression}")
            else:
                literal.append(f"{key!r}: {expression}")
        else:
            floating = field.cpp_type in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT)
            is_set = "v or _copysign(1.0, v) < 0.0" if floating and not field.is_repeated else "v"
            lines.append(f"    v = {read}")
            lines.append(f"    if {is_set}:")  # -0.0 is set: json_format lists it
            lines.append(f"        d[{key!r}] = {_value_expression(field, 'v', codec)}")
    return "\n".join(
        ["def encode(m):", f"    d = {{{', '.join(literal)}}}", *lines, "    return d"]
    )


class _SAFE:  # a marker: the type of no JSON value
    """Marks fields whose JSON values the constructor checks exactly as we would."""


def _raw_type(field: FieldDescriptor) -> type | None:
    """The JSON type a field's value may keep unconverted in the fast pass, if any.

    The constructor checks singular strings, 32-bit integers and open enums as
    strictly as we do (``_SAFE``: no check at all).  For the rest only the type is
    ours to check: the constructor would take a string as a list of characters, an
    int for a bool, an infinity or a bool for a float.
    """
    if is_map(field):
        key, value = _map_fields(field)
        return dict if key.cpp_type == F.CPPTYPE_STRING and _raw_type(value) is _SAFE else None
    cpp = field.cpp_type
    raw: type | None = None  # floats, bytes, messages
    if cpp == F.CPPTYPE_ENUM:
        enum = _enum_type(field)
        raw = None if enum.is_closed or enum.full_name == _NULL_VALUE else _SAFE
    elif (cpp == F.CPPTYPE_STRING and field.type != F.TYPE_BYTES) or cpp in (
        F.CPPTYPE_INT32,
        F.CPPTYPE_UINT32,
    ):
        raw = _SAFE
    elif cpp in (F.CPPTYPE_INT64, F.CPPTYPE_UINT64):
        raw = int  # usually a string
    elif cpp == F.CPPTYPE_BOOL:
        raw = bool
    if field.is_repeated:
        return list if raw is _SAFE else None
    return raw


def _null_for(field: FieldDescriptor) -> Any:
    """The argument for a JSON null: unset, but Value takes null_value and NullValue 0."""
    if field.is_repeated:
        return None
    if field.message_type is not None and field.message_type.full_name == _VALUE:
        return {"null_value": 0}
    if field.enum_type is not None and field.enum_type.full_name == _NULL_VALUE:
        return 0
    return None


def _real_oneofs(descriptor: Descriptor) -> dict[str, str]:
    """Field name → oneof name, for oneofs of two or more fields (not proto3 ``optional``)."""
    members: dict[str, list[str]] = {}
    for field in descriptor.fields:
        if field.containing_oneof is not None:
            members.setdefault(field.containing_oneof.name, []).append(field.name)
    return {name: oneof for oneof, names in members.items() if len(names) > 1 for name in names}


def _decoder_source(descriptor: Descriptor, options: JsonOptions, unroll_limit: int) -> str | None:
    """``def decode(value, depth)`` → constructor kwargs, or None past ``unroll_limit`` keys.

    It copies the object, then handles each key that needs renaming, converting
    or a type check; other keys stay for the constructor to check.
    """
    oneof_of = _real_oneofs(descriptor)
    oneofs = sorted(set(oneof_of.values()))
    blocks: list[str] = []
    for field in descriptor.fields:
        name, raw, oneof = field.name, _raw_type(field), oneof_of.get(field.name)
        for key in dict.fromkeys((field.json_name, name)):
            renamed = key != name
            if raw is _SAFE and oneof is None and not renamed:
                continue
            lines = [f"if {key!r} in value:", f"    key = {key!r}", f"    item = value[{key!r}]"]
            if renamed:
                lines += [
                    f"    del kwargs[{key!r}]",
                    f"    if {name!r} in kwargs:",
                    "        raise _Conflict",
                ]
            if raw is _SAFE:
                lines.append(f"    kwargs[{name!r}] = item")
            else:
                lines += [
                    "    if item is None:",
                    f"        kwargs[{name!r}] = {_null_for(field)!r}",
                ]
                if raw is not None:
                    keep = f"kwargs[{name!r}] = item" if renamed else "pass"
                    lines += [f"    elif type(item) is {raw.__name__}:", f"        {keep}"]
                lines += [
                    "    else:",
                    f"        kwargs[{name!r}] = _convert{field.index}(item, depth)",
                ]
            if oneof is not None:
                flag = f"oneof{oneofs.index(oneof)}"
                lines += [
                    "    if item is not None:",
                    f"        if {flag}:",
                    "            raise _Conflict",
                    f"        {flag} = True",
                ]
            blocks.append("\n".join("        " + line for line in lines))
    if len(blocks) > unroll_limit:
        return None
    max_depth = options.max_depth
    head = [
        "def decode(value, depth):",
        "    if type(value) is not dict:",
        "        value = _object(value)",
        "    depth += 1",
        f"    if depth > {max_depth}:",
        f"        raise _too_deep({max_depth})",
        "    kwargs = value.copy()",
        *(
            ["    for key in value.keys() - _known:", "        del kwargs[key]"]
            if options.ignore_unknown_fields
            else []
        ),
        *(f"    oneof{i} = False" for i in range(len(oneofs))),
        "    key = ''",
        "    try:",
    ]
    tail = [
        "        pass",
        "    except _Invalid as exc:",
        "        raise exc.at('.' + key) from None",
        "    return kwargs",
    ]
    return "\n".join([*head, *blocks, *tail])


_DECODE_HELPERS: Final[dict[str, Any]] = {
    "_object": _object,
    "_too_deep": _too_deep,
    "_Invalid": _Invalid,
    "_Conflict": _ConflictError,
}
