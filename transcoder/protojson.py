"""Messages ↔ proto3 JSON under ``JsonOptions``; with its parts, the one caller of ``json_format``.

Output equals ``json_format.MessageToDict`` and input equals ``json_format.ParseDict``
(both given the private pool) wherever the contract allows, several times faster
(python-stack notes §2; ``benchmarks/bench_protojson.py``).  Each message type
gets a ``MessageCodec``, built once:

* decode normalises parsed JSON into constructor keyword arguments (proto
  names, converted values, nested dicts for nested messages), then makes the
  message with **one** C constructor call::

      {"createdMs": "5", "address": {"postalCode": "N1"}}
          → Order(created_ms=5, address={"postal_code": "N1"})

  A generated function per type touches only the keys that need it: a string,
  a 32-bit integer or an enum name passes through untouched, because the
  constructor checks those exactly as strictly as we would.  When the
  constructor refuses something anyway, a strict pass converts and checks every
  value itself so that the 400 names the JSON path ("lineItems[2].sku: ...").
* encode is one straight-line function per type, generated with ``exec``, that
  reads attributes into the dict ``orjson.dumps`` serialises.

Measured, µs per call (small 66 B / the benchmark's 1,366 B ``medium.json``):
whole decode (``loads`` + ``decode``) 2.5 / 18.2 against json_format.Parse's
13.7 / 115; encode (``dumps``) 0.8 / 10.3 against orjson.dumps(MessageToDict) 5.6 / 47.

This module builds, links and caches the codecs; the rest lives in one module per
job, and of them only ``message_codec`` calls ``json_format``:

* ``message_codec``: ``MessageCodec`` (re-exported here), JSON ↔ one message type;
  its last-resort decode is the package's one call to ``json_format``.

* ``strict_json``: ``loads``, the strict request-body parser (re-exported here,
  with ``JsonValue``), and its own measurements.
* ``field_json``: converters for scalar, enum, repeated and map values, both ways.
* ``wkt_json``: the JSON forms of Timestamp, Duration, FieldMask, Struct and Value.
* ``protojson_codegen``: the generated per-type decode and encode functions.

Deliberate divergences from ``json_format`` (contract §3, reliability b.1):

* 400 where it accepts: a field under both its JSON and proto name; integer
  strings outside JSON number syntax (full-width digits, ``"1_000"``, ``" 12"``,
  ``"+1"``, ``"012"``); float strings outside it (``"inf"``, ``" 1"``);
  booleans for numbers or enums; ``1e39`` into float and ``"1e999"`` into
  double; base64 with characters outside both alphabets; more than
  ``max_depth`` message levels (a Struct level costs two); an integer-valued
  float ``<= -2**63`` into any integer field (orjson reads integer literals
  below int64 as floats, so ``-9223372036854775809`` would round to int64's
  minimum); Timestamp, Duration and FieldMask strings outside RFC 3339, ``1.5s``
  and lowerCamelCase paths (json_format takes ``+1s``, ``1.s``, ``+99:00``,
  ``a,,b``, ``a.b-c``); unknown ``Any`` types, a WKT in ``Any`` without ``value``.
* Accepted where it refuses: ``3.4028235e38`` into float (json_format prints
  float32's maximum that way and then rejects it).
* Output lists fields in declaration order (json_format: set fields by number,
  then defaults).  Extensions and ``pb.enumvalue.json`` names are not supported.
* A message JSON cannot represent (Timestamp out of range, NaN in a Value, Any
  of an unknown type) raises GatewayError INTERNAL when encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message

from transcoder.descriptors import is_map
from transcoder.errors import JsonObject
from transcoder.field_json import (
    _CONVERT_DOUBLE,
    _SCALAR_CONVERTERS,
    Converter,
    _array,
    _convert_bytes,
    _convert_string,
    _encode_error,
    _enum_converter,
    _Invalid,
    _map_converter,
    _map_key_converter,
    _object,
    _repeated_converter,
    _too_deep,
)
from transcoder.message_codec import MessageCodec
from transcoder.protojson_codegen import (
    _decoder_source,
    _encoder_source,
    _enum_type,
    _held_type,
    _map_fields,
    _message_type,
    _null_for,
    _real_oneofs,
    _value_expression,
)
from transcoder.strict_json import JsonValue, _show, loads
from transcoder.wkt_json import (
    _ANY,
    _LEAVES,
    _LIST_VALUE,
    _SPECIAL,
    _STRUCT,
    _VALUE,
    _WRAPPERS,
    _check_json,
    _check_list,
    _list_value,
    _struct,
    _value,
)

__all__ = ["Codecs", "JsonOptions", "JsonValue", "MessageCodec", "field_paths", "loads"]

F = FieldDescriptor


@dataclass(frozen=True, slots=True)
class JsonOptions:
    use_proto_names: bool = False
    emit_unpopulated: bool = True  # fields without presence appear at their defaults
    use_enum_numbers: bool = False
    ignore_unknown_fields: bool = False
    max_depth: int = 64


# ================================================================================ codecs

_UNROLL_LIMIT: Final = 40  # keys to test one by one; past it the strict loop is as fast


class Codecs:
    """Builds and caches one ``MessageCodec`` per message type, for one set of options."""

    def __init__(self, pool: DescriptorPool, options: JsonOptions) -> None:
        self.pool = pool
        self.options = options
        self._codecs: dict[str, MessageCodec] = {}

    def codec(self, descriptor: Descriptor) -> MessageCodec:
        """The codec for ``descriptor``; the first call builds it and every type it reaches."""
        codec = self._codecs.get(descriptor.full_name)
        if codec is not None:
            return codec
        created: list[MessageCodec] = []
        pending = [descriptor]
        while pending:
            current = pending.pop()
            if current.full_name not in self._codecs:
                codec = MessageCodec(self, current)
                self._codecs[current.full_name] = codec
                created.append(codec)
                pending.extend(t for f in current.fields if (t := _held_type(f)) is not None)
        for codec in created:  # first every codec's functions, then the references to them
            self._prepare(codec)
        for codec in created:
            self._link(codec)
        return self._codecs[descriptor.full_name]

    def any_to_json(self, value: Message) -> JsonObject | None:
        """A google.protobuf.Any as its JSON object; None if its type is not in the pool."""
        try:
            return self._any(value)
        except _UnknownAnyError:
            return None

    # ---- building

    def _prepare(self, codec: MessageCodec) -> None:
        full_name = codec.descriptor.full_name
        if full_name in _WRAPPERS:
            self._prepare_wrapper(codec)
        elif full_name in _SPECIAL:
            self._prepare_special(codec)
        else:
            namespace = codec._namespace
            codec._strict_value = self._strict_decoder(codec)
            source = _decoder_source(codec.descriptor, self.options, _UNROLL_LIMIT)
            if source is None:
                codec._value = codec._strict_value
            else:
                namespace["_known"] = frozenset(codec._table)
                exec(source, namespace)
                codec._value = namespace["decode"]
            exec(_encoder_source(codec), namespace)
            codec._encode = namespace["encode"]

    def _link(self, codec: MessageCodec) -> None:
        self._link_encoders(codec)
        if codec.descriptor.full_name in _SPECIAL:
            return
        oneof_of = _real_oneofs(codec.descriptor)
        for field in codec.descriptor.fields:
            codec._namespace[f"_convert{field.index}"] = self._converter(field, strict=False)
            entry = (
                field.name,
                self._converter(field, strict=True),
                oneof_of.get(field.name),
                _null_for(field),
            )
            codec._table[field.name] = codec._table[field.json_name] = entry
        if "_known" in codec._namespace:
            codec._namespace["_known"] = frozenset(codec._table)

    def _link_encoders(self, codec: MessageCodec) -> None:
        for name, full_name in codec._links.items():
            codec._namespace[name] = self._codecs[full_name]._encode

    def _converter(self, field: FieldDescriptor, *, strict: bool) -> Converter:
        ignore = self.options.ignore_unknown_fields
        if is_map(field):
            key_field, value_field = _map_fields(field)
            value = self._single_converter(value_field, strict=strict, in_map=True)
            drops = ignore and value_field.cpp_type == F.CPPTYPE_ENUM
            return _map_converter(_map_key_converter(key_field), value, drops)
        element = self._single_converter(field, strict=strict)
        if field.is_repeated:
            return _repeated_converter(element, ignore and field.cpp_type == F.CPPTYPE_ENUM)
        return element

    def _single_converter(
        self, field: FieldDescriptor, *, strict: bool, in_map: bool = False
    ) -> Converter:
        cpp = field.cpp_type
        if cpp == F.CPPTYPE_MESSAGE:
            target = self._codecs[_message_type(field).full_name]
            if in_map and target.descriptor.full_name in (_STRUCT, _LIST_VALUE):
                return target._make  # as map values these take messages, not plain JSON
            return target._strict_value if strict else target._value
        if cpp == F.CPPTYPE_ENUM:
            return _enum_converter(_enum_type(field), self.options.ignore_unknown_fields)
        if cpp == F.CPPTYPE_STRING:
            return _convert_bytes if field.type == F.TYPE_BYTES else _convert_string
        return _SCALAR_CONVERTERS[cpp]

    def _strict_decoder(self, codec: MessageCodec) -> Converter:
        """Convert every value, keys in JSON order, so that errors name the right key."""
        table = codec._table
        ignore = self.options.ignore_unknown_fields
        max_depth = self.options.max_depth

        def decode(value: Any, depth: int) -> dict[str, Any]:
            if type(value) is not dict:
                value = _object(value)
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
            kwargs: dict[str, Any] = {}
            sources: dict[str, str] = {}  # proto name or oneof → the key that set it
            for key, item in value.items():
                entry = table.get(key)
                if entry is None:
                    if ignore:
                        continue
                    raise _Invalid(f"unknown field {_show(key)}").at("." + key)
                name, convert, oneof, null = entry
                if name in sources:
                    reason = f"field given twice, as {_show(sources[name])} and {_show(key)}"
                    raise _Invalid(reason).at("." + key)
                sources[name] = key
                if item is None:
                    kwargs[name] = null
                    continue
                if oneof is not None:
                    if oneof in sources:
                        reason = f'oneof "{oneof}" is already set by {_show(sources[oneof])}'
                        raise _Invalid(reason).at("." + key)
                    sources[oneof] = key
                try:
                    kwargs[name] = convert(item, depth)
                except _Invalid as exc:
                    raise exc.at("." + key) from None
            return kwargs

        return decode

    def _prepare_wrapper(self, codec: MessageCodec) -> None:
        field = codec.descriptor.fields_by_name["value"]
        convert = self._single_converter(field, strict=True)
        max_depth = self.options.max_depth

        def decode(value: Any, depth: int) -> dict[str, Any]:
            if depth >= max_depth:
                raise _too_deep(max_depth)
            return {"value": convert(value, depth + 1)}

        codec._value = codec._strict_value = decode
        codec._encode = eval(
            f"lambda m: {_value_expression(field, 'm.value', codec)}", codec._namespace
        )

    def _prepare_special(self, codec: MessageCodec) -> None:
        full_name = codec.descriptor.full_name
        max_depth = self.options.max_depth
        cls = codec.message_class

        def check_depth(depth: int) -> None:
            if depth >= max_depth:  # this message would be at depth + 1
                raise _too_deep(max_depth)

        if full_name == _ANY:
            codec._value = self._any_decoder(strict=False)
            codec._strict_value = self._any_decoder(strict=True)
            codec._encode = self._any_or_raise
        elif full_name == _STRUCT:

            def struct_value(value: Any, depth: int) -> dict[str, Any]:
                fields: dict[str, Any] = value if type(value) is dict else _object(value)
                check_depth(depth)
                _check_json(fields, depth, max_depth)  # as if a Value held it
                return fields  # a Struct field's constructor argument is the plain dict

            def make_struct(value: Any, depth: int) -> Message:
                message = cls()
                message.update(struct_value(value, depth))  # type: ignore[attr-defined]
                return message

            codec._value = codec._strict_value = struct_value
            codec._make = codec._strict_make = make_struct
            codec._encode = _struct
        elif full_name == _LIST_VALUE:

            def list_value(value: Any, depth: int) -> list[Any]:
                items: list[Any] = value if type(value) is list else _array(value)
                check_depth(depth)
                _check_list(items, depth + 2, max_depth)
                return items

            def make_list(value: Any, depth: int) -> Message:
                message = cls()
                message.extend(list_value(value, depth))  # type: ignore[attr-defined]
                return message

            codec._value = codec._strict_value = list_value
            codec._make = codec._strict_make = make_list
            codec._encode = _list_value
        elif full_name == _VALUE:

            def value_kwargs(value: Any, depth: int) -> dict[str, Any]:
                check_depth(depth)
                kind = type(value)
                if value is None:
                    return {"null_value": 0}
                if kind is bool:
                    return {"bool_value": value}
                if kind is str:
                    return {"string_value": _convert_string(value, depth)}
                if kind is int or kind is float:
                    return {"number_value": _CONVERT_DOUBLE(value, depth)}
                _check_json(value, depth + 1, max_depth)
                return {"struct_value" if isinstance(value, dict) else "list_value": value}

            codec._value = codec._strict_value = value_kwargs
            codec._encode = _value
        else:
            parse, encode = _LEAVES[full_name]

            def leaf(value: Any, depth: int) -> Any:
                check_depth(depth)
                return parse(value, depth)

            codec._value = codec._strict_value = leaf
            codec._encode = encode

    # ---- Any

    def _any_decoder(self, *, strict: bool) -> Converter:
        max_depth = self.options.max_depth
        ignore = self.options.ignore_unknown_fields

        def decode(value: Any, depth: int) -> dict[str, Any]:
            if type(value) is not dict:
                value = _object(value)
            if depth >= max_depth:
                raise _too_deep(max_depth)
            if not value:
                return {}
            type_url = value.get("@type")
            if type(type_url) is not str:
                raise _Invalid('an Any needs a "@type" string')
            _convert_string(type_url, depth)
            try:
                descriptor = self.pool.FindMessageTypeByName(type_url.rpartition("/")[2])
            except KeyError:
                raise _Invalid(f"unknown type {_show(type_url)}").at(".@type") from None
            inner = self.codec(descriptor)
            make = inner._strict_make if strict else inner._make
            if descriptor.full_name not in _SPECIAL:  # its fields sit beside "@type"
                message = make({k: v for k, v in value.items() if k != "@type"}, depth)
            else:
                extra = [k for k in value if k not in ("@type", "value")]
                if "value" not in value:
                    raise _Invalid('missing "value"').at(".value")
                if extra and not ignore:
                    raise _Invalid(f"unknown field {_show(extra[0])}").at("." + extra[0])
                try:
                    message = make(value["value"], depth + 1)
                except _Invalid as exc:
                    raise exc.at(".value") from None
            return {"type_url": type_url, "value": message.SerializeToString()}

        return decode

    def _any(self, value: Any) -> JsonObject:
        type_url, payload = value.type_url, value.value
        if not type_url and not payload:
            return {}
        try:
            descriptor = self.pool.FindMessageTypeByName(type_url.rpartition("/")[2])
            codec = self.codec(descriptor)
            inner = codec.message_class.FromString(payload)
        except (KeyError, DecodeError):
            raise _UnknownAnyError(type_url) from None
        encoded = codec._encode(inner)
        if descriptor.full_name in _SPECIAL:
            return {"@type": type_url, "value": encoded}
        return {"@type": type_url, **encoded}

    def _any_or_raise(self, value: Any) -> JsonObject:
        try:
            return self._any(value)
        except _UnknownAnyError as exc:
            raise _encode_error(
                f"Any of unknown or undecodable type {_show(exc.type_url)}"
            ) from None


class _UnknownAnyError(Exception):
    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self.type_url = type_url


# ================================================================================ field paths


def field_paths(descriptor: Descriptor, value: JsonValue) -> list[str]:
    """The dotted proto-name paths a JSON object sets (grpc-gateway's FieldMaskFromRequestBody).

    Recurses into singular, non-WKT message fields whose value is an object (an
    empty object adds nothing); a map, repeated, WKT or scalar field is a leaf,
    null included.  Keys may be JSON or proto names; unknown keys are skipped.
    """
    paths: list[str] = []
    if isinstance(value, dict):
        _collect_paths(descriptor, value, "", paths)
    return list(dict.fromkeys(paths))


def _collect_paths(
    descriptor: Descriptor, value: dict[str, Any], prefix: str, out: list[str]
) -> None:
    by_json = {f.json_name: f for f in descriptor.fields}
    for key, item in value.items():
        field = by_json.get(key) or descriptor.fields_by_name.get(key)
        if field is None:
            continue
        path = prefix + field.name
        target = field.message_type
        if (
            target is not None
            and not field.is_repeated
            and target.full_name not in _SPECIAL
            and isinstance(item, dict)
        ):
            _collect_paths(target, item, path + ".", out)
        else:
            out.append(path)
