"""Field values ↔ proto3 JSON: the converters for scalars, enums, repeated fields and maps."""

from __future__ import annotations

import binascii
import math
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from transcoder.errors import GatewayError
from transcoder.strict_json import _LONE_SURROGATE, _show

# (JSON value, depth of the message that holds it) → constructor argument
Converter = Callable[[Any, int], Any]
Encoder = Callable[[Any], Any]

F = FieldDescriptor


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


class _EnumNames(dict[int, Any]):
    """Number → name; unknown numbers (open enums) stay numbers, as json_format prints them."""

    def __missing__(self, number: int) -> int:
        return number
