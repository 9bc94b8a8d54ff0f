"""Messages ↔ proto3 JSON under one set of ``JsonOptions``; the only caller of ``json_format``.

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

``loads`` (contract §3) is orjson plus checks.  orjson already refuses invalid
UTF-8, lone surrogates, a BOM, ``NaN``/``Infinity``, trailing data and nesting
past 1,024, but keeps the last of duplicate keys silently.  Without escapes,
each string is two ``"`` in the body and two again when orjson re-serialises the
parsed value, so fewer quotes there means a key was dropped; with escapes, a
walk counts keys and strings instead.  Bodies that fail a check (or that orjson
refuses, or that hold ``\\\\``) go through ``json.loads`` with a duplicate-key hook,
which names the key and also reads numbers orjson cannot hold, so that
``1e999`` into a double is a 400 naming the field (reliability J8).
Measured, µs per call (small 66 B / the benchmark's 1,366 B ``medium.json``):
orjson.loads alone 0.3 / 2.9; json.loads with the hook 4.1 / 11.7; ``loads``
1.6 / 6.0.  Whole decode (``loads`` + ``decode``) 2.5 / 18.2 against
json_format.Parse's 13.7 / 115; encode (``dumps``) 0.8 / 10.3 against
orjson.dumps(MessageToDict) 5.6 / 47.

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

import binascii
import datetime
import json
import keyword
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message

from transcoder.descriptors import message_class
from transcoder.errors import GatewayError, JsonObject

__all__ = ["Codecs", "JsonOptions", "JsonValue", "MessageCodec", "field_paths", "loads"]

JsonValue = Any
# (JSON value, depth of the message that holds it) → constructor argument
Converter = Callable[[Any, int], Any]
Maker = Callable[[Any, int], Message]
Encoder = Callable[[Any], Any]

F = FieldDescriptor


@dataclass(frozen=True, slots=True)
class JsonOptions:
    use_proto_names: bool = False
    emit_unpopulated: bool = True  # fields without presence appear at their defaults
    use_enum_numbers: bool = False
    ignore_unknown_fields: bool = False
    max_depth: int = 64


# ================================================================================ loads

_NOT_MARKS: Final = bytes(b for b in range(256) if b not in b'"[\\{')
_LONE_SURROGATE: Final = re.compile(
    "[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]"
)


def loads(body: bytes, *, max_depth: int) -> JsonValue:
    """Parse a request body as strict JSON (contract §3); any violation is a 400."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _loads_strict(body, max_depth, str(exc))
    marks = body.translate(None, _NOT_MARKS)  # the body's quotes, backslashes, { and [
    quotes = marks.count(b'"')
    if b"\\" not in marks:
        if len(marks) - quotes > max_depth:  # fewer containers cannot nest too deep
            _check_depth(value, max_depth)
        try:
            reserialised = orjson.dumps(value)
        except orjson.JSONEncodeError:  # nested past the 255 levels orjson writes
            return _loads_strict(body, max_depth, None)
        if quotes != reserialised.count(b'"'):  # a duplicate key was dropped
            return _loads_strict(body, max_depth, None)
        return value
    if b"\\\\" in body:  # an escaped backslash makes \" ambiguous to count
        return _loads_strict(body, max_depth, None)
    if quotes - body.count(b'\\"') != 2 * _check_depth(value, max_depth):
        return _loads_strict(body, max_depth, None)
    return value


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(name)


_STRICT_JSON: Final = json.JSONDecoder(
    object_pairs_hook=_object_pairs, parse_constant=_reject_constant
)


def _loads_strict(body: bytes, max_depth: int, orjson_error: str | None) -> JsonValue:
    """The slow path: stdlib JSON with a duplicate-key hook; says what is wrong."""
    try:
        value = _STRICT_JSON.decode(body.decode("utf-8"))
    except _DuplicateKeyError as exc:
        raise GatewayError.invalid_argument("body", f"duplicate key {_show(exc.key)}") from None
    except RecursionError:  # some 900 levels in: deeper than max_depth unless that is huge
        if max_depth < 500:
            raise _too_deep_body(max_depth) from None
        raise GatewayError.invalid_argument("body", "JSON nesting is too deep to read") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, NaN, over-long integers
        raise _not_json(orjson_error or "cannot be parsed") from None
    _check_depth(value, max_depth)
    if _has_lone_surrogate(value):
        raise _not_json("a string holds an unpaired surrogate")
    return value


