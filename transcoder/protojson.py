"""Messages ↔ proto3 JSON under one set of ``JsonOptions``; the only caller of ``json_format``.

Output equals ``json_format.MessageToDict`` and input equals ``json_format.ParseDict``
(both with the private pool) wherever the contract allows; both are 7-10x faster
(python-stack notes §2).  Each message type gets a ``MessageCodec`` built once:

* decode: the parsed JSON is normalised into constructor keyword arguments
  (proto names, converted and range-checked values, nested dicts for nested
  messages) and the message is made by **one** C constructor call::

      {"int64Field": "5", "nested": {"name": "n"}}  →  Everything(int64_field=5, nested={"name": "n"})

* encode: one straight-line function per message type, generated with ``exec``,
  reads attributes and builds the dict that ``orjson.dumps`` serialises.

``loads`` — strict JSON (contract §3).  Measured on this machine (µs per call,
best of 5; small = 61 B, medium = the benchmark's 1,366 B ``medium.json``):

    orjson.loads alone                                 0.3 /  2.9
    json.loads + object_pairs_hook (duplicate check)   2.0 /  9.3
    orjson.loads + our checks (chosen)                 0.8 /  6.5

orjson rejects invalid UTF-8, lone surrogates, a BOM, ``NaN``/``Infinity``,
trailing data and nesting beyond 1,024 but keeps the last of duplicate keys
silently.  So after it, one Python walk over the containers checks the depth
and counts keys and string values; a body's ``"`` count (minus escaped quotes)
must be twice that, otherwise a key was dropped as a duplicate.  Only then, or
when orjson refuses the body, or the body holds ``\\\\`` (which makes counting
quotes ambiguous), the slow strict path runs: ``json.loads`` with a duplicate
detecting hook, which names the key and accepts numbers orjson cannot hold
(a field then gets a 400 naming it, J8), and a surrogate check.

Deliberate divergences from ``json_format`` (contract §3, reliability b.1):

* 400 where json_format accepts: a field under both its JSON and proto name;
  integer strings that are not JSON number syntax (``"１２"``, ``"1_000"``,
  ``" 12"``, ``"+1"``, ``"012"``); float strings outside that syntax
  (``"inf"``, ``" 1"``); booleans for numbers or enums; ``1e39`` into float or
  ``"1e999"`` into double; base64 with characters outside both alphabets;
  more than ``max_depth`` message levels (a Struct level costs two); a float
  ``<= -2**63`` into any integer (orjson turns integer literals below int64
  into floats, so ``-9223372036854775809`` would otherwise round to int64's
  minimum).
* Unknown ``Any`` types, a missing ``value`` for a WKT inside ``Any`` and
  out-of-range numbers are 400s, never Python exceptions.
* Output lists fields in declaration order (json_format lists set fields by
  number, then defaults); extensions and ``pb.enumvalue.json`` names are not
  supported.
* A message the JSON form cannot represent (Timestamp out of range, NaN in a
  Value, unknown Any type) raises ``GatewayError`` INTERNAL when encoded.
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
Converter = Callable[[Any, int], Any]  # (JSON value, depth of the message holding it) → kwarg
Encoder = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class JsonOptions:
    use_proto_names: bool = False
    emit_unpopulated: bool = True  # fields without presence appear at their defaults
    use_enum_numbers: bool = False
    ignore_unknown_fields: bool = False
    max_depth: int = 64


# --------------------------------------------------------------------------- loads


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
    raise ValueError(f"{name} is not a JSON value")


_STRICT_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_pairs, parse_constant=_reject_constant
)
_LONE_SURROGATE: Final = re.compile(
    "[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]"
)


class _TooDeepError(Exception):
    pass


def _dict_units(value: dict[str, Any], room: int) -> int:
    """Keys plus string values in ``value``, recursively; raises when nesting exceeds ``room``."""
    if room <= 0:
        raise _TooDeepError
    units = len(value)
    for item in value.values():
        kind = type(item)
        if kind is str:
            units += 1
        elif kind is dict:
            units += _dict_units(item, room - 1)
        elif kind is list:
            units += _list_units(item, room - 1)
    return units


def _list_units(value: list[Any], room: int) -> int:
    if room <= 0:
        raise _TooDeepError
    units = 0
    for item in value:
        kind = type(item)
        if kind is str:
            units += 1
        elif kind is dict:
            units += _dict_units(item, room - 1)
        elif kind is list:
            units += _list_units(item, room - 1)
    return units


def _units(value: Any, max_depth: int) -> int:
    kind = type(value)
    if kind is dict:
        return _dict_units(value, max_depth)
    if kind is list:
        return _list_units(value, max_depth)
    return 1 if kind is str else 0


def _has_lone_surrogate(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return not value.isascii() and _LONE_SURROGATE.search(value) is not None
    if kind is dict:
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if kind is list:
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _not_json(reason: str) -> GatewayError:
    return GatewayError.invalid_argument("body", f"not valid JSON: {reason}")


_NOT_MARKS: Final = bytes(b for b in range(256) if b not in b'"[\\{')


def loads(body: bytes, *, max_depth: int) -> JsonValue:
    """Parse a request body as strict JSON (contract §3); any violation is a 400."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _loads_strict(body, max_depth, str(exc))
    marks = body.translate(None, _NOT_MARKS)  # the body's quotes, backslashes, { and [
    quotes = marks.count(b'"')
    if b"\\" not in marks:
        # Without escapes each string is two quotes in the body and two again once
        # re-serialised: fewer quotes there means orjson dropped a duplicate key.
        if quotes != orjson.dumps(value).count(b'"'):
            return _loads_strict(body, max_depth, None)
        if len(marks) - quotes > max_depth:  # fewer containers cannot nest too deep
            _check_depth(value, max_depth)
        return value
    if b"\\\\" in body:  # an escaped backslash makes \" ambiguous to count
        return _loads_strict(body, max_depth, None)
    units = _check_depth(value, max_depth)
    if quotes - body.count(b'\\"') != 2 * units:
        return _loads_strict(body, max_depth, None)
    return value


