"""Field values from their proto3 JSON text form (query parameters, path variables).

Strict, as contract §3 asks: integers in plain decimal, booleans
``true``/``false``, enums by name or number, bytes as base64 (standard or
URL-safe, padding optional), Timestamp RFC 3339, Duration ``1.5s``, wrappers
as the wrapped scalar, FieldMask ``fooBar,baz.quxQuux``.  Every failure is a 400
naming the parameter.  ``query.py`` decides which field a text sets; this module
only turns the text into the value.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from transcoder.errors import GatewayError

# Names echoed in error messages are cut to this many characters.
_MAX_SHOWN = 200


def invalid(name: str, reason: str) -> GatewayError:
    """The 400 for one parameter; a long name is cut."""
    shown = name if len(name) <= _MAX_SHOWN else name[:_MAX_SHOWN] + "…"
    return GatewayError.invalid_argument(shown, reason)


# -- scalar values ------------------------------------------------------------

_DECIMAL = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_FLOAT_MAX = 3.4028234663852886e38  # largest finite float32
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*(={1,2})?")

_T = FieldDescriptor
_INT_RANGES: dict[int, tuple[str, int, int]] = {
    _T.TYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    _T.TYPE_SINT32: ("sint32", -(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: ("sfixed32", -(2**31), 2**31 - 1),
    _T.TYPE_UINT32: ("uint32", 0, 2**32 - 1),
    _T.TYPE_FIXED32: ("fixed32", 0, 2**32 - 1),
    _T.TYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    _T.TYPE_SINT64: ("sint64", -(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: ("sfixed64", -(2**63), 2**63 - 1),
    _T.TYPE_UINT64: ("uint64", 0, 2**64 - 1),
    _T.TYPE_FIXED64: ("fixed64", 0, 2**64 - 1),
}

Scalar = int | float | bool | str | bytes


def _parse_decimal(text: str, name: str, kind: str, low: int, high: int) -> int:
    if not _DECIMAL.fullmatch(text):
        raise invalid(name, f"expected a decimal integer ({kind})")
    # Bound the digits before int(): a 5,000-digit number must stay cheap (reliability J10).
    if len(text.lstrip("-").lstrip("0")) > 20:
        raise invalid(name, f"out of range for {kind}")
    number = int(text)
    if not low <= number <= high:
        raise invalid(name, f"out of range for {kind}")
    return number


def _parse_float(text: str, name: str, single: bool) -> float:
    kind = "float" if single else "double"
    special = _FLOAT_SPECIAL.get(text)
    if special is not None:
        return special
    if not _FLOAT.fullmatch(text):
        raise invalid(name, f"expected a decimal number, NaN, Infinity or -Infinity ({kind})")
    number = float(text)
    if math.isinf(number) or (single and abs(number) > _FLOAT_MAX):
        raise invalid(name, f"out of range for {kind}")
    return number


def _parse_bool(text: str, name: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise invalid(name, "expected true or false")


def _parse_bytes(text: str, name: str) -> bytes:
    """Standard or URL-safe base64, padding optional (as proto3 JSON parsers accept)."""
    match = _BASE64.fullmatch(text)
    padded = match is not None and match.group(1) is not None
    if match is None or len(text) % 4 == 1 or (padded and len(text) % 4 != 0):
        raise invalid(name, "expected base64 (standard or URL-safe alphabet)")
    standard = text.replace("-", "+").replace("_", "/")
    if not padded:
        standard += "=" * (-len(standard) % 4)
    # The checks above leave only input b64decode accepts.
    return base64.b64decode(standard, validate=True)


@functools.lru_cache(maxsize=256)
def _folded_enum_names(enum: EnumDescriptor) -> dict[str, int]:
    folded: dict[str, int] = {}
    for value in enum.values:
        folded.setdefault(value.name.casefold(), value.number)
    return folded


def _parse_enum(enum: EnumDescriptor, text: str, name: str, case_insensitive: bool) -> int:
    value = enum.values_by_name.get(text)
    if value is not None:
        return value.number
    if case_insensitive:
        number = _folded_enum_names(enum).get(text.casefold())
        if number is not None:
            return number
    if _DECIMAL.fullmatch(text):
        number = _parse_decimal(text, name, enum.full_name, -(2**31), 2**31 - 1)
        # A closed enum cannot hold an undefined number (reliability J21, Q11).
        if enum.is_closed and number not in enum.values_by_number:
            raise invalid(name, f"{number} is not a value of closed enum {enum.full_name}")
        return number
    raise invalid(name, f"not a value of enum {enum.full_name}")


def parse_scalar(
    field: FieldDescriptor, text: str, name: str, case_insensitive_enums: bool
) -> Scalar:
    kind = field.type
    if kind in _INT_RANGES:
        label, low, high = _INT_RANGES[kind]
        return _parse_decimal(text, name, label, low, high)
    if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _parse_float(text, name, single=kind == _T.TYPE_FLOAT)
    if kind == _T.TYPE_BOOL:
        return _parse_bool(text, name)
    if kind == _T.TYPE_STRING:
        return text
    if kind == _T.TYPE_BYTES:
        return _parse_bytes(text, name)
    assert field.enum_type is not None  # message fields never get here; enums are left
    return _parse_enum(field.enum_type, text, name, case_insensitive_enums)


# -- well-known types -----------------------------------------------------------

# Field values to write into the well-known type's message.
_WktValues = dict[str, Scalar | list[str]]

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_TIMESTAMP_MIN = -62135596800  # 0001-01-01T00:00:00Z
_TIMESTAMP_MAX = 253402300799  # 9999-12-31T23:59:59Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DURATION = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{1,9}))?s")
_DURATION_MAX = 315576000000  # 10,000 years, the proto bound

_MASK_PATH = re.compile(r"[a-z][a-zA-Z0-9]*(?:\.[a-z][a-zA-Z0-9]*)*")
_UPPER = re.compile(r"[A-Z]")

_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
TEXT_FORM_TYPES = _WRAPPERS | {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


def _nanos(fraction: str | None) -> int:
    return int(fraction.ljust(9, "0")) if fraction else 0


def _parse_timestamp(text: str, name: str) -> _WktValues:
    """RFC 3339 with ``T`` and ``Z`` or a ``±hh:mm`` offset, up to nanoseconds."""
    expected = "expected an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        # An offset's '+' arrives as a space unless it was sent as %2B.
        hint = " (send a '+' in the offset as %2B)" if " " in text else ""
        raise invalid(name, expected + hint)
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise invalid(name, f"{expected} (no such date or time)") from None
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    if match.group(8):
        offset_hours, offset_minutes = int(match.group(9)), int(match.group(10))
        if offset_hours > 23 or offset_minutes > 59:
            raise invalid(name, f"{expected} (bad offset)")
        offset = offset_hours * 3600 + offset_minutes * 60
        seconds -= offset if match.group(8) == "+" else -offset
    if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX:
        raise invalid(name, "timestamp out of range (years 0001 to 9999)")
    return {"seconds": seconds, "nanos": _nanos(match.group(7))}


def _parse_duration(text: str, name: str) -> _WktValues:
    """Proto3 JSON: decimal seconds with up to 9 fraction digits and an ``s``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise invalid(name, "expected a duration in seconds such as 1.5s")
    digits = match.group(2)
    if len(digits.lstrip("0")) > 12 or int(digits) > _DURATION_MAX:
        raise invalid(name, "duration out of range (±315576000000s)")
    sign = -1 if match.group(1) else 1
    return {"seconds": sign * int(digits), "nanos": sign * _nanos(match.group(3))}


