"""Query strings to field assignments, and field values from their text form.

Contract §3. A query string is split on ``&``, each piece on its first ``=``;
``+`` is a space and ``%XX`` is decoded exactly once; the result must be UTF-8.
Each key is a field path, each part the proto or the JSON name of a field;
``name[key]`` sets one map entry::

    nested.name=a+b&repeated_int32=1&repeated_int32=2&mapStringInt32[k]=7&color=RED
    → nested {name: "a b"} repeated_int32: [1, 2] map_string_int32 {"k": 7} color: RED

Values take their proto3 JSON text form, strictly: integers in plain decimal,
booleans ``true``/``false``, enums by name or number, bytes as base64 (standard
or URL-safe, padding optional), Timestamp RFC 3339, Duration ``1.5s``, wrappers
as the wrapped scalar, FieldMask ``fooBar,baz.quxQuux``. Every failure is a 400
naming the parameter (or, for path variables, the template's field path).

Deliberate differences from grpc-gateway's ``runtime/query.go``:

- an unknown parameter is a 400, not silently dropped (unless
  ``ignore_unknown`` or the key is listed in ``ignored``);
- booleans are only ``true``/``false`` (Go's ``ParseBool`` takes ``1``, ``t``, ``TRUE``…);
- integers reject what Python's ``int()`` takes beyond ``-?[0-9]+``
  (``+5``, ``1_000``, full-width digits, surrounding spaces);
- Duration is proto3 JSON (``1.5s``), not Go's ``1h2m``;
- FieldMask paths are lowerCamelCase, converted to snake_case as proto3 JSON does;
- ``Struct``, ``Value``, ``ListValue``, ``Any``, ``Empty`` and plain messages
  cannot be set from text (grpc-gateway parses ``Struct``/``Value`` as JSON);
- repeated well-known types with a text form (e.g. ``repeated Timestamp``) take
  one element per value, as in grpc-gateway; other repeated messages are a 400;
- a closed (proto2) enum takes only defined numbers; an open one any int32.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from urllib.parse import unquote_to_bytes

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from transcoder.errors import GatewayError

__all__ = [
    "MAX_FIELD_PATH_PARTS",
    "QueryOptions",
    "assign_text",
    "bind_query",
    "parse_query_string",
    "resolve_field_path",
]

# Deeper keys are refused before any lookup, so ``a.a.a…`` on a recursive
# message costs nothing (reliability Q5).
MAX_FIELD_PATH_PARTS = 32

# Names echoed in error messages are cut to this many characters.
_MAX_SHOWN = 200


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """How unknown parameters and enum names are treated (``request.*`` settings)."""

    case_insensitive_enums: bool = False
    ignore_unknown: bool = False
    ignored: frozenset[str] = frozenset()


def _invalid(name: str, reason: str) -> GatewayError:
    shown = name if len(name) <= _MAX_SHOWN else name[:_MAX_SHOWN] + "…"
    return GatewayError.invalid_argument(shown, reason)


# -- the query string -------------------------------------------------------

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _form_decode(raw: bytes) -> str:
    """One form-decoding pass; ValueError on a bad ``%`` or invalid UTF-8."""
    # '+' becomes a space before decoding, so an encoded '%2B' stays a '+'.
    decoded = raw.replace(b"+", b" ")
    if b"%" in decoded:
        if _BAD_PERCENT.search(decoded):
            raise ValueError("malformed percent-encoding")
        decoded = unquote_to_bytes(decoded)
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not valid UTF-8 after percent-decoding") from None


def parse_query_string(raw: bytes) -> list[tuple[str, str]]:
    """Split and decode a raw query string into ``(key, value)`` pairs, in order."""
    items: list[tuple[str, str]] = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition(b"=")
        try:
            key = _form_decode(raw_key)
        except ValueError as exc:
            raise _invalid("query", f"parameter name: {exc}") from None
        try:
            value = _form_decode(raw_value)
        except ValueError as exc:
            raise _invalid(key, str(exc)) from None
        items.append((key, value))
    return items


# -- field paths --------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _json_names(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {field.json_name: field for field in descriptor.fields}


def _field_named(descriptor: Descriptor, part: str) -> FieldDescriptor | None:
    field = descriptor.fields_by_name.get(part)
    return field if field is not None else _json_names(descriptor).get(part)


def _resolve_prefix(descriptor: Descriptor, path: Sequence[str]) -> list[FieldDescriptor]:
    """The fields named by the longest resolvable prefix of ``path``."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in path:
        field = _field_named(current, part) if current is not None else None
        if field is None:
            break
        fields.append(field)
        current = field.message_type
    return fields