def _not_json(reason: str) -> GatewayError:
    return GatewayError.invalid_argument("body", f"not valid JSON: {reason}")


def _too_deep_body(max_depth: int) -> GatewayError:
    return GatewayError.invalid_argument("body", f"JSON nesting is deeper than {max_depth} levels")


class _TooDeepError(Exception):
    pass


def _check_depth(value: Any, max_depth: int) -> int:
    """Keys plus string values in ``value``; a 400 when it nests deeper than ``max_depth``."""
    try:
        return _units(value, max_depth)
    except _TooDeepError:
        raise _too_deep_body(max_depth) from None


def _units(value: Any, room: int) -> int:
    kind = type(value)
    if kind is str:
        return 1
    if kind is not dict and kind is not list:
        return 0
    if room <= 0:
        raise _TooDeepError
    units = len(value) if kind is dict else 0
    for item in value.values() if kind is dict else value:
        kind = type(item)
        if kind is str:
            units += 1
        elif kind is dict or kind is list:
            units += _units(item, room - 1)
    return units


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not value.isascii() and _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


# ================================================================================ decoding


class _Invalid(Exception):  # a signal: GatewayError is raised at the boundary
    """A bad JSON value; ``segments`` collect its path, innermost first, on the way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []

    def at(self, segment: str) -> _Invalid:
        self.segments.append(segment)
        return self

    def path(self, prefix: str) -> str:
        path = prefix + "".join(reversed(self.segments))
        return path[1:] if path.startswith(".") else path


class _ConflictError(TypeError):
    """A field given twice, or two members of one oneof: the strict pass names the key."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show(value: Any) -> str:
    """A short quotation of a JSON value for an error message."""
    if isinstance(value, int) and value.bit_length() > 128:  # str() fails past 4,300 digits
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _expected(what: str, value: Any) -> _Invalid:
    return _Invalid(f"expected {what}, got {_kind(value)}")


def _object(value: Any) -> dict[str, Any]:
    """A JSON object that is not exactly a dict (json_format's OrderedDict), or a 400."""
    if isinstance(value, dict):
        return dict(value)
    raise _expected("an object", value)


def _array(value: Any) -> list[Any]:
    if isinstance(value, list):
        return list(value)
    raise _expected("an array", value)


def _too_deep(max_depth: int) -> _Invalid:
    return _Invalid(f"nesting is deeper than {max_depth} message levels")


def _out_of_range(value: Any) -> _Invalid:
    return _Invalid(f"value {_show(value)} is out of range")