def _check_depth(value: Any, max_depth: int) -> int:
    """Keys plus string values in ``value``; a 400 when it nests deeper than ``max_depth``."""
    try:
        return _units(value, max_depth)
    except _TooDeepError:
        raise _too_deep_body(max_depth) from None


def _too_deep_body(max_depth: int) -> GatewayError:
    return GatewayError.invalid_argument("body", f"JSON nesting is deeper than {max_depth} levels")


def _loads_strict(body: bytes, max_depth: int, orjson_error: str | None) -> JsonValue:
    """The slow path: stdlib JSON with duplicate detection; names what is wrong."""
    reason = orjson_error or "cannot be parsed"
    try:
        text = body.decode("utf-8")
        value = _STRICT_DECODER.decode(text)
    except _DuplicateKeyError as exc:
        raise GatewayError.invalid_argument("body", f"duplicate key {_show(exc.key)}") from None
    except RecursionError:
        raise _too_deep_body(max_depth) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, over-long integers, NaN
        raise _not_json(reason) from None
    _check_depth(value, max_depth)
    if _has_lone_surrogate(value):
        raise _not_json("a string holds an unpaired surrogate")
    return value


# --------------------------------------------------------------------------- decode helpers


class _Invalid(Exception):
    """A bad JSON value; ``segments`` collect the path innermost first on the way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []

    def path(self, prefix: str) -> str:
        path = prefix + "".join(reversed(self.segments))
        return path[1:] if path.startswith(".") else path


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
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


_INT32: Final = (-(2**31), 2**31 - 1)
_UINT32: Final = (0, 2**32 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)
_UINT64: Final = (0, 2**64 - 1)
# Doubles below this round to float32's largest finite value (3.4028235e38, which is
# how json_format itself prints it, then refuses to read it back); from it up, to inf.
_FLOAT_LIMIT: Final = 3.4028235677973366e38
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _out_of_range(value: Any) -> _Invalid:
    return _Invalid(f"value {_show(value)} is out of range")


def _integer(value: Any) -> int:
    """A JSON number or numeric string as an exact integer (range not checked)."""
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]  # checked by `type(value) is int`
    if kind is float:
        if value - value != 0.0:
            raise _out_of_range(value)
        if not value.is_integer():
            raise _Invalid(f"{_show(value)} is not an integer")
        if value <= -(2.0**63):  # orjson's float for an integer literal below int64
            raise _out_of_range(value)
        return int(value)
    if kind is str:
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit() and (digits[0] != "0" or len(digits) == 1):
            if len(digits) > 20:
                raise _out_of_range(value)
            return int(value)
        if len(value) > 64 or _NUMBER.fullmatch(value) is None:
            raise _Invalid(f"{_show(value)} is not a decimal integer")
        number = float(value)
        if number - number != 0.0 or number <= -(2.0**63):
            raise _out_of_range(value)
        if not number.is_integer():
            raise _Invalid(f"{_show(value)} is not an integer")
        return int(number)
    raise _expected("an integer", value)


def _int_converter(bounds: tuple[int, int]) -> Converter:
    low, high = bounds

    def convert(value: Any, depth: int) -> int:
        if type(value) is str and value.isascii() and value.isdigit() and value[0] != "0":
            number = int(value)  # the common case: 64-bit integers arrive as strings
        elif type(value) is int:
            number = value
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
            number = value
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
        return number  # type: ignore[no-any-return]

    return convert


def _convert_bool(value: Any, depth: int) -> bool:
    if type(value) is bool:
        return value
    raise _expected("true or false", value)


def _convert_string(value: Any, depth: int) -> str:
    if type(value) is str:
        if value.isascii() or _LONE_SURROGATE.search(value) is None:
            return value
        raise _Invalid("string holds an unpaired surrogate")
    raise _expected("a string", value)


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
    except (binascii.Error, ValueError):
        raise _Invalid("invalid base64") from None


def _enum_converter(enum: EnumDescriptor, ignore_unknown: bool) -> Converter:
    by_name = {v.name: v.number for v in enum.values}
    known = frozenset(by_name.values())
    closed = enum.is_closed
    full_name = enum.full_name

    def convert(value: Any, depth: int) -> int | None:
        if type(value) is str:
            number = by_name.get(value)
            if number is not None:
                return number
            digits = value[1:] if value[:1] == "-" else value
            if not (digits.isascii() and digits.isdigit()):
                if ignore_unknown:
                    return None  # json_format leaves the field unset
                raise _Invalid(f"unknown value {_show(value)} for enum {full_name}")
        elif type(value) is bool or not isinstance(value, int | float):
            raise _expected(f"an enum name or number ({full_name})", value)
        number = _integer(value)
        if not _INT32[0] <= number <= _INT32[1] or (closed and number not in known):
            raise _Invalid(f"unknown value {_show(value)} for enum {full_name}")
        return number

    return convert


def _repeated_converter(element: Converter, drops_none: bool) -> Converter:
    def convert(value: Any, depth: int) -> list[Any]:
        if type(value) is not list:
            value = _array(value)
        try:
            items = [element(item, depth) for item in value]
        except _Invalid:
            _locate_element(element, value, depth)
            raise
        return [item for item in items if item is not None] if drops_none else items

    return convert


def _locate_element(element: Converter, items: list[Any], depth: int) -> None:
    """Re-run a failed conversion item by item to add the index to the path."""
    for index, item in enumerate(items):
        try:
            element(item, depth)
        except _Invalid as exc:
            exc.segments.append(f"[{index}]")
            raise exc from None


def _repeated_strings(value: Any, depth: int) -> list[str]:
    if type(value) is not list:
        value = _array(value)
    for item in value:
        if type(item) is not str or not (item.isascii() or _LONE_SURROGATE.search(item) is None):
            _locate_element(_convert_string, value, depth)
    return value


def _map_key_converter(field: FieldDescriptor) -> Callable[[str], Any] | None:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return None
    if cpp == FieldDescriptor.CPPTYPE_BOOL:

        def bool_key(key: str) -> bool:
            if key == "true":
                return True
            if key == "false":
                return False
            raise _Invalid('map key must be "true" or "false"')

        return bool_key
    bounds = _INT_BOUNDS[cpp]

    def int_key(key: str) -> int:
        number = _integer(key)
        if bounds[0] <= number <= bounds[1]:
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
                if converted is None and drops_none:
                    continue
                result[name if key is None else key(name)] = converted
        except _Invalid as exc:
            exc.segments.append(f"[{name}]")
            raise
        return result

    return convert


_INT_BOUNDS: Final = {
    FieldDescriptor.CPPTYPE_INT32: _INT32,
    FieldDescriptor.CPPTYPE_UINT32: _UINT32,
    FieldDescriptor.CPPTYPE_INT64: _INT64,
    FieldDescriptor.CPPTYPE_UINT64: _UINT64,
}
_CONVERT_DOUBLE: Final = _float_converter(single=False)
_CONVERT_FLOAT: Final = _float_converter(single=True)
_SCALAR_CONVERTERS: Final[dict[int, Converter]] = {
    **{cpp: _int_converter(bounds) for cpp, bounds in _INT_BOUNDS.items()},
    FieldDescriptor.CPPTYPE_DOUBLE: _CONVERT_DOUBLE,
    FieldDescriptor.CPPTYPE_FLOAT: _CONVERT_FLOAT,
    FieldDescriptor.CPPTYPE_BOOL: _convert_bool,
}


# --------------------------------------------------------------------------- well-known types

_WRAPPERS: Final = frozenset(
    f"google.protobuf.{n}"
    for n in (
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
)
_TIMESTAMP: Final = "google.protobuf.Timestamp"
_DURATION: Final = "google.protobuf.Duration"
_FIELD_MASK: Final = "google.protobuf.FieldMask"
_STRUCT: Final = "google.protobuf.Struct"
_VALUE: Final = "google.protobuf.Value"
_LIST_VALUE: Final = "google.protobuf.ListValue"
_ANY: Final = "google.protobuf.Any"
_NULL_VALUE: Final = "google.protobuf.NullValue"
# Types whose JSON form is not an object of their fields (they nest as {"@type", "value"} in Any).
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
_EPOCH_ORDINAL: Final = datetime.date(1970, 1, 1).toordinal()
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
        raise _Invalid(f"{_show(value)} is not an RFC 3339 timestamp like 1972-01-01T10:00:20.021Z")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        days = datetime.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise _Invalid(f"{_show(value)} is not a valid date") from None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        raise _Invalid(f"{_show(value)} is not a valid time")
    seconds = days * 86400 + int(hour) * 3600 + int(minute) * 60 + int(second)
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            raise _Invalid(f"{_show(value)} has an invalid UTC offset")
        offset = int(off_h) * 3600 + int(off_m) * 60
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
    seconds = int(whole)
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    if seconds > _DURATION_MAX:
        raise _out_of_range(value)
    if sign:
        seconds, nanos = -seconds, -nanos
    return {"seconds": seconds, "nanos": nanos}


def _parse_field_mask(value: Any, depth: int) -> dict[str, list[str]]:
    if type(value) is not str:
        raise _expected('a field mask string like "a.b,c"', value)
    paths = value.split(",") if value else []
    for path in paths:
        if _FIELD_MASK_PATH.fullmatch(path) is None:
            raise _Invalid(f"{_show(path)} is not a field mask path of lowerCamelCase names")
    return {"paths": [_CAMEL_HUMP.sub(lambda m: "_" + m.group().lower(), p) for p in paths]}


def _check_json(value: Any, depth: int, max_depth: int) -> None:
    """Validate a JSON value held by a google.protobuf.Value at ``depth``."""
    if depth > max_depth:
        raise _too_deep(max_depth)
    kind = type(value)
    if kind is str:
        _convert_string(value, depth)
    elif kind is float or kind is int:
        _CONVERT_DOUBLE(value, depth)
    elif isinstance(value, dict):
        name = ""
        try:
            for name, item in value.items():
                _check_json(item, depth + 2, max_depth)  # Value → Struct → Value
        except _Invalid as exc:
            exc.segments.append("." + name)
            raise
    elif isinstance(value, list):
        _check_list(value, depth + 2, max_depth)
    elif value is not None and kind is not bool:
        raise _Invalid(f"expected a JSON value, got {kind.__name__}")


def _check_list(items: list[Any], depth: int, max_depth: int) -> None:
    index = 0
    try:
        for index, item in enumerate(items):
            _check_json(item, depth, max_depth)
    except _Invalid as exc:
        exc.segments.append(f"[{index}]")
        raise


def _too_deep(max_depth: int) -> _Invalid:
    return _Invalid(f"nesting is deeper than {max_depth} message levels")


# --------------------------------------------------------------------------- encode helpers


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
    pack, unpack = _F32.pack, _F32.unpack
    for precision in (6, 7, 8):
        rounded = float("%.*g" % (precision, value))
        if unpack(pack(rounded))[0] == value:
            return rounded
    return float("%.9g" % value)


def _timestamp(message: Any) -> str:
    seconds, nanos = message.seconds, message.nanos
    if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX or not 0 <= nanos < 1_000_000_000:
        raise _encode_error(f"Timestamp {seconds}s {nanos}ns is out of range")
    text = (_EPOCH + datetime.timedelta(0, seconds)).isoformat()
    return text + _fraction(nanos) + "Z"


def _fraction(nanos: int) -> str:
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return ".%03d" % (nanos // 1_000_000)
    if nanos % 1000 == 0:
        return ".%06d" % (nanos // 1000)
    return ".%09d" % nanos


def _duration(message: Any) -> str:
    seconds, nanos = message.seconds, message.nanos
    if (
        not -_DURATION_MAX <= seconds <= _DURATION_MAX
        or not -1_000_000_000 < nanos < 1_000_000_000
        or (nanos < 0 < seconds)
        or (seconds < 0 < nanos)
    ):
        raise _encode_error(f"Duration {seconds}s {nanos}ns is out of range")
    if seconds < 0 or nanos < 0:
        return f"-{-seconds}{_fraction(-nanos)}s"
    return f"{seconds}{_fraction(nanos)}s"


def _field_mask(message: Any) -> str:
    return ",".join(_camel_path(path) for path in message.paths)


def _camel_path(path: str) -> str:
    """json_format's snake_case → lowerCamelCase for FieldMask output, with its refusals."""
    result = []
    after_underscore = False
    for char in path:
        if char.isupper():
            raise _encode_error(f"FieldMask path {_show(path)} has an uppercase letter")
        if after_underscore:
            if not char.islower():
                raise _encode_error(f"FieldMask path {_show(path)} has no lowerCamelCase form")
            result.append(char.upper())
            after_underscore = False
        elif char == "_":
            after_underscore = True
        else:
            result.append(char)
    if after_underscore:
        raise _encode_error(f"FieldMask path {_show(path)} ends with an underscore")
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
        return [_value(item) for item in message.list_value.values]
    return getattr(message, kind)