def _parse_field_mask(text: str, name: str) -> _WktValues:
    """``fooBar,baz.qux`` → paths ``foo_bar``, ``baz.qux`` (the proto3 JSON form)."""
    if not text:
        return {"paths": []}
    paths: list[str] = []
    for path in text.split(","):
        if not _MASK_PATH.fullmatch(path):
            raise invalid(name, "expected comma-separated lowerCamelCase field paths")
        paths.append(_UPPER.sub(lambda m: "_" + m.group(0).lower(), path))
    return {"paths": paths}


def _parse_wkt(
    descriptor: Descriptor, text: str, name: str, case_insensitive_enums: bool
) -> _WktValues:
    full_name = descriptor.full_name
    if full_name == "google.protobuf.Timestamp":
        return _parse_timestamp(text, name)
    if full_name == "google.protobuf.Duration":
        return _parse_duration(text, name)
    if full_name == "google.protobuf.FieldMask":
        return _parse_field_mask(text, name)
    if full_name in _WRAPPERS:
        value_field = descriptor.fields_by_name["value"]
        return {"value": parse_scalar(value_field, text, name, case_insensitive_enums)}
    raise invalid(name, f"cannot be set from the query (message type {full_name})")


def _fill(target: Message, values: _WktValues) -> None:
    target.SetInParent()  # present even when every value is the default
    for key, value in values.items():
        if isinstance(value, list):
            getattr(target, key).extend(value)
        else:
            setattr(target, key, value)


# Fills a well-known-type message (a singular field, a new element or a map value).
Writer = Callable[[Message], None]


def parse_value(
    field: FieldDescriptor, text: str, name: str, case_insensitive_enums: bool
) -> Writer | Scalar:
    """A scalar, or a function filling a fresh well-known-type message."""
    if field.message_type is None:
        return parse_scalar(field, text, name, case_insensitive_enums)
    values = _parse_wkt(field.message_type, text, name, case_insensitive_enums)
    return lambda target: _fill(target, values)