_INT_BOUNDS: Final = {
    F.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    F.CPPTYPE_UINT32: (0, 2**32 - 1),
    F.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    F.CPPTYPE_UINT64: (0, 2**64 - 1),
}
# Doubles below this round to float32's largest value, which json_format prints as
# 3.4028235e38 (and then refuses to read back); from it up they round to infinity.
_FLOAT_LIMIT: Final = 3.4028235677973366e38
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_SPECIAL_FLOATS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _integer(value: Any) -> int:
    """A JSON number or numeric string as an exact integer; the range is the caller's."""
    if isinstance(value, bool):
        raise _expected("an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit() and (digits[0] != "0" or len(digits) == 1):
            if len(digits) > 20:
                raise _out_of_range(value)
            return int(value)
        if len(value) > 64 or _NUMBER.fullmatch(value) is None:
            raise _Invalid(f"{_show(value)} is not a decimal integer")
        number = float(value)
    else:
        raise _expected("an integer", value)
    if number - number != 0.0 or number <= -(2.0**63):  # infinite, or below int64 (docstring)
        raise _out_of_range(value)
    if not number.is_integer():
        raise _Invalid(f"{_show(value)} is not an integer")
    return int(number)


def _int_converter(low: int, high: int) -> Converter:
    def convert(value: Any, depth: int) -> int:
        if type(value) is str and len(value) <= 20 and value.isascii() and value.isdigit():
            number = int(value) if value[0] != "0" else _integer(value)  # 64-bit ints come so
        else:
            number = _integer(value)
        if low <= number <= high:
            return number
        raise _out_of_range(value)

    return convert


def _float_converter(single: bool) -> Converter:
    def convert(value: Any, depth: int) -> float:
        kind = type(value)
        if kind is float:
            number: float = value
        elif kind is int:
            try:
                number = float(value)
            except OverflowError:
                raise _out_of_range(value) from None
        elif kind is str:
            special = _SPECIAL_FLOATS.get(value)
            if special is not None:
                return special
            if len(value) > 400 or _NUMBER.fullmatch(value) is None:
                raise _Invalid(f"{_show(value)} is not a number")
            number = float(value)
        else:
            raise _expected("a number", value)
        if number - number != 0.0 or (single and not -_FLOAT_LIMIT < number < _FLOAT_LIMIT):
            raise _out_of_range(value)
        return number

    return convert


def _convert_bool(value: Any, depth: int) -> bool:
    if type(value) is bool:
        return value
    raise _expected("true or false", value)


def _convert_string(value: Any, depth: int) -> str:
    if type(value) is not str:
        raise _expected("a string", value)
    if value.isascii() or _LONE_SURROGATE.search(value) is None:
        return value
    raise _Invalid("string holds an unpaired surrogate")


_URLSAFE: Final = str.maketrans("-_", "+/")


def _convert_bytes(value: Any, depth: int) -> bytes:
    """Standard or URL-safe base64, padding optional (proto3 JSON)."""
    if type(value) is not str:
        raise _expected("a base64 string", value)
    text = value.translate(_URLSAFE) if "-" in value or "_" in value else value
    rest = len(text) % 4
    if rest:
        if rest == 1 or text.endswith("="):
            raise _Invalid("invalid base64")
        text += "=" * (4 - rest)
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise _Invalid("invalid base64") from None


_CONVERT_DOUBLE: Final = _float_converter(single=False)
_SCALAR_CONVERTERS: Final[dict[int, Converter]] = {
    **{cpp: _int_converter(*bounds) for cpp, bounds in _INT_BOUNDS.items()},
    F.CPPTYPE_DOUBLE: _CONVERT_DOUBLE,
    F.CPPTYPE_FLOAT: _float_converter(single=True),
    F.CPPTYPE_BOOL: _convert_bool,
}


def _enum_converter(enum: EnumDescriptor, ignore_unknown: bool) -> Converter:
    by_name = {v.name: v.number for v in enum.values}
    known = frozenset(by_name.values())
    closed = enum.is_closed
    low, high = _INT_BOUNDS[F.CPPTYPE_INT32]
    unknown = f"unknown value {{}} for enum {enum.full_name}"

    def convert(value: Any, depth: int) -> int | None:
        if type(value) is str:
            number = by_name.get(value)
            if number is not None:
                return number
            if _INTEGER.fullmatch(value) is None:
                if ignore_unknown:
                    return None  # json_format leaves the field unset
                raise _Invalid(unknown.format(_show(value)))
        elif type(value) is bool or not isinstance(value, int | float):
            raise _expected(f"an enum name or number ({enum.full_name})", value)
        number = _integer(value)
        if not low <= number <= high or (closed and number not in known):
            raise _Invalid(unknown.format(_show(value)))
        return number

    return convert


def _repeated_converter(element: Converter, drops_none: bool) -> Converter:
    def convert(value: Any, depth: int) -> list[Any]:
        if type(value) is not list:
            value = _array(value)
        try:
            items = [element(item, depth) for item in value]
        except _Invalid:
            _locate(element, value, depth)
            raise
        return [item for item in items if item is not None] if drops_none else items

    return convert


def _locate(element: Converter, items: list[Any], depth: int) -> None:
    """Convert a failed array again item by item, to put the index into the path."""
    for index, item in enumerate(items):
        try:
            element(item, depth)
        except _Invalid as exc:
            raise exc.at(f"[{index}]") from None


def _map_key_converter(field: FieldDescriptor) -> Callable[[str], Any] | None:
    if field.cpp_type == F.CPPTYPE_STRING:
        return None
    if field.cpp_type == F.CPPTYPE_BOOL:

        def bool_key(key: str) -> bool:
            if key in ("true", "false"):
                return key == "true"
            raise _Invalid('map key must be "true" or "false"')

        return bool_key
    low, high = _INT_BOUNDS[field.cpp_type]

    def int_key(key: str) -> int:
        number = _integer(key)
        if low <= number <= high:
            return number
        raise _out_of_range(key)

    return int_key


def _map_converter(
    key: Callable[[str], Any] | None, value: Converter, drops_none: bool
) -> Converter:
    def convert(entries: Any, depth: int) -> dict[Any, Any]:
        if type(entries) is not dict:
            entries = _object(entries)
        result: dict[Any, Any] = {}
        name = ""
        try:
            for name, item in entries.items():
                converted = value(item, depth)
                if converted is not None or not drops_none:
                    result[name if key is None else key(name)] = converted
        except _Invalid as exc:
            raise exc.at(f"[{name}]") from None
        return result

    return convert


# ---- well-known types

_WRAPPERS: Final = frozenset(
    f"google.protobuf.{kind}Value"
    for kind in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_TIMESTAMP: Final = "google.protobuf.Timestamp"
_DURATION: Final = "google.protobuf.Duration"
_FIELD_MASK: Final = "google.protobuf.FieldMask"
_STRUCT: Final = "google.protobuf.Struct"
_VALUE: Final = "google.protobuf.Value"
_LIST_VALUE: Final = "google.protobuf.ListValue"
_ANY: Final = "google.protobuf.Any"
_NULL_VALUE: Final = "google.protobuf.NullValue"
# Types whose JSON is not an object of their fields; inside Any they sit under "value".
_SPECIAL: Final = _WRAPPERS | {
    _TIMESTAMP,
    _DURATION,
    _FIELD_MASK,
    _STRUCT,
    _VALUE,
    _LIST_VALUE,
    _ANY,
}

_TIMESTAMP_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_TIMESTAMP_MIN: Final = -62135596800  # 0001-01-01T00:00:00Z
_TIMESTAMP_MAX: Final = 253402300799  # 9999-12-31T23:59:59Z
_EPOCH: Final = datetime.datetime(1970, 1, 1)
_DURATION_RE: Final = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]{1,9}))?s")
_DURATION_MAX: Final = 315576000000
_FIELD_MASK_PATH: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*")
_CAMEL_HUMP: Final = re.compile(r"[A-Z]")