def resolve_field_path(
    descriptor: Descriptor, path: Sequence[str]
) -> tuple[FieldDescriptor, ...] | None:
    """The fields named by ``path`` (proto or JSON names), or None if a part names none.

    Resolution passes through any message-typed field, repeated and map fields
    included; whether a field may be traversed or set is for the caller
    (``assign_text`` and ``bind_query`` refuse repeated and map parents).
    """
    if not path:
        return None
    fields = _resolve_prefix(descriptor, path)
    return tuple(fields) if len(fields) == len(path) else None


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.is_repeated
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def _check_traversable(field: FieldDescriptor, name: str) -> None:
    """Only singular message fields may have fields set inside them (reliability Q4).

    Well-known types are leaves: contract §3 sets them by their JSON string form
    only (``timestamp=2024-01-01T00:00:00Z``, not ``timestamp.seconds=...``), which
    also keeps values JSON cannot show (a Timestamp past year 9999) out.
    """
    if field.message_type is None:
        raise _invalid(name, f"{field.name} is not a message field; it has no fields to set")
    if field.message_type.full_name.startswith("google.protobuf."):
        raise _invalid(
            name, f"{field.name} is a {field.message_type.name}: set it by its JSON string form"
        )
    if _is_map(field):
        raise _invalid(name, f"cannot set a field inside map field {field.name}")
    if field.is_repeated:
        raise _invalid(name, f"cannot set a field inside repeated field {field.name}")


def _check_oneof(parent: Message, field: FieldDescriptor, name: str) -> None:
    oneof = field.containing_oneof
    if oneof is None:
        return
    current = parent.WhichOneof(oneof.name)
    if current is not None and current != field.name:
        raise _invalid(name, f"oneof {oneof.name} already has {current} set")


def _parent_of(message: Message, fields: Sequence[FieldDescriptor], name: str) -> Message:
    """The message holding the last field, checked but not created (no write yet)."""
    if not fields:
        raise ValueError("empty field path")
    current = message
    last = len(fields) - 1
    for index, field in enumerate(fields):
        if field.containing_type is not current.DESCRIPTOR:
            raise ValueError(f"{field.full_name} is not a field of {current.DESCRIPTOR.full_name}")
        _check_oneof(current, field, name)
        if index == last:
            break
        _check_traversable(field, name)
        current = getattr(current, field.name)
    return current


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

_Scalar = int | float | bool | str | bytes


def _parse_decimal(text: str, name: str, kind: str, low: int, high: int) -> int:
    if not _DECIMAL.fullmatch(text):
        raise _invalid(name, f"expected a decimal integer ({kind})")
    # Bound the digits before int(): a 5,000-digit number must stay cheap (reliability J10).
    if len(text.lstrip("-").lstrip("0")) > 20:
        raise _invalid(name, f"out of range for {kind}")
    number = int(text)
    if not low <= number <= high:
        raise _invalid(name, f"out of range for {kind}")
    return number


def _parse_float(text: str, name: str, single: bool) -> float:
    kind = "float" if single else "double"
    special = _FLOAT_SPECIAL.get(text)
    if special is not None:
        return special
    if not _FLOAT.fullmatch(text):
        raise _invalid(name, f"expected a decimal number, NaN, Infinity or -Infinity ({kind})")
    number = float(text)
    if math.isinf(number) or (single and abs(number) > _FLOAT_MAX):
        raise _invalid(name, f"out of range for {kind}")
    return number


