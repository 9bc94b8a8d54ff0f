"""Well-known types ↔ JSON: Timestamp, Duration and FieldMask strings; Struct and Value checks.

``protojson.Codecs`` wires these into codecs; it builds the wrappers' and ``Any``'s
itself, since they convert values of other types.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Final

from transcoder.field_json import (
    _CONVERT_DOUBLE,
    Converter,
    Encoder,
    _convert_string,
    _encode_error,
    _expected,
    _Invalid,
    _out_of_range,
    _too_deep,
)
from transcoder.strict_json import _show

# ================================================================================ decoding

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


_LEAVES: Final[dict[str, tuple[Converter, Encoder]]] = {
    _TIMESTAMP: (_parse_timestamp, _timestamp),
    _DURATION: (_parse_duration, _duration),
    _FIELD_MASK: (_parse_field_mask, _field_mask),
}