def _parse_timestamp(value: Any, depth: int) -> dict[str, int]:
    if type(value) is not str:
        raise _expected("an RFC 3339 timestamp string", value)
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise _Invalid(f"{_show(value)} is not an RFC 3339 time like 1972-01-01T10:00:20.021Z")
    year, month, day, hour, minute, second, fraction, sign, off_hour, off_minute = match.groups()
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second)
        )
    except ValueError:
        raise _Invalid(f"{_show(value)} is not a valid date and time") from None
    seconds = (moment - _EPOCH) // datetime.timedelta(seconds=1)
    if sign is not None:
        if int(off_hour) > 23 or int(off_minute) > 59:
            raise _Invalid(f"{_show(value)} has an invalid UTC offset")
        offset = int(off_hour) * 3600 + int(off_minute) * 60
        seconds += -offset if sign == "+" else offset
    if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX:
        raise _Invalid(f"{_show(value)} is outside 0001-01-01 to 9999-12-31")
    return {"seconds": seconds, "nanos": int(fraction.ljust(9, "0")) if fraction else 0}


def _parse_duration(value: Any, depth: int) -> dict[str, int]:
    if type(value) is not str:
        raise _expected('a duration string like "1.5s"', value)
    match = _DURATION_RE.fullmatch(value)
    if match is None:
        raise _Invalid(f'{_show(value)} is not a duration like "1.5s"')
    sign, whole, fraction = match.groups()
    seconds, nanos = int(whole), int(fraction.ljust(9, "0")) if fraction else 0
    if seconds > _DURATION_MAX:
        raise _out_of_range(value)
    return {"seconds": -seconds, "nanos": -nanos} if sign else {"seconds": seconds, "nanos": nanos}


def _parse_field_mask(value: Any, depth: int) -> dict[str, list[str]]:
    if type(value) is not str:
        raise _expected('a field mask string like "a.b,c"', value)
    paths = value.split(",") if value else []
    for path in paths:
        if _FIELD_MASK_PATH.fullmatch(path) is None:
            raise _Invalid(f"{_show(path)} is not a path of lowerCamelCase field names")
    return {"paths": [_CAMEL_HUMP.sub(lambda m: "_" + m.group().lower(), p) for p in paths]}


def _check_json(value: Any, depth: int, max_depth: int) -> None:
    """Check the JSON a google.protobuf.Value at message depth ``depth`` would hold."""
    if depth > max_depth:
        raise _too_deep(max_depth)
    kind = type(value)
    if kind is str:
        _convert_string(value, depth)
    elif kind is float or kind is int:
        _CONVERT_DOUBLE(value, depth)
    elif isinstance(value, dict):
        for name, item in value.items():
            try:
                _check_json(item, depth + 2, max_depth)  # Value → Struct → Value
            except _Invalid as exc:
                raise exc.at("." + name) from None
    elif isinstance(value, list):
        _check_list(value, depth + 2, max_depth)
    elif value is not None and kind is not bool:
        raise _Invalid(f"expected a JSON value, got {kind.__name__}")