def _parse_bool(text: str, name: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise _invalid(name, "expected true or false")


def _parse_bytes(text: str, name: str) -> bytes:
    """Standard or URL-safe base64, padding optional (as proto3 JSON parsers accept)."""
    match = _BASE64.fullmatch(text)
    padded = match is not None and match.group(1) is not None
    if match is None or len(text) % 4 == 1 or (padded and len(text) % 4 != 0):
        raise _invalid(name, "expected base64 (standard or URL-safe alphabet)")
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
            raise _invalid(name, f"{number} is not a value of closed enum {enum.full_name}")
        return number
    raise _invalid(name, f"not a value of enum {enum.full_name}")


def _parse_scalar(
    field: FieldDescriptor, text: str, name: str, case_insensitive_enums: bool
) -> _Scalar:
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
_WktValues = dict[str, _Scalar | list[str]]

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
_TEXT_FORM_TYPES = _WRAPPERS | {
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
        raise _invalid(name, expected + hint)
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _invalid(name, f"{expected} (no such date or time)") from None
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    if match.group(8):
        offset_hours, offset_minutes = int(match.group(9)), int(match.group(10))
        if offset_hours > 23 or offset_minutes > 59:
            raise _invalid(name, f"{expected} (bad offset)")
        offset = offset_hours * 3600 + offset_minutes * 60
        seconds -= offset if match.group(8) == "+" else -offset
    if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX:
        raise _invalid(name, "timestamp out of range (years 0001 to 9999)")
    return {"seconds": seconds, "nanos": _nanos(match.group(7))}


def _parse_duration(text: str, name: str) -> _WktValues:
    """Proto3 JSON: decimal seconds with up to 9 fraction digits and an ``s``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise _invalid(name, "expected a duration in seconds such as 1.5s")
    digits = match.group(2)
    if len(digits.lstrip("0")) > 12 or int(digits) > _DURATION_MAX:
        raise _invalid(name, "duration out of range (±315576000000s)")
    sign = -1 if match.group(1) else 1
    return {"seconds": sign * int(digits), "nanos": sign * _nanos(match.group(3))}


def _parse_field_mask(text: str, name: str) -> _WktValues:
    """``fooBar,baz.qux`` → paths ``foo_bar``, ``baz.qux`` (the proto3 JSON form)."""
    if not text:
        return {"paths": []}
    paths: list[str] = []
    for path in text.split(","):
        if not _MASK_PATH.fullmatch(path):
            raise _invalid(name, "expected comma-separated lowerCamelCase field paths")
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
        return {"value": _parse_scalar(value_field, text, name, case_insensitive_enums)}
    raise _invalid(name, f"cannot be set from the query (message type {full_name})")


def _fill(target: Message, values: _WktValues) -> None:
    target.SetInParent()  # present even when every value is the default
    for key, value in values.items():
        if isinstance(value, list):
            getattr(target, key).extend(value)
        else:
            setattr(target, key, value)


# Fills a well-known-type message (a singular field, a new element or a map value).
_Writer = Callable[[Message], None]


def _parse_value(
    field: FieldDescriptor, text: str, name: str, case_insensitive_enums: bool
) -> _Writer | _Scalar:
    """A scalar, or a function filling a fresh well-known-type message."""
    if field.message_type is None:
        return _parse_scalar(field, text, name, case_insensitive_enums)
    values = _parse_wkt(field.message_type, text, name, case_insensitive_enums)
    return lambda target: _fill(target, values)


# -- assignment ---------------------------------------------------------------


def assign_text(
    message: Message,
    fields: Sequence[FieldDescriptor],
    text: str,
    *,
    name: str,
    case_insensitive_enums: bool = False,
) -> None:
    """Set the field reached by ``fields`` from its text form; a repeated leaf appends.

    Parent messages are created only once the value has parsed, so a 400
    leaves ``message`` unchanged. ``name`` is what error messages call the value.
    """
    parent = _parent_of(message, fields, name)
    leaf = fields[-1]
    if _is_map(leaf):
        raise _invalid(name, f"map field {leaf.name} is set as {leaf.name}[key]=value")
    element = leaf.message_type if leaf.is_repeated else None
    if element is not None and element.full_name not in _TEXT_FORM_TYPES:
        raise _invalid(name, "a repeated message field cannot be set from the query")
    value = _parse_value(leaf, text, name, case_insensitive_enums)
    if callable(value):
        value(getattr(parent, leaf.name).add() if leaf.is_repeated else getattr(parent, leaf.name))
    elif leaf.is_repeated:
        getattr(parent, leaf.name).append(value)
    else:
        setattr(parent, leaf.name, value)
    if parent is not message:
        parent.SetInParent()


def _assign_map_entry(
    message: Message,
    fields: Sequence[FieldDescriptor],
    raw_key: str,
    text: str,
    *,
    name: str,
    case_insensitive_enums: bool,
) -> None:
    parent = _parent_of(message, fields, name)
    entry = fields[-1].message_type
    assert entry is not None  # a map field's entry type
    key = _parse_scalar(entry.fields_by_name["key"], raw_key, name, case_insensitive_enums)
    value = _parse_value(entry.fields_by_name["value"], text, name, case_insensitive_enums)
    container = getattr(parent, fields[-1].name)
    if key in container:
        raise _invalid(name, "map key given more than once")
    if callable(value):
        value(container[key])
    else:
        container[key] = value
    if parent is not message:
        parent.SetInParent()


_MAP_KEY = re.compile(r"([^\[\]]*)\[([^\[\]]+)\]")
_BRACKET = re.compile(r"[\[\]]")


def bind_query(
    message: Message,
    items: Sequence[tuple[str, str]],
    *,
    taken: Collection[str],
    options: QueryOptions,
) -> None:
    """Set fields of ``message`` from decoded query parameters (contract §3).

    ``taken`` holds the dotted proto-name paths the path variables and the body
    already set; a parameter on one of them, or inside one, is a 400.
    """
    descriptor = cast(Descriptor, message.DESCRIPTOR)  # the stubs also allow upb's own type
    singular_seen: set[str] = set()
    for key, text in items:
        if key in options.ignored:
            continue
        base = _BRACKET.split(key, maxsplit=1)[0]
        parts = base.split(".")
        if len(parts) > MAX_FIELD_PATH_PARTS:
            raise _invalid(key, f"field path has more than {MAX_FIELD_PATH_PARTS} parts")
        fields = _resolve_prefix(descriptor, parts)
        for field in fields[: len(parts) - 1]:
            _check_traversable(field, key)
        if len(fields) < len(parts):
            if options.ignore_unknown:
                continue
            if not key:
                raise _invalid("query", "a parameter has an empty name")
            raise _invalid(key, f"unknown query parameter: no such field in {descriptor.full_name}")
        map_key: str | None = None
        if base != key:
            bracketed = _MAP_KEY.fullmatch(key)
            if bracketed is None:
                raise _invalid(key, "malformed map parameter; expected name[key]=value")
            map_key = bracketed.group(2)
        dotted = [field.name for field in fields]
        for end in range(1, len(dotted) + 1):
            if ".".join(dotted[:end]) in taken:
                raise _invalid(key, f"{'.'.join(dotted[:end])} is already set by the path or body")
        leaf = fields[-1]
        if map_key is not None:
            if not _is_map(leaf):
                raise _invalid(key, f"{leaf.name} is not a map field")
            _assign_map_entry(
                message,
                fields,
                map_key,
                text,
                name=key,
                case_insensitive_enums=options.case_insensitive_enums,
            )
            continue
        if not leaf.is_repeated:
            path = ".".join(dotted)
            if path in singular_seen:
                raise _invalid(key, f"too many values for singular field {path}")
            singular_seen.add(path)
        assign_text(
            message,
            fields,
            text,
            name=key,
            case_insensitive_enums=options.case_insensitive_enums,
        )