def _struct(message: Any) -> dict[str, Any]:
    return {key: _value(item) for key, item in message.fields.items()}


def _list_value(message: Any) -> list[Any]:
    return [_value(item) for item in message.values]


class _EnumNames(dict[int, Any]):
    """Number → name; unknown numbers (open enums) stay numbers, as json_format prints them."""

    def __missing__(self, number: int) -> int:
        return number


# --------------------------------------------------------------------------- codecs


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
        "_tables",
        "_value",
        "descriptor",
        "message_class",
    )

    def __init__(self, codecs: Codecs, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.message_class: type[Message] = message_class(descriptor)
        self._codecs = codecs
        # Decoding runs in two modes.  The fast one hands values the constructor
        # checks as well as we would (a str for a string field, an int for an
        # integer field...) to it unconverted; if the constructor then refuses
        # something, the strict mode converts and checks every value itself, so
        # that the 400 names the field.
        self._tables: tuple[Table, Table] = ({}, {})  # fast, strict; filled when linking
        self._value: Converter = _unlinked
        self._strict_value: Converter = _unlinked
        self._make: Maker = self._construct
        self._strict_make: Maker = self._construct_strict
        self._encode: Encoder = _unlinked
        self._namespace: dict[str, Any] = dict(_ENCODE_HELPERS)
        self._links: dict[str, str] = {}  # generated name → full name of the type it encodes
        self._field_encoders: dict[str, Encoder] = {}

    # ---- public API

    def decode(self, value: JsonValue, *, path: str = "") -> Message:
        """The message for ``value``; a GatewayError 400 names the JSON path of a bad value."""
        try:
            return self._make(value, 0)
        except _Invalid as exc:
            raise self._invalid(exc, path) from None
        except (TypeError, ValueError, OverflowError):
            pass  # the constructor refused an unconverted value: redo it strictly
        try:
            return self._strict_make(value, 0)
        except _Invalid as exc:
            raise self._invalid(exc, path) from None
        except (TypeError, ValueError, OverflowError):
            return self._decode_fallback(value, path)

    def encode(self, message: Message) -> JsonValue:
        return self._encode(message)

    def encode_field(self, message: Message, field_name: str) -> JsonValue:
        """One field's JSON value (``response_body``); an unset field gives its default."""
        encoder = self._field_encoders.get(field_name)
        if encoder is None:
            field = self.descriptor.fields_by_name[field_name]
            source = f"lambda m: {_value_expression(field, _attribute('m', field.name), self)}"
            encoder = eval(source, self._namespace)  # noqa: S307 - generated from the descriptor
            self._codecs._link_encoders(self)
            self._field_encoders[field_name] = encoder
        return encoder(message)

    def dumps(self, message: Message) -> bytes:
        """Compact, single-line JSON: unary bodies and stream frames alike (contract §4)."""
        return orjson.dumps(self._encode(message))

    # ---- decoding

    def _construct(self, value: Any, depth: int) -> Message:
        return self.message_class(**self._value(value, depth))

    def _construct_strict(self, value: Any, depth: int) -> Message:
        return self.message_class(**self._strict_value(value, depth))

    def _invalid(self, exc: _Invalid, path: str) -> GatewayError:
        return GatewayError.invalid_argument(exc.path(path) or self.descriptor.name, exc.reason)

    def _decode_fallback(self, value: Any, path: str) -> Message:
        """The constructor refused checked values (a bug of ours): let json_format decide."""
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
        except Exception as exc:  # noqa: BLE001 - ParseDict leaks TypeError, KeyError...
            lines = str(exc).strip().splitlines() or ["invalid value"]
            raise GatewayError.invalid_argument(path or self.descriptor.name, lines[0]) from None
        return message


Table = dict[str, tuple[str, Converter, type | None, str | None, Any]]
Maker = Callable[[Any, int], Message]


def _unlinked(value: Any, depth: int = 0) -> Any:
    raise AssertionError("codec used before it was linked")  # pragma: no cover


def _attribute(owner: str, name: str) -> str:
    return f"getattr({owner}, {name!r})" if keyword.iskeyword(name) else f"{owner}.{name}"


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _element_encoder(field: FieldDescriptor, codec: MessageCodec) -> str | None:
    """Name (in the codec's namespace) of the function that encodes one value of ``field``."""
    cpp = field.cpp_type
    if cpp in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return "str"
    if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
        return "_double"
    if cpp == FieldDescriptor.CPPTYPE_FLOAT:
        return "_float"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "_b64"
    namespace = codec._namespace
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        enum = field.enum_type
        if codec._codecs.options.use_enum_numbers:
            return None
        if enum.full_name == _NULL_VALUE:
            return "_null"
        name = "_enum_" + _identifier(enum.full_name)
        if name not in namespace:
            names = _EnumNames((v.number, v.name) for v in enum.values)
            namespace[name] = names.__getitem__
        return name
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        name = "_msg_" + _identifier(field.message_type.full_name)
        if name not in namespace:
            namespace[name] = _unlinked  # the real function is set when linking
            codec._links[name] = field.message_type.full_name
        return name
    return None


def _identifier(full_name: str) -> str:
    """A distinct identifier for a full name (``a.b_c`` and ``a_b.c`` must not collide)."""
    return full_name.replace("_", "__").replace(".", "_")


def _value_expression(field: FieldDescriptor, source: str, codec: MessageCodec) -> str:
    """Python expression for the JSON form of ``field`` read from ``source``."""
    if _is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_fn = _element_encoder(field.message_type.fields_by_name["value"], codec)
        if key_field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
            key = "('true' if k else 'false')"
        elif key_field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
            key = "k"
        else:
            key = "str(k)"
        if key == "k" and value_fn is None:
            return f"dict({source})"
        value = "v" if value_fn is None else f"{value_fn}(v)"
        return f"{{{key}: {value} for k, v in {source}.items()}}"
    function = _element_encoder(field, codec)
    if field.is_repeated:
        return f"list({source})" if function is None else f"list(map({function}, {source}))"
    return source if function is None else f"{function}({source})"


def _encoder_source(codec: MessageCodec) -> str:
    """``def encode(m)`` for a regular message, fields in declaration order."""
    options = codec._codecs.options
    lines = ["def encode(m):", "    d = {}"]
    for field in codec.descriptor.fields:
        key = field.name if options.use_proto_names else field.json_name
        read = _attribute("m", field.name)
        if field.has_presence:
            lines.append(f"    if m.HasField({field.name!r}):")
            lines.append(f"        d[{key!r}] = {_value_expression(field, read, codec)}")
        elif options.emit_unpopulated:
            lines.append(f"    d[{key!r}] = {_value_expression(field, read, codec)}")
        else:
            lines.append(f"    v = {read}")
            floating = field.cpp_type in (
                FieldDescriptor.CPPTYPE_DOUBLE,
                FieldDescriptor.CPPTYPE_FLOAT,
            )
            test = "v or _copysign(1.0, v) < 0.0" if floating and not field.is_repeated else "v"
            lines.append(f"    if {test}:")
            lines.append(f"        d[{key!r}] = {_value_expression(field, 'v', codec)}")
    lines.append("    return d")
    return "\n".join(lines)


def _null_for(field: FieldDescriptor) -> Any:
    """The kwarg for a JSON null: unset, except Value (null_value) and NullValue (0)."""
    if field.is_repeated:
        return None
    if field.message_type is not None and field.message_type.full_name == _VALUE:
        return {"null_value": 0}
    if field.enum_type is not None and field.enum_type.full_name == _NULL_VALUE:
        return 0
    return None


class _ConflictError(TypeError):
    """A field given twice, or two fields of one oneof: the strict decoder names the key."""


def _raise_twice_given(value: dict[str, Any], table: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for key in value:
        entry = table.get(key)
        if entry is None:
            continue
        if entry[0] in seen:
            exc = _Invalid(f"field given twice, as {_show(seen[entry[0]])} and {_show(key)}")
            exc.segments.append("." + key)
            raise exc
        seen[entry[0]] = key


_DECODE_HELPERS: Final[dict[str, Any]] = {
    "_object": _object,
    "_too_deep": _too_deep,
    "_Invalid": _Invalid,
    "_Conflict": _ConflictError,
}
_ENCODE_HELPERS: Final[dict[str, Any]] = {
    "_double": _double,
    "_float": _float,
    "_b64": _b64,
    "_null": lambda value: None,
    "_copysign": math.copysign,
}


def _raw_type(field: FieldDescriptor) -> type | None:
    """The JSON type a field's value may keep without conversion, or None.

    For singular strings, 32-bit integers and open enums the constructor checks a
    JSON value exactly as strictly as we would, so those pass untouched (``_SAFE``).
    For the rest only the type is ours to check: the constructor would take a
    string as a list of characters, ints for bools, infinities for floats.
    """
    cpp = field.cpp_type
    if _is_map(field):
        key = field.message_type.fields_by_name["key"]
        value = field.message_type.fields_by_name["value"]
        if key.cpp_type == FieldDescriptor.CPPTYPE_STRING and _raw_type(value) is _SAFE:
            return dict
        return None
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        enum = field.enum_type
        raw: type | None = None if enum.is_closed or enum.full_name == _NULL_VALUE else _SAFE
    elif cpp == FieldDescriptor.CPPTYPE_STRING:
        raw = None if field.type == FieldDescriptor.TYPE_BYTES else _SAFE
    elif cpp in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_UINT32):
        raw = _SAFE
    elif cpp in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        raw = int  # but usually a string
    elif cpp == FieldDescriptor.CPPTYPE_BOOL:
        raw = bool
    else:
        raw = None  # floats: the constructor takes booleans, infinities, 1e39 for float32
    if field.is_repeated:
        return list if raw is _SAFE else None
    return raw


class _SAFE:  # noqa: N801 - a marker type no JSON value has
    """Marks fields whose values the constructor checks itself."""


_UNROLL_LIMIT: Final = 40


@dataclass(frozen=True, slots=True)
class _KeyPlan:
    """What the fast decoder does with one JSON key (see ``_raw_type``)."""

    key: str
    field: FieldDescriptor
    raw: type | None
    oneof: str | None


def _decode_plan(descriptor: Descriptor) -> list[_KeyPlan]:
    """The JSON keys the fast decoder must look at, JSON names first."""
    sizes: dict[str, int] = {}
    for field in descriptor.fields:
        if field.containing_oneof is not None:
            name = field.containing_oneof.name
            sizes[name] = sizes.get(name, 0) + 1
    plan = []
    for field in descriptor.fields:
        oneof = field.containing_oneof
        # proto3 `optional` makes a one-field oneof: nothing to check there
        oneof_name = oneof.name if oneof is not None and sizes[oneof.name] > 1 else None
        raw = _raw_type(field)
        for key in dict.fromkeys((field.json_name, field.name)):
            if raw is not _SAFE or oneof_name is not None or key != field.name:
                plan.append(_KeyPlan(key, field, raw, oneof_name))
    return plan


def _decoder_source(plan: list[_KeyPlan], options: JsonOptions) -> str:
    """``def decode(value, depth)`` returning constructor kwargs, one block per planned key."""
    max_depth = options.max_depth
    lines = [
        "def decode(value, depth):",
        "    if type(value) is not dict:",
        "        value = _object(value)",
        "    depth += 1",
        f"    if depth > {max_depth}:",
        f"        raise _too_deep({max_depth})",
        "    kwargs = value.copy()",
    ]
    if options.ignore_unknown_fields:
        lines += ["    for key in value.keys() - _known:", "        del kwargs[key]"]
    oneofs = sorted({p.oneof for p in plan if p.oneof is not None})
    lines += [f"    oneof_{i} = False" for i in range(len(oneofs))]
    lines += ["    key = ''", "    try:"]
    for p in plan:
        name, key = p.field.name, p.key
        renamed = key != name
        lines += [
            f"        if {key!r} in value:",
            f"            key = {key!r}",
            f"            item = value[{key!r}]",
        ]
        if renamed:
            lines += [
                f"            del kwargs[{key!r}]",
                f"            if {name!r} in kwargs:",
                "                raise _Conflict",
            ]
        if p.raw is _SAFE:
            lines.append(f"            kwargs[{name!r}] = item")
        else:
            null = _null_for(p.field)
            lines += [
                "            if item is None:",
                f"                kwargs[{name!r}] = {null!r}",
            ]
            if p.raw is not None:
                keep = f"kwargs[{name!r}] = item" if renamed else "pass"
                lines += [
                    f"            elif type(item) is {p.raw.__name__}:",
                    f"                {keep}",
                ]
            lines += [
                "            else:",
                f"                kwargs[{name!r}] = _convert{p.field.index}(item, depth)",
            ]
        if p.oneof is not None:
            flag = f"oneof_{oneofs.index(p.oneof)}"
            lines += [
                "            if item is not None:",
                f"                if {flag}:",
                "                    raise _Conflict",
                f"                {flag} = True",
            ]
    lines += [
        "        pass",
        "    except _Invalid as exc:",
        "        exc.segments.append('.' + key)",
        "        raise",
        "    return kwargs",
    ]
    return "\n".join(lines)


class Codecs:
    """Builds and caches one ``MessageCodec`` per message type for one set of options."""

    def __init__(self, pool: DescriptorPool, options: JsonOptions) -> None:
        self.pool = pool
        self.options = options
        self._codecs: dict[str, MessageCodec] = {}

    def codec(self, descriptor: Descriptor) -> MessageCodec:
        """The codec for ``descriptor``, built with every type it reaches on first use."""
        codec = self._codecs.get(descriptor.full_name)
        if codec is not None:
            return codec
        created: list[MessageCodec] = []
        pending = [descriptor]
        while pending:
            current = pending.pop()
            if current.full_name in self._codecs:
                continue
            codec = MessageCodec(self, current)
            self._codecs[current.full_name] = codec
            created.append(codec)
            for field in current.fields:
                target = _message_type(field)
                if target is not None:
                    pending.append(target)
        for codec in created:  # every codec's functions exist before any table refers to them
            self._prepare(codec)
        for codec in created:
            self._link(codec)
        return self._codecs[descriptor.full_name]

    def any_to_json(self, value: Message) -> JsonObject | None:
        """A google.protobuf.Any as its proto3 JSON object; None when its type is not in the pool."""
        try:
            return self._any(value)
        except _UnknownAnyError:
            return None

    # ---- building

    def _prepare(self, codec: MessageCodec) -> None:
        """Create the decode and encode functions that other codecs call."""
        full_name = codec.descriptor.full_name
        if full_name in _WRAPPERS:
            self._prepare_wrapper(codec)
        elif full_name in _SPECIAL:
            self._prepare_special(codec)
        else:
            codec._value = self._fast_decoder(codec)
            codec._strict_value = self._strict_decoder(codec._tables[1])
            exec(_encoder_source(codec), codec._namespace)  # noqa: S102 - from the descriptor
            codec._encode = codec._namespace["encode"]

    def _link(self, codec: MessageCodec) -> None:
        """Point field tables and generated code at the functions of the types they reach."""
        self._link_encoders(codec)
        if codec.descriptor.full_name in _SPECIAL:
            return
        fast, strict = codec._tables
        fields = codec.descriptor.fields
        oneof_sizes: dict[str, int] = {}
        for field in fields:
            if field.containing_oneof is not None:
                name = field.containing_oneof.name
                oneof_sizes[name] = oneof_sizes.get(name, 0) + 1
        for field in fields:
            oneof = field.containing_oneof
            # proto3 `optional` makes a one-field oneof: nothing to check there
            oneof_name = oneof.name if oneof is not None and oneof_sizes[oneof.name] > 1 else None
            null = _null_for(field)
            convert = self._field_converter(field, strict=False)
            raw = _raw_type(field)
            strict_entry = (
                field.name,
                self._field_converter(field, strict=True),
                None,
                oneof_name,
                null,
            )
            codec._namespace[f"_convert{field.index}"] = convert
            for key in (field.name, field.json_name):
                strict[key] = strict_entry
                if raw is _SAFE and oneof_name is None:
                    if key != field.name:  # only renamed
                        fast[key] = (field.name, None, None, None, null)
                else:
                    fast[key] = (field.name, convert, raw, oneof_name, null)

    def _link_encoders(self, codec: MessageCodec) -> None:
        for name, full_name in codec._links.items():
            codec._namespace[name] = self._codecs[full_name]._encode

    def _field_converter(self, field: FieldDescriptor, *, strict: bool) -> Converter:
        ignore = self.options.ignore_unknown_fields
        if _is_map(field):
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            value = self._single_converter(value_field, strict=strict, in_map=True)
            drops = ignore and value_field.cpp_type == FieldDescriptor.CPPTYPE_ENUM
            return _map_converter(_map_key_converter(key_field), value, drops)
        if field.is_repeated:
            if field.type == FieldDescriptor.TYPE_STRING:
                return _repeated_strings
            drops = ignore and field.cpp_type == FieldDescriptor.CPPTYPE_ENUM
            return _repeated_converter(self._single_converter(field, strict=strict), drops)
        return self._single_converter(field, strict=strict)

    def _single_converter(
        self, field: FieldDescriptor, *, strict: bool, in_map: bool = False
    ) -> Converter:
        cpp = field.cpp_type
        if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
            target = self._codecs[field.message_type.full_name]
            if in_map and target.descriptor.full_name in (_STRUCT, _LIST_VALUE):
                return target._make  # as map values these take messages, not plain JSON
            return target._strict_value if strict else target._value
        if cpp == FieldDescriptor.CPPTYPE_ENUM:
            return _enum_converter(field.enum_type, self.options.ignore_unknown_fields)
        if cpp == FieldDescriptor.CPPTYPE_STRING:
            return _convert_bytes if field.type == FieldDescriptor.TYPE_BYTES else _convert_string
        return _SCALAR_CONVERTERS[cpp]

    def _fast_decoder(self, codec: MessageCodec) -> Converter:
        """Copy the object, then touch only keys to rename, convert or check (``_raw_type``).

        Up to ``_UNROLL_LIMIT`` such keys, a generated function tests for each in
        turn; past it, a loop over the keys present is cheaper.
        """
        plan = _decode_plan(codec.descriptor)
        if len(plan) <= _UNROLL_LIMIT:
            namespace = codec._namespace
            namespace.update(_DECODE_HELPERS)
            namespace["_known"] = frozenset(
                f for field in codec.descriptor.fields for f in (field.name, field.json_name)
            )
            exec(_decoder_source(plan, self.options), namespace)
            return namespace["decode"]  # type: ignore[no-any-return]
        return self._table_decoder(codec)

    def _table_decoder(self, codec: MessageCodec) -> Converter:
        table = codec._tables[0]
        known = codec._tables[1].keys()
        special = table.keys()
        ignore = self.options.ignore_unknown_fields
        max_depth = self.options.max_depth

        def decode(value: Any, depth: int) -> dict[str, Any]:
            if type(value) is not dict:
                value = _object(value)
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
            kwargs = value.copy()
            if ignore:
                for key in value.keys() - known:
                    del kwargs[key]
            oneofs: set[str] | None = None
            key = ""
            try:
                for key in special & value.keys():
                    name, convert, raw, oneof, null = table[key]
                    item = value[key]
                    if name != key:
                        del kwargs[key]
                        if name in kwargs:
                            raise _ConflictError
                    if item is None:
                        kwargs[name] = null
                        continue
                    if convert is not None and type(item) is not raw:
                        item = convert(item, depth)
                    kwargs[name] = item
                    if oneof is not None:
                        if oneofs is None:
                            oneofs = {oneof}
                        elif oneof in oneofs:
                            raise _ConflictError
                        else:
                            oneofs.add(oneof)
            except _Invalid as exc:
                exc.segments.append("." + key)
                raise
            return kwargs

        return decode

    def _strict_decoder(self, table: Table) -> Converter:
        ignore = self.options.ignore_unknown_fields
        max_depth = self.options.max_depth

        def decode(value: Any, depth: int) -> dict[str, Any]:
            if type(value) is not dict:
                value = _object(value)
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
            kwargs: dict[str, Any] = {}
            oneofs: set[str] | None = None
            skipped = 0
            key = ""
            try:
                for key, item in value.items():
                    entry = table.get(key)
                    if entry is None:
                        if ignore:
                            skipped += 1
                            continue
                        raise _Invalid(f"unknown field {_show(key)}")
                    name, convert, _, oneof, null = entry
                    if item is None:
                        kwargs[name] = null
                        continue
                    kwargs[name] = convert(item, depth)
                    if oneof is not None:
                        if oneofs is None:
                            oneofs = {oneof}
                        elif oneof in oneofs:
                            raise _Invalid(f'a second field of oneof "{oneof}"')
                        else:
                            oneofs.add(oneof)
            except _Invalid as exc:
                exc.segments.append("." + key)
                raise
            if len(kwargs) + skipped != len(value):
                _raise_twice_given(value, table)
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
        source = f"lambda m: {_value_expression(field, 'm.value', codec)}"
        codec._encode = eval(source, codec._namespace)  # noqa: S307 - from the descriptor

    def _prepare_special(self, codec: MessageCodec) -> None:
        full_name = codec.descriptor.full_name
        max_depth = self.options.max_depth
        cls = codec.message_class
        if full_name == _ANY:
            codec._value = self._any_decoder(strict=False)
            codec._strict_value = self._any_decoder(strict=True)
            codec._encode = self._any_or_raise
            return
        if full_name == _STRUCT:

            def struct_value(value: Any, depth: int) -> dict[str, Any]:
                if type(value) is not dict:
                    value = _object(value)
                if depth >= max_depth:
                    raise _too_deep(max_depth)
                _check_json(value, depth, max_depth)  # as if held by a Value one level up
                return value  # the constructor reads a plain dict into a Struct field

            def make_struct(value: Any, depth: int) -> Message:
                message = cls()
                message.update(struct_value(value, depth))  # type: ignore[attr-defined]
                return message

            codec._value = codec._strict_value = struct_value
            codec._make = codec._strict_make = make_struct
            codec._encode = _struct
            return
        if full_name == _LIST_VALUE:

            def list_value(value: Any, depth: int) -> list[Any]:
                if type(value) is not list:
                    value = _array(value)
                if depth >= max_depth:
                    raise _too_deep(max_depth)
                _check_list(value, depth + 2, max_depth)
                return value

            def make_list(value: Any, depth: int) -> Message:
                message = cls()
                message.extend(list_value(value, depth))  # type: ignore[attr-defined]
                return message

            codec._value = codec._strict_value = list_value
            codec._make = codec._strict_make = make_list
            codec._encode = _list_value
            return
        if full_name == _VALUE:

            def value_kwargs(value: Any, depth: int) -> dict[str, Any]:
                if depth >= max_depth:
                    raise _too_deep(max_depth)
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
            return
        parse, encode = _LEAVES[full_name]

        def leaf(value: Any, depth: int) -> dict[str, Any]:
            if depth >= max_depth:
                raise _too_deep(max_depth)
            return parse(value, depth)  # type: ignore[no-any-return]

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
            try:
                descriptor = self.pool.FindMessageTypeByName(type_url.rpartition("/")[2])
            except KeyError:
                exc = _Invalid(f"unknown type {_show(type_url)}")
                exc.segments.append(".@type")
                raise exc from None
            inner = self.codec(descriptor)
            make = inner._strict_make if strict else inner._make
            if descriptor.full_name not in _SPECIAL:
                fields = {k: v for k, v in value.items() if k != "@type"}
                message = make(fields, depth)  # the fields sit in the Any's own object
            else:
                extra = [k for k in value if k not in ("@type", "value")]
                if "value" not in value or (extra and not ignore):
                    missing = "value" not in value
                    exc = _Invalid('missing "value"' if missing else "unknown field")
                    exc.segments.append(".value" if missing else "." + extra[0])
                    raise exc
                try:
                    message = make(value["value"], depth + 1)
                except _Invalid as exc:
                    exc.segments.append(".value")
                    raise
            return {"type_url": type_url, "value": message.SerializeToString()}

        return decode

    def _any(self, value: Any) -> JsonObject:
        type_url, payload = value.type_url, value.value
        if not type_url and not payload:
            return {}
        try:
            descriptor = self.pool.FindMessageTypeByName(type_url.rpartition("/")[2])
        except KeyError:
            raise _UnknownAnyError(type_url) from None
        codec = self.codec(descriptor)
        try:
            inner = codec.message_class.FromString(payload)
        except DecodeError:
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
                f"Any type {_show(exc.type_url)} is unknown or undecodable"
            ) from None


_LEAVES: Final[dict[str, tuple[Converter, Encoder]]] = {
    _TIMESTAMP: (_parse_timestamp, _timestamp),
    _DURATION: (_parse_duration, _duration),
    _FIELD_MASK: (_parse_field_mask, _field_mask),
}


def _message_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type a field holds (a map's value type for maps), if any."""
    target = field.message_type
    if target is not None and target.GetOptions().map_entry:
        target = target.fields_by_name["value"].message_type
    return target  # type: ignore[no-any-return]


class _UnknownAnyError(Exception):
    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self.type_url = type_url


# --------------------------------------------------------------------------- field paths


def field_paths(descriptor: Descriptor, value: JsonValue) -> list[str]:
    """Dotted proto-name paths a JSON object sets (grpc-gateway's FieldMaskFromRequestBody).

    Recurses into singular, non-WKT message fields whose value is an object; a
    map, repeated, WKT or scalar field is a leaf.  Unknown keys are skipped.
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