def _check_list(items: list[Any], depth: int, max_depth: int) -> None:
    for index, item in enumerate(items):
        try:
            _check_json(item, depth, max_depth)
        except _Invalid as exc:
            raise exc.at(f"[{index}]") from None


# ================================================================================ encoding


def _encode_error(reason: str) -> GatewayError:
    return GatewayError.internal(f"the response cannot be written as JSON: {reason}")


def _b64(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _special_float(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _double(value: float) -> float | str:
    return value if value - value == 0.0 else _special_float(value)


_F32: Final = struct.Struct("<f")


def _float(value: float) -> float | str:
    """The shortest decimal that reads back as the same float32 (json_format's rule)."""
    if value - value != 0.0:
        return _special_float(value)
    for precision in (6, 7, 8):
        rounded = float(f"{value:.{precision}g}")
        if _F32.unpack(_F32.pack(rounded))[0] == value:
            return rounded
    return float(f"{value:.9g}")


def _timestamp(message: Any) -> str:
    seconds, nanos = message.seconds, message.nanos
    if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX or not 0 <= nanos < 1_000_000_000:
        raise _encode_error(f"Timestamp {seconds}s {nanos}ns is out of range")
    text = (_EPOCH + datetime.timedelta(0, seconds)).isoformat()
    return f"{text}{_fraction(nanos)}Z"


def _fraction(nanos: int) -> str:
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1000 == 0:
        return f".{nanos // 1000:06d}"
    return f".{nanos:09d}"


def _duration(message: Any) -> str:
    seconds, nanos = message.seconds, message.nanos
    if (
        not -_DURATION_MAX <= seconds <= _DURATION_MAX
        or not -1_000_000_000 < nanos < 1_000_000_000
        or nanos < 0 < seconds
        or seconds < 0 < nanos
    ):
        raise _encode_error(f"Duration {seconds}s {nanos}ns is out of range")
    if seconds < 0 or nanos < 0:
        return f"-{-seconds}{_fraction(-nanos)}s"
    return f"{seconds}{_fraction(nanos)}s"


def _field_mask(message: Any) -> str:
    return ",".join(_camel_path(path) for path in message.paths)


def _camel_path(path: str) -> str:
    """json_format's snake_case → lowerCamelCase for FieldMask paths, refusals included."""
    result = []
    after_underscore = False
    for char in path:
        if char.isupper() or (after_underscore and not char.islower()):
            raise _encode_error(f"FieldMask path {_show(path)} has no lowerCamelCase form")
        if after_underscore:
            result.append(char.upper())
            after_underscore = False
        elif char == "_":
            after_underscore = True
        else:
            result.append(char)
    if after_underscore:
        raise _encode_error(f"FieldMask path {_show(path)} has no lowerCamelCase form")
    return "".join(result)


def _value(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = message.number_value
        if number - number != 0.0:
            raise _encode_error(f"Value.number_value is {number}")
        return number
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return _list_value(message.list_value)
    return getattr(message, kind)


def _struct(message: Any) -> dict[str, Any]:
    return {key: _value(item) for key, item in message.fields.items()}


def _list_value(message: Any) -> list[Any]:
    return [_value(item) for item in message.values]


class _EnumNames(dict[int, Any]):
    """Number → name; unknown numbers (open enums) stay numbers, as json_format prints them."""

    def __missing__(self, number: int) -> int:
        return number


# ================================================================================ generated code


def _message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def _enum_type(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None
    return field.enum_type


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _map_fields(field: FieldDescriptor) -> tuple[FieldDescriptor, FieldDescriptor]:
    entry = _message_type(field)
    return entry.fields_by_name["key"], entry.fields_by_name["value"]


def _held_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type a field holds (a map's value type for maps), if any."""
    if _is_map(field):
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
    if _is_map(field):
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
    if _is_map(field):
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


_UNROLL_LIMIT: Final = 40  # keys to test one by one; past it the strict loop is as fast


def _decoder_source(descriptor: Descriptor, options: JsonOptions) -> str | None:
    """``def decode(value, depth)`` → constructor kwargs, or None past ``_UNROLL_LIMIT``.

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
    if len(blocks) > _UNROLL_LIMIT:
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


# ================================================================================ codecs

Entry = tuple[str, Converter, str | None, Any]  # proto name, converter, oneof, value for null


class MessageCodec:
    """JSON ↔ one message type, under the options of the ``Codecs`` that built it."""

    __slots__ = (
        "_codecs",
        "_encode",
        "_field_encoders",
        "_links",
        "_make",
        "_namespace",
        "_strict_make",
        "_strict_value",
        "_table",
        "_value",
        "descriptor",
        "message_class",
    )

    def __init__(self, codecs: Codecs, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.message_class: type[Message] = message_class(descriptor)
        self._codecs = codecs
        # The fast pass (_value) leaves some values for the constructor to check;
        # the strict pass (_strict_value) converts and checks each one itself.
        self._value: Converter = _unlinked
        self._strict_value: Converter = _unlinked
        self._make: Maker = self._construct
        self._strict_make: Maker = self._construct_strict
        self._table: dict[str, Entry] = {}  # JSON and proto names → entry, for the strict pass
        self._encode: Encoder = _unlinked
        self._namespace: dict[str, Any] = {**_ENCODE_HELPERS, **_DECODE_HELPERS}
        self._links: dict[str, str] = {}  # generated name → full name of the type it encodes
        self._field_encoders: dict[str, Encoder] = {}

    def decode(self, value: JsonValue, *, path: str = "") -> Message:
        """The message for ``value``; a GatewayError 400 names the JSON path of a bad value.

        ``path`` prefixes that path, for a body bound to a field ("book.title: ...").
        """
        try:
            return self._make(value, 0)
        except _Invalid as exc:
            raise self._invalid(exc, path) from None
        except (TypeError, ValueError, OverflowError):
            pass  # the constructor refused a value left to it
        try:
            return self._strict_make(value, 0)
        except _Invalid as exc:
            raise self._invalid(exc, path) from None
        except (TypeError, ValueError, OverflowError):
            return self._decode_fallback(value, path)

    def encode(self, message: Message) -> JsonValue:
        """The JSON value (a dict, or a WKT's JSON form) for ``orjson.dumps``."""
        return self._encode(message)

    def encode_field(self, message: Message, field_name: str) -> JsonValue:
        """One field's JSON value (``response_body``); an unset field gives its default."""
        encoder = self._field_encoders.get(field_name)
        if encoder is None:
            field = self.descriptor.fields_by_name[field_name]
            expression = _value_expression(field, _attribute("m", field.name), self)
            encoder = eval(f"lambda m: {expression}", self._namespace)
            self._codecs._link_encoders(self)
            self._field_encoders[field_name] = encoder
        return encoder(message)

    def dumps(self, message: Message) -> bytes:
        """Compact one-line JSON: unary bodies and stream frames alike (contract §4)."""
        return orjson.dumps(self._encode(message))

    def _construct(self, value: Any, depth: int) -> Message:
        return self.message_class(**self._value(value, depth))

    def _construct_strict(self, value: Any, depth: int) -> Message:
        return self.message_class(**self._strict_value(value, depth))

    def _invalid(self, exc: _Invalid, path: str) -> GatewayError:
        return GatewayError.invalid_argument(exc.path(path) or self.descriptor.name, exc.reason)

    def _decode_fallback(self, value: Any, path: str) -> Message:
        """The constructor refused values we checked (our bug): json_format decides."""
        options = self._codecs.options
        message = self.message_class()
        try:
            json_format.ParseDict(
                value,
                message,
                ignore_unknown_fields=options.ignore_unknown_fields,
                descriptor_pool=self._codecs.pool,
                max_recursion_depth=options.max_depth,
            )
        except Exception as exc:  # ParseDict lets TypeError, KeyError... through
            reason = (str(exc).strip().splitlines() or ["invalid value"])[0]
            raise GatewayError.invalid_argument(path or self.descriptor.name, reason) from None
        return message


def _unlinked(value: Any, depth: int = 0) -> Any:
    raise AssertionError("a codec was used before it was linked")  # pragma: no cover


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
            source = _decoder_source(codec.descriptor, self.options)
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
        if _is_map(field):
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


_LEAVES: Final[dict[str, tuple[Converter, Encoder]]] = {
    _TIMESTAMP: (_parse_timestamp, _timestamp),
    _DURATION: (_parse_duration, _duration),
    _FIELD_MASK: (_parse_field_mask, _field_mask),
}


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
