"""protojson: json_format as the oracle, every strict-JSON 400, field paths, compact output."""

from __future__ import annotations

import json
import math
import time
from typing import Any
from unittest import mock

import grpc
import orjson
import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PACKAGE
from transcoder import protojson
from transcoder.descriptors import message_class
from transcoder.errors import GatewayError
from transcoder.protojson import Codecs, JsonOptions, MessageCodec, field_paths, loads

Pool = descriptor_pool.DescriptorPool

OUTPUT_OPTIONS = [
    JsonOptions(use_proto_names=p, emit_unpopulated=e, use_enum_numbers=n)
    for p in (False, True)
    for e in (True, False)
    for n in (False, True)
]
OUTPUT_IDS = [
    f"{'proto' if o.use_proto_names else 'json'}-names"
    f"{'-emit' if o.emit_unpopulated else ''}{'-enum-numbers' if o.use_enum_numbers else ''}"
    for o in OUTPUT_OPTIONS
]


# --------------------------------------------------------------------------- helpers


def everything(pool: Pool) -> Descriptor:
    return pool.FindMessageTypeByName(f"{PACKAGE}.Everything")


def cls(pool: Pool, name: str) -> type[Message]:
    return message_class(pool.FindMessageTypeByName(name))


def reference_dict(message: Message, options: JsonOptions, pool: Pool) -> Any:
    return json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=options.emit_unpopulated,
        preserving_proto_field_name=options.use_proto_names,
        use_integers_for_enums=options.use_enum_numbers,
        descriptor_pool=pool,
    )


def reference_parse(
    value: Any, message_type: type[Message], options: JsonOptions, pool: Pool
) -> Message:
    return json_format.ParseDict(
        value,
        message_type(),
        ignore_unknown_fields=options.ignore_unknown_fields,
        descriptor_pool=pool,
    )


def codec_for(
    pool: Pool, options: JsonOptions | None = None, name: str = "", *, unrolled: bool | None = None
) -> MessageCodec:
    """A codec; ``unrolled`` forces the generated fast decoder (True) or the loop (False)."""
    descriptor = pool.FindMessageTypeByName(name) if name else everything(pool)
    codecs = Codecs(pool, options or JsonOptions())
    if unrolled is None:
        return codecs.codec(descriptor)
    with mock.patch.object(protojson, "_UNROLL_LIMIT", 10_000 if unrolled else 0):
        return codecs.codec(descriptor)


@pytest.fixture(params=[True, False], ids=["generated", "loop"])
def unrolled(request: pytest.FixtureRequest) -> bool:
    """Decode tests run against both fast decoders: generated per type, and the plain loop."""
    return bool(request.param)


def packed(pool: Pool, message: Message) -> Message:
    any_message = cls(pool, "google.protobuf.Any")()
    any_message.Pack(message)  # type: ignore[attr-defined]
    return any_message


def samples(pool: Pool) -> dict[str, Message]:
    """Hand-written Everything instances covering every field kind and edge value."""
    E = cls(pool, f"{PACKAGE}.Everything")
    Nested = cls(pool, f"{PACKAGE}.Nested")
    Timestamp = cls(pool, "google.protobuf.Timestamp")
    Struct = cls(pool, "google.protobuf.Struct")
    Int64Value = cls(pool, "google.protobuf.Int64Value")
    Empty = cls(pool, "google.protobuf.Empty")
    deep = Nested(name="root")
    node: Any = deep
    for level in range(5):
        node.child.name = f"level{level}"
        node = node.child
    full = E(
        double_field=1.5,
        float_field=0.1,
        int32_field=-(2**31),
        int64_field=-(2**63),
        uint32_field=2**32 - 1,
        uint64_field=2**64 - 1,
        sint32_field=-7,
        sint64_field=2**63 - 1,
        fixed32_field=2**32 - 1,
        fixed64_field=2**64 - 1,
        sfixed32_field=2**31 - 1,
        sfixed64_field=-(2**63),
        bool_field=True,
        string_field='héllo \u2028 \u2029 \U0001f600 "quoted" \\ \n',
        bytes_field=b"\x00\xff\xfe binary",
        color=2,
        nested=deep,
        optional_int32=0,
        optional_string="",
        repeated_int32=[1, -1, 2**31 - 1],
        repeated_int64=[0, 2**63 - 1, -(2**63)],
        repeated_string=["a", "", "ü"],
        repeated_color=[1, 2, 3, 0],
        repeated_nested=[Nested(name="a"), Nested(), Nested(value=3, tags=["x"])],
        repeated_bytes=[b"", b"\x01"],
        repeated_bool=[True, False],
        repeated_double=[0.0, -1.25, 1e308],
        repeated_float=[0.1, 1e-45, -1.5e38],
        repeated_uint64=[0, 2**64 - 1],
        map_string_int32={"a": 1, "": -2},
        map_int64_string={-5: "minus", 2**63 - 1: "max"},
        map_bool_nested={True: Nested(name="t"), False: Nested()},
        map_string_color={"r": 1, "zero": 0},
        map_uint32_bytes={0: b"", 2**32 - 1: b"\xff"},
        map_string_timestamp={"epoch": Timestamp(), "t": Timestamp(seconds=1, nanos=1000)},
        choice_nested=Nested(name="chosen"),
        timestamp=Timestamp(seconds=1732176000, nanos=123000000),
        duration={"seconds": -1, "nanos": -500000000},
        field_mask={"paths": ["a.b_c", "d"]},
        struct_field={"a": 1, "b": [True, None, "s", {"c": {}}], "d": {"e": -2.5}},
        value_field={"list_value": [1, "x", None]},
        list_value=[{"k": "v"}, [], 3],
        any_field=packed(pool, Nested(name="in any", tags=["t"])),
        empty=Empty(),
        int32_wrapper={"value": -3},
        int64_wrapper={"value": 2**40},
        uint32_wrapper={"value": 7},
        uint64_wrapper={"value": 2**64 - 1},
        float_wrapper={"value": 0.1},
        double_wrapper={"value": -0.5},
        bool_wrapper={"value": False},
        string_wrapper={"value": "w"},
        bytes_wrapper={"value": b"bw"},
        repeated_timestamp=[
            Timestamp(seconds=-62135596800),
            Timestamp(seconds=253402300799, nanos=999999999),
        ],
        repeated_duration=[{"seconds": 315576000000}, {"nanos": 1}],
        repeated_value=[{"null_value": 0}, {"number_value": 2.5}, {"struct_value": {"x": 1}}],
        json_named="custom",
        recursive=E(recursive=E(int64_field=5, choice_string="deep")),
    )
    any_everything = E(any_field=packed(pool, full))
    return {
        "empty": E(),
        "full": full,
        "defaults-with-presence": E(
            optional_int32=0,
            optional_string="",
            choice_int64=0,
            nested=Nested(),
            int32_wrapper={"value": 0},
            bool_wrapper={},
            string_wrapper={},
            value_field={"null_value": 0},
            struct_field={},
            list_value=[],
            empty={},
        ),
        "unknown-enum-numbers": E(color=77, repeated_color=[1, 99, -5], map_string_color={"a": 42}),
        "non-finite-floats": E(
            double_field=math.nan,
            float_field=-math.inf,
            repeated_double=[math.nan, math.inf, -math.inf],
            repeated_float=[math.inf],
            double_wrapper={"value": math.inf},
            float_wrapper={"value": math.nan},
        ),
        "float32-rounding": E(float_field=0.1, repeated_float=[0.3, 1 / 3, 16777217.0, 1e-40]),
        "negative-zero": E(double_field=-0.0, float_field=-0.0, repeated_double=[-0.0]),
        "int64-limits": E(
            int64_field=2**63 - 1,
            uint64_field=2**64 - 1,
            sint64_field=-(2**63),
            fixed64_field=0,
            sfixed64_field=2**63 - 1,
            repeated_uint64=[2**64 - 1],
        ),
        "strings": E(
            string_field="\u2028\u2029\x00\x1f</script>",
            repeated_string=["ж", "\U0010ffff"],
            map_string_int32={"ключ": 1, "\u2028": 2},
        ),
        "any-everything": any_everything,
        "any-wkts": E(
            any_field=packed(pool, Timestamp(seconds=5)),
            recursive=E(any_field=packed(pool, Struct(fields={"a": {"number_value": 1}}))),
            repeated_nested=[Nested()],
            struct_field={"nested": {"deeper": {"deepest": [1, [2, [3]]]}}},
        ),
        "any-wrapper-and-empty": E(
            any_field=packed(pool, Int64Value(value=-9)),
            recursive=E(any_field=packed(pool, Empty())),
        ),
        "any-in-any": E(any_field=packed(pool, packed(pool, Nested(name="twice")))),
        "oneof-string": E(choice_string="s"),
        "timestamps": E(
            timestamp=Timestamp(seconds=-1, nanos=1),
            repeated_timestamp=[
                Timestamp(seconds=0, nanos=10),
                Timestamp(seconds=86399, nanos=999000),
                Timestamp(seconds=-62135596800, nanos=0),
            ],
            repeated_duration=[{"seconds": 0, "nanos": -1}, {"seconds": -315576000000}],
        ),
    }


SAMPLE_NAMES = [
    "empty",
    "full",
    "defaults-with-presence",
    "unknown-enum-numbers",
    "non-finite-floats",
    "float32-rounding",
    "negative-zero",
    "int64-limits",
    "strings",
    "any-everything",
    "any-wkts",
    "any-wrapper-and-empty",
    "any-in-any",
    "oneof-string",
    "timestamps",
]


@pytest.fixture(scope="module")
def sample_messages(pool: Pool) -> dict[str, Message]:
    return samples(pool)


def test_sample_names_cover_the_samples(pool: Pool) -> None:
    assert sorted(samples(pool)) == sorted(SAMPLE_NAMES)


# --------------------------------------------------------------------------- oracle: hand-written


@pytest.mark.parametrize("options", OUTPUT_OPTIONS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_encode_equals_json_format(
    pool: Pool, sample_messages: dict[str, Message], name: str, options: JsonOptions
) -> None:
    message = sample_messages[name]
    assert codec_for(pool, options).encode(message) == reference_dict(message, options, pool)


@pytest.mark.parametrize("options", OUTPUT_OPTIONS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_decode_equals_json_format(
    pool: Pool, sample_messages: dict[str, Message], name: str, options: JsonOptions, unrolled: bool
) -> None:
    message = sample_messages[name]
    value = reference_dict(message, options, pool)
    for ignore in (False, True):
        decode_options = JsonOptions(ignore_unknown_fields=ignore)
        codec = codec_for(pool, decode_options, unrolled=unrolled)
        expected = reference_parse(value, codec.message_class, decode_options, pool)
        assert codec.decode(value) == expected
        assert codec.decode(loads(orjson.dumps(value), max_depth=64)) == expected


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_round_trip_keeps_the_message(
    pool: Pool, sample_messages: dict[str, Message], name: str
) -> None:
    codec = codec_for(pool)
    message = sample_messages[name]
    decoded = codec.decode(loads(codec.dumps(message), max_depth=64))
    if name.startswith("any-"):  # Any payloads with maps may serialise in another order
        assert codec.encode(decoded) == codec.encode(message)
    else:
        assert decoded == message


ACCEPTED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"int32Field": "7"}, {"int32_field": 7}),
    ({"int32Field": 1e2}, {"int32_field": 100}),
    ({"int32Field": "1e2"}, {"int32_field": 100}),
    ({"int32Field": -0.0}, {"int32_field": 0}),
    ({"int64Field": 12}, {"int64_field": 12}),
    ({"int64Field": "-9223372036854775808"}, {"int64_field": -(2**63)}),
    ({"uint64Field": "18446744073709551615"}, {"uint64_field": 2**64 - 1}),
    ({"uint64Field": 1.8e19}, {"uint64_field": 18000000000000000000}),
    ({"doubleField": "NaN"}, {"double_field": math.nan}),
    ({"doubleField": "-Infinity"}, {"double_field": -math.inf}),
    ({"doubleField": "1.5e3"}, {"double_field": 1500.0}),
    ({"doubleField": 3}, {"double_field": 3.0}),
    ({"floatField": "Infinity"}, {"float_field": math.inf}),
    ({"floatField": 3.4028234663852886e38}, {"float_field": 3.4028234663852886e38}),
    ({"color": 2}, {"color": 2}),
    ({"color": "3"}, {"color": 3}),
    ({"color": 1234}, {"color": 1234}),
    ({"repeatedColor": ["RED", 2, 77]}, {"repeated_color": [1, 2, 77]}),
    ({"bytesField": "-_8="}, {"bytes_field": b"\xfb\xff"}),
    ({"bytesField": "-_8"}, {"bytes_field": b"\xfb\xff"}),
    ({"bytesField": "-_-_"}, {"bytes_field": b"\xfb\xff\xbf"}),
    ({"bytesField": "+/8="}, {"bytes_field": b"\xfb\xff"}),
    ({"bytesField": "QQ"}, {"bytes_field": b"A"}),
    ({"bytesField": ""}, {"bytes_field": b""}),
    (
        {"int32_field": 5, "string_field": "proto names"},
        {"int32_field": 5, "string_field": "proto names"},
    ),
    ({"customJsonName": "j"}, {"json_named": "j"}),
    ({"json_named": "p"}, {"json_named": "p"}),
    (
        {"timestamp": "1972-01-01T10:00:20.021+05:30"},
        {"timestamp": {"seconds": 63088220, "nanos": 21000000}},
    ),
    (
        {"timestamp": "2024-02-29T23:59:59.123456789Z"},
        {"timestamp": {"seconds": 1709251199, "nanos": 123456789}},
    ),
    ({"timestamp": "0001-01-01T00:00:00Z"}, {"timestamp": {"seconds": -62135596800}}),
    ({"duration": "-0.5s"}, {"duration": {"nanos": -500000000}}),
    (
        {"duration": "315576000000.999999999s"},
        {"duration": {"seconds": 315576000000, "nanos": 999999999}},
    ),
    ({"duration": "1.000001s"}, {"duration": {"seconds": 1, "nanos": 1000}}),
    ({"fieldMask": "fooBar.baz,qux"}, {"field_mask": {"paths": ["foo_bar.baz", "qux"]}}),
    ({"fieldMask": ""}, {"field_mask": {}}),
    ({"int32Wrapper": "5"}, {"int32_wrapper": {"value": 5}}),
    ({"int64Wrapper": "-5"}, {"int64_wrapper": {"value": -5}}),
    ({"boolWrapper": False}, {"bool_wrapper": {}}),
    ({"bytesWrapper": "AQ=="}, {"bytes_wrapper": {"value": b"\x01"}}),
    ({"valueField": None}, {"value_field": {"null_value": 0}}),
    ({"valueField": {}}, {"value_field": {"struct_value": {}}}),
    ({"valueField": 3}, {"value_field": {"number_value": 3.0}}),
    (
        {"repeatedValue": [None, True, "s"]},
        {"repeated_value": [{"null_value": 0}, {"bool_value": True}, {"string_value": "s"}]},
    ),
    ({"structField": {"a": None}}, {"struct_field": {"a": None}}),
    ({"listValue": [None, [[]]]}, {"list_value": [None, [[]]]}),
    ({"anyField": {}}, {"any_field": {}}),
    ({"nested": None, "int32Field": None, "repeatedInt32": None, "mapStringInt32": None}, {}),
    ({"choiceString": None, "choiceInt64": "3"}, {"choice_int64": 3}),
    ({"nested": {}}, {"nested": {}}),
    (
        {"mapBoolNested": {"true": {"name": "t"}, "false": {}}},
        {"map_bool_nested": {True: {"name": "t"}, False: {}}},
    ),
    ({"mapInt64String": {"-3": "x", "1e2": "y"}}, {"map_int64_string": {-3: "x", 100: "y"}}),
    ({"mapUint32Bytes": {"4294967295": "AA"}}, {"map_uint32_bytes": {4294967295: b"\x00"}}),
    (
        {"mapStringTimestamp": {"a": "1970-01-01T00:00:01Z"}},
        {"map_string_timestamp": {"a": {"seconds": 1}}},
    ),
    (
        {"repeatedTimestamp": ["1970-01-01T00:00:00.5Z"]},
        {"repeated_timestamp": [{"nanos": 500000000}]},
    ),
    ({"empty": {}}, {"empty": {}}),
]


@pytest.mark.parametrize(
    ("value", "expected"), ACCEPTED, ids=[json.dumps(v)[:60] for v, _ in ACCEPTED]
)
def test_decode_accepts_what_json_format_accepts(
    pool: Pool, value: dict[str, Any], expected: dict[str, Any], unrolled: bool
) -> None:
    codec = codec_for(pool, unrolled=unrolled)
    message = codec.decode(value)
    assert message == codec.message_class(**expected)
    assert message == reference_parse(value, codec.message_class, JsonOptions(), pool)


def test_float32_maximum_reads_back(pool: Pool) -> None:
    """json_format prints float32's maximum as 3.4028235e38 and then rejects it; we accept it."""
    codec = codec_for(pool)
    message = codec.message_class(
        float_field=3.4028234663852886e38, repeated_float=[-3.4028234663852886e38]
    )
    assert codec.encode(message)["floatField"] == 3.4028235e38
    assert codec.decode(codec.encode(message)) == message
    with pytest.raises(json_format.ParseError, match="Float value too large"):
        reference_parse(codec.encode(message), codec.message_class, JsonOptions(), pool)


def test_decode_of_any_holding_everything_matches_json_format(pool: Pool) -> None:
    codec = codec_for(pool)
    value = codec.encode(samples(pool)["any-everything"])
    assert value["anyField"]["@type"].endswith("Everything")
    assert codec.decode(value) == reference_parse(value, codec.message_class, JsonOptions(), pool)


# --------------------------------------------------------------------------- oracle: hypothesis

_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


def _edge_ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.sampled_from([low, high, 0, -1 if low < 0 else 1]) | st.integers(low, high)


def _value_kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {"null_value": 0}
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, float):
        return {"number_value": value}
    return {"struct_value": value} if isinstance(value, dict) else {"list_value": value}


def _canonical_nan(value: float) -> float:
    """JSON's "NaN" has one bit pattern; hypothesis draws others, and == compares bits."""
    return math.nan if math.isnan(value) else value


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    cpp = field.cpp_type
    if cpp in _INT_RANGES:
        return _edge_ints(*_INT_RANGES[cpp])
    if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
        return st.floats().map(_canonical_nan)
    if cpp == FieldDescriptor.CPPTYPE_FLOAT:
        return st.floats(width=32).map(_canonical_nan)
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([v.number for v in field.enum_type.values]) | st.integers(-5, 200)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=8)
    return st.text(max_size=6)


def _message_value(pool: Pool, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
    """A constructor argument (kwargs dict or message) for a field of this type."""
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return st.builds(
            dict, seconds=st.integers(-62135596800, 253402300799), nanos=st.integers(0, 999999999)
        )
    if name == "google.protobuf.Duration":
        return st.integers(-315576000000, 315576000000).flatmap(
            lambda s: st.builds(
                dict,
                seconds=st.just(s),
                nanos=st.integers(-999999999, 0)
                if s < 0
                else st.integers(0, 999999999)
                if s > 0
                else st.integers(-999999999, 999999999),
            )
        )
    if name == "google.protobuf.FieldMask":
        segment = st.from_regex(r"[a-z]{1,4}(_[a-z][a-z0-9]{0,3}){0,2}", fullmatch=True)
        path = st.lists(segment, min_size=1, max_size=3).map(".".join)
        return st.builds(dict, paths=st.lists(path, max_size=3))
    if name == "google.protobuf.Struct":
        return st.dictionaries(st.text(max_size=4), _JSON, max_size=3)
    if name == "google.protobuf.ListValue":
        return st.lists(_JSON, max_size=3)
    if name == "google.protobuf.Value":
        return _JSON.map(_value_kwargs)
    if name == "google.protobuf.Any":
        inner = [
            f"{PACKAGE}.Nested",
            "google.protobuf.Timestamp",
            "google.protobuf.Struct",
            "google.protobuf.Int64Value",
        ]
        if depth > 0:
            inner.append(f"{PACKAGE}.Everything")
        return st.sampled_from(inner).flatmap(
            lambda n: messages(pool, pool.FindMessageTypeByName(n), depth - 1).map(
                lambda m: packed(pool, m)
            )
        )
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            key_field = message_type.fields_by_name["key"]
            value_field = message_type.fields_by_name["value"]
            if value_field.message_type is None:
                element = _scalar(value_field)
            elif depth > 0:
                element = _message_value(pool, value_field.message_type, depth - 1)
            else:
                continue
            fields[field.name] = st.dictionaries(_scalar(key_field), element, max_size=3)
            continue
        if message_type is None:
            element = _scalar(field)
        elif depth > 0 or not message_type.full_name.startswith(PACKAGE):
            element = _message_value(pool, message_type, depth - 1)
        else:
            continue  # recursion ends here
        fields[field.name] = st.lists(element, max_size=3) if field.is_repeated else element
    members = sorted(
        name for name, oneof in _real_oneofs(descriptor).items() if name in fields and oneof
    )
    base = st.fixed_dictionaries({}, optional={k: v for k, v in fields.items() if k not in members})
    if not members:
        return base

    def with_one_member(kwargs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        def set_member(chosen: str | None) -> st.SearchStrategy[dict[str, Any]]:
            if chosen is None:
                return st.just(kwargs)
            return fields[chosen].map(lambda value: {**kwargs, chosen: value})

        return st.sampled_from([None, *members]).flatmap(set_member)

    return base.flatmap(with_one_member)


def _real_oneofs(descriptor: Descriptor) -> dict[str, str]:
    """Field name → oneof name for oneofs with two or more fields (not proto3 optional)."""
    oneofs: dict[str, list[str]] = {}
    for field in descriptor.fields:
        if field.containing_oneof is not None:
            oneofs.setdefault(field.containing_oneof.name, []).append(field.name)
    return {name: oneof for oneof, names in oneofs.items() if len(names) > 1 for name in names}


def messages(pool: Pool, descriptor: Descriptor, depth: int = 2) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``'s type, nested at most ``depth`` levels of our own types."""
    message_type = message_class(descriptor)

    def build(value: Any) -> Message:
        if isinstance(value, Message):  # an Any, already packed
            return value
        if descriptor.full_name == "google.protobuf.Struct":
            message = message_type()
            message.update(value)  # type: ignore[attr-defined]
            return message
        return message_type(**value)

    return _message_value(pool, descriptor, depth).map(build)


_HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_HYPOTHESIS
@given(data=st.data())
def test_generated_messages_encode_like_json_format(pool: Pool, data: st.DataObject) -> None:
    message = data.draw(messages(pool, everything(pool)))
    options = data.draw(st.sampled_from(OUTPUT_OPTIONS))
    assert codec_for(pool, options).encode(message) == reference_dict(message, options, pool)


@_HYPOTHESIS
@given(data=st.data())
def test_generated_messages_decode_like_json_format(pool: Pool, data: st.DataObject) -> None:
    message = data.draw(messages(pool, everything(pool)))
    options = data.draw(st.sampled_from(OUTPUT_OPTIONS))
    value = reference_dict(message, options, pool)
    for unrolled in (True, False):
        codec = codec_for(pool, JsonOptions(max_depth=100), unrolled=unrolled)
        expected = _reference_parse_or(message, value, codec.message_class, pool)
        decoded = codec.decode(value)
        reparsed = codec.decode(loads(orjson.dumps(value), max_depth=100))
        if b"@type" in orjson.dumps(value):  # the maps in an Any's bytes have no fixed order
            assert codec.encode(decoded) == codec.encode(expected) == codec.encode(message)
            assert codec.encode(reparsed) == codec.encode(expected)
        else:
            assert decoded == expected == message
            assert reparsed == expected


def _reference_parse_or(
    message: Message, value: Any, message_type: type[Message], pool: Pool
) -> Message:
    """json_format's result; ``message`` where it cannot read back its own float32 maximum."""
    try:
        return reference_parse(value, message_type, JsonOptions(), pool)
    except json_format.ParseError as exc:
        if "Float value too large" not in str(exc) and "Float value too small" not in str(exc):
            raise
        return message


# --------------------------------------------------------------------------- 400s


def _decode_error(
    pool: Pool, body: bytes | Any, options: JsonOptions | None = None, unrolled: bool | None = None
) -> str:
    codec = codec_for(pool, options, unrolled=unrolled)
    value = loads(body, max_depth=1000) if isinstance(body, bytes) else body
    with pytest.raises(GatewayError) as caught:
        codec.decode(value)
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.http_status == 400
    assert "\n" not in error.message
    assert "Error" not in error.message
    assert "Traceback" not in error.message
    return error.message


INVALID_VALUES = [
    # (id, JSON body, expected path prefix of the message)
    ("string-gets-number", b'{"stringField": 5}', "stringField: expected a string"),
    ("string-gets-object", b'{"stringField": {}}', "stringField:"),
    ("string-gets-bool", b'{"stringField": true}', "stringField:"),
    ("int-gets-word", b'{"int32Field": "abc"}', "int32Field:"),
    ("int-gets-array", b'{"int32Field": [1]}', "int32Field:"),
    ("int-gets-bool", b'{"int64Field": true}', "int64Field:"),
    (
        "int32-too-big",
        b'{"int32Field": 2147483648}',
        "int32Field: value 2147483648 is out of range",
    ),
    ("int32-too-small", b'{"int32Field": -2147483649}', "int32Field:"),
    ("uint32-negative", b'{"uint32Field": -1}', "uint32Field:"),
    ("uint32-too-big-string", b'{"uint32Field": "4294967296"}', "uint32Field:"),
    ("int64-string-too-big", b'{"int64Field": "9223372036854775808"}', "int64Field:"),
    ("int64-number-too-big", b'{"int64Field": 9223372036854775808}', "int64Field:"),
    ("int64-number-too-small", b'{"int64Field": -9223372036854775809}', "int64Field:"),
    ("uint64-string-too-big", b'{"uint64Field": "18446744073709551616"}', "uint64Field:"),
    ("uint64-number-too-big", b'{"uint64Field": 18446744073709551616}', "uint64Field:"),
    ("int64-huge-number", b'{"int64Field": 1' + b"0" * 400 + b"}", "int64Field:"),
    ("int64-5000-digit-string", b'{"int64Field": "' + b"7" * 5000 + b'"}', "int64Field:"),
    ("int32-5000-digit-number", b'{"int32Field": ' + b"7" * 4000 + b"}", "int32Field:"),
    ("enum-5000-digit-string", b'{"color": "' + b"7" * 5000 + b'"}', "color:"),
    ("int32-fraction", b'{"int32Field": 1.5}', "int32Field: 1.5 is not an integer"),
    ("int32-fraction-string", b'{"int32Field": "1.5"}', "int32Field:"),
    ("int-fullwidth-digits", '{"int32Field": "\uff11\uff12"}'.encode(), "int32Field:"),
    ("int-underscore", b'{"int64Field": "1_000"}', "int64Field:"),
    ("int-leading-space", b'{"int32Field": " 12"}', "int32Field:"),
    ("int-trailing-space", b'{"int32Field": "12 "}', "int32Field:"),
    ("int-plus-sign", b'{"int32Field": "+12"}', "int32Field:"),
    ("int-leading-zero", b'{"int64Field": "012"}', "int64Field:"),
    ("int-empty-string", b'{"int64Field": ""}', "int64Field:"),
    ("int-hex", b'{"int64Field": "0x10"}', "int64Field:"),
    ("float-too-big", b'{"floatField": 1e39}', "floatField: value 1e+39 is out of range"),
    ("float-too-big-string", b'{"floatField": "-1e39"}', "floatField:"),
    ("double-infinite-literal", b'{"doubleField": 1e999}', "doubleField:"),
    ("double-infinite-string", b'{"doubleField": "1e999"}', "doubleField:"),
    ("double-python-inf", b'{"doubleField": "inf"}', "doubleField:"),
    ("double-lowercase-nan", b'{"doubleField": "nan"}', "doubleField:"),
    ("double-gets-bool", b'{"doubleField": true}', "doubleField:"),
    ("double-space", b'{"doubleField": " 1"}', "doubleField:"),
    ("bool-gets-string", b'{"boolField": "true"}', "boolField:"),
    ("bool-gets-number", b'{"boolField": 1}', "boolField:"),
    ("bytes-bad-alphabet", b'{"bytesField": "!!!!"}', "bytesField: invalid base64"),
    ("bytes-bad-length", b'{"bytesField": "QUJDR"}', "bytesField: invalid base64"),
    ("bytes-bad-padding", b'{"bytesField": "QQ="}', "bytesField: invalid base64"),
    ("bytes-padding-inside", b'{"bytesField": "Q=Q="}', "bytesField: invalid base64"),
    ("bytes-number", b'{"bytesField": 5}', "bytesField:"),
    ("enum-unknown-name", b'{"color": "PURPLE"}', 'color: unknown value "PURPLE"'),
    ("enum-bool", b'{"color": true}', "color:"),
    ("enum-out-of-int32", b'{"color": 2147483648}', "color:"),
    ("repeated-enum-unknown-name", b'{"repeatedColor": ["RED", "PURPLE"]}', "repeatedColor[1]:"),
    ("unknown-field", b'{"bogus": 1}', 'bogus: unknown field "bogus"'),
    (
        "unknown-nested-field",
        b'{"nested": {"child": {"bogus": 1}}}',
        "nested.child.bogus: unknown field",
    ),
    (
        "json-and-proto-name",
        b'{"int32Field": 1, "int32_field": 2}',
        "int32_field: field given twice",
    ),
    (
        "proto-and-json-name",
        b'{"string_field": "a", "stringField": "b"}',
        "stringField: field given twice",
    ),
    (
        "oneof-second-member",
        b'{"choiceString": "a", "choiceInt64": "1"}',
        'choiceInt64: oneof "choice" is already set by "choiceString"',
    ),
    ("oneof-second-member-message", b'{"choiceNested": {}, "choiceString": "a"}', "choiceString:"),
    ("nested-wrong-type", b'{"nested": {"value": "x"}}', "nested.value:"),
    ("nested-not-object", b'{"nested": []}', "nested: expected an object, got array"),
    ("repeated-element", b'{"repeatedNested": [{}, {}, {"name": 5}]}', "repeatedNested[2].name:"),
    ("repeated-null-element", b'{"repeatedInt32": [1, null]}', "repeatedInt32[1]:"),
    ("repeated-null-message", b'{"repeatedNested": [null]}', "repeatedNested[0]:"),
    ("repeated-not-array", b'{"repeatedString": "abc"}', "repeatedString: expected an array"),
    ("repeated-string-element", b'{"repeatedString": ["a", 1]}', "repeatedString[1]:"),
    ("repeated-int-strings", b'{"repeatedInt64": ["1", "x"]}', "repeatedInt64[1]:"),
    ("map-not-object", b'{"mapStringInt32": []}', "mapStringInt32: expected an object"),
    ("map-value", b'{"mapStringInt32": {"a": "x"}}', "mapStringInt32[a]:"),
    ("map-null-value", b'{"mapStringInt32": {"a": null}}', "mapStringInt32[a]:"),
    ("map-int-key", b'{"mapInt64String": {"x": "a"}}', "mapInt64String[x]:"),
    ("map-bool-key", b'{"mapBoolNested": {"yes": {}}}', "mapBoolNested[yes]:"),
    ("map-uint32-key-range", b'{"mapUint32Bytes": {"-1": ""}}', "mapUint32Bytes[-1]:"),
    (
        "map-message-value",
        b'{"mapBoolNested": {"true": {"value": 1.5}}}',
        "mapBoolNested[true].value:",
    ),
    ("timestamp-year-zero", b'{"timestamp": "0000-01-01T00:00:00Z"}', "timestamp:"),
    ("timestamp-year-10000", b'{"timestamp": "10000-01-01T00:00:00Z"}', "timestamp:"),
    ("timestamp-feb-30", b'{"timestamp": "2024-02-30T00:00:00Z"}', "timestamp:"),
    ("timestamp-no-offset", b'{"timestamp": "2024-01-01T00:00:00"}', "timestamp:"),
    ("timestamp-lowercase", b'{"timestamp": "2024-01-01t00:00:00z"}', "timestamp:"),
    ("timestamp-hour-24", b'{"timestamp": "2024-01-01T24:00:00Z"}', "timestamp:"),
    ("timestamp-ten-digits", b'{"timestamp": "2024-01-01T00:00:00.1234567890Z"}', "timestamp:"),
    ("timestamp-offset-underflow", b'{"timestamp": "0001-01-01T00:00:00+01:00"}', "timestamp:"),
    ("timestamp-number", b'{"timestamp": 0}', "timestamp:"),
    ("timestamp-in-map", b'{"mapStringTimestamp": {"k": "yesterday"}}', "mapStringTimestamp[k]:"),
    ("duration-too-long", b'{"duration": "999999999999s"}', "duration:"),
    ("duration-exponent", b'{"duration": "1e400s"}', "duration:"),
    ("duration-no-unit", b'{"duration": "1.5"}', "duration:"),
    ("duration-plus", b'{"duration": "+1s"}', "duration:"),
    ("duration-ten-digits", b'{"duration": "1.0000000001s"}', "duration:"),
    ("field-mask-empty-path", b'{"fieldMask": "a,,b"}', "fieldMask:"),
    ("field-mask-dash", b'{"fieldMask": "a.b-c"}', "fieldMask:"),
    ("field-mask-underscore", b'{"fieldMask": "a_b"}', "fieldMask:"),
    ("field-mask-number", b'{"fieldMask": 1}', "fieldMask:"),
    ("wrapper-wrong-type", b'{"int32Wrapper": "x"}', "int32Wrapper:"),
    ("wrapper-object", b'{"boolWrapper": {"value": true}}', "boolWrapper:"),
    ("struct-not-object", b'{"structField": [1]}', "structField: expected an object"),
    ("struct-infinite-number", b'{"structField": {"a": {"b": 1e999}}}', "structField.a.b:"),
    ("list-value-not-array", b'{"listValue": {}}', "listValue: expected an array"),
    ("list-value-huge-number", b'{"listValue": [0, 1' + b"0" * 400 + b"]}", "listValue[1]:"),
    (
        "any-unknown-type",
        b'{"anyField": {"@type": "type.googleapis.com/no.Such"}}',
        "anyField.@type: unknown type",
    ),
    ("any-missing-type", b'{"anyField": {"name": "x"}}', 'anyField: an Any needs a "@type"'),
    ("any-type-not-string", b'{"anyField": {"@type": 5}}', "anyField:"),
    (
        "any-inner-field",
        b'{"anyField": {"@type": "x/transcoder.testing.v1.Nested", "value": "x"}}',
        "anyField.value:",
    ),
    (
        "any-inner-bad-value",
        b'{"anyField": {"@type": "x/transcoder.testing.v1.Nested", "name": 5}}',
        "anyField.name:",
    ),
    (
        "any-wkt-missing-value",
        b'{"anyField": {"@type": "x/google.protobuf.Timestamp"}}',
        "anyField.value:",
    ),
    (
        "any-wkt-bad-value",
        b'{"anyField": {"@type": "x/google.protobuf.Duration", "value": "1"}}',
        "anyField.value:",
    ),
    (
        "any-wkt-extra-key",
        b'{"anyField": {"@type": "x/google.protobuf.Duration", "value": "1s", "x": 1}}',
        "anyField.x:",
    ),
    ("top-level-array", b"[]", "Everything: expected an object, got array"),
    ("top-level-null", b"null", "Everything: expected an object, got null"),
    ("top-level-string", b'"s"', "Everything: expected an object, got string"),
    ("top-level-number", b"7", "Everything: expected an object, got number"),
    ("recursive-too-deep", b'{"recursive": ' * 64 + b"{}" + b"}" * 64, "recursive.recursive"),
    (
        "nested-children-too-deep",
        b'{"nested": ' + b'{"child": ' * 63 + b"{}" + b"}" * 64,
        "nested.child",
    ),
    (
        "struct-too-deep",
        b'{"structField": ' + b'{"a": ' * 33 + b"{}" + b"}" * 34,
        "structField.a.a",
    ),
    ("value-list-too-deep", b'{"valueField": ' + b"[" * 33 + b"]" * 33 + b"}", "valueField[0][0]"),
    (
        "any-in-any-too-deep",
        b'{"anyField": ' + b'{"@type": "x/google.protobuf.Any", "value": ' * 70 + b"{}" + b"}" * 71,
        "anyField.value.value",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in INVALID_VALUES], ids=[c[0] for c in INVALID_VALUES]
)
def test_invalid_value_is_a_400_naming_the_field(
    pool: Pool, body: bytes, expected: str, unrolled: bool
) -> None:
    message = _decode_error(pool, body, unrolled=unrolled)
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    "value",
    [
        {"stringField": "\ud800"},
        {"repeatedString": ["ok", "\udc00x"]},
        {"mapStringInt32": {"a": 1}, "structField": {"k": "\ud83d"}},
        {"color": "\ud800"},
    ],
    ids=["string", "repeated-string", "struct", "enum"],
)
def test_lone_surrogate_in_a_value_is_a_400(
    pool: Pool, value: dict[str, Any], unrolled: bool
) -> None:
    message = _decode_error(pool, value, unrolled=unrolled)
    assert message.split(":")[0] in ("stringField", "repeatedString[1]", "structField.k", "color")


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"int64Field": 7 * 10**6000}, "int64Field"),
        ({"doubleField": -(10**6000)}, "doubleField"),
        ({"color": 10**6000}, "color"),
        ({"structField": {"a": [10**6000]}}, "structField.a[0]"),
        ({"anyField": {"@type": "x/\ud800"}}, "anyField"),
    ],
    ids=["int64", "double", "enum", "struct", "any-type-surrogate"],
)
def test_values_no_json_text_can_hold_are_400s(
    pool: Pool, value: dict[str, Any], path: str, unrolled: bool
) -> None:
    """decode() may get values from elsewhere than loads(): still a 400, never a 500."""
    message = _decode_error(pool, value, unrolled=unrolled)
    assert message.startswith(path + ": "), message


def test_too_deep_message_names_the_limit(pool: Pool, unrolled: bool) -> None:
    value: dict[str, Any] = {"recursive": {"recursive": {}}}
    message = _decode_error(pool, value, JsonOptions(max_depth=2), unrolled=unrolled)
    assert message == "recursive.recursive: nesting is deeper than 2 message levels"
    assert codec_for(pool, JsonOptions(max_depth=3), unrolled=unrolled).decode(value)


def test_decode_path_prefix_is_prepended(pool: Pool, unrolled: bool) -> None:
    codec = codec_for(pool, unrolled=unrolled)
    with pytest.raises(GatewayError) as caught:
        codec.decode({"nested": {"value": "x"}}, path="book")
    assert caught.value.message.startswith("book.nested.value: ")
    with pytest.raises(GatewayError) as caught:
        codec.decode([], path="book")
    assert caught.value.message.startswith("book: expected an object")


def test_ignore_unknown_fields_drops_unknown_fields_and_enum_names(
    pool: Pool, unrolled: bool
) -> None:
    options = JsonOptions(ignore_unknown_fields=True)
    codec = codec_for(pool, options, unrolled=unrolled)
    value = {
        "bogus": {"deep": [1]},
        "color": "PURPLE",
        "repeatedColor": ["RED", "PURPLE", "BLUE"],
        "mapStringColor": {"a": "PURPLE", "b": "GREEN"},
        "nested": {"name": "n", "bogus": 1},
        "anyField": {"@type": "x/google.protobuf.Duration", "value": "1s", "extra": 1},
        "int32Field": 3,
    }
    expected = reference_parse(
        {k: v for k, v in value.items() if k != "anyField"}, codec.message_class, options, pool
    )
    message = codec.decode(value)
    assert message.HasField("any_field")
    message.ClearField("any_field")
    assert message == expected
    assert expected.color == 0  # type: ignore[attr-defined]


def test_ignore_unknown_fields_still_checks_known_fields(pool: Pool, unrolled: bool) -> None:
    codec = codec_for(pool, JsonOptions(ignore_unknown_fields=True), unrolled=unrolled)
    with pytest.raises(GatewayError, match="int32Field"):
        codec.decode({"bogus": 1, "int32Field": "x"})


def test_constructor_refusal_falls_back_to_strict_conversion(pool: Pool) -> None:
    """Values the fast path hands to the constructor unconverted still decode like json_format."""
    codec = codec_for(pool, name=f"{PACKAGE}.Nested")
    value = {"name": "n", "value": 3.0, "tags": ["a"], "child": {"value": "4"}}
    assert codec.decode(value) == codec.message_class(
        name="n", value=3, tags=["a"], child={"value": 4}
    )
    with pytest.raises(GatewayError, match=r"^child\.name: expected a string"):
        codec.decode({"child": {"name": 5}})
    with pytest.raises(GatewayError, match=r"^name: string holds an unpaired surrogate"):
        codec.decode({"name": "\ud800"})
    with pytest.raises(GatewayError, match="unknown field"):
        codec.decode({"name": "n", "zzz": 1})


def test_medium_like_message_uses_generated_decoder(pool: Pool) -> None:
    codec = codec_for(pool, name=f"{PACKAGE}.Nested")
    assert codec._value.__code__.co_filename == "<string>"
    assert codec.decode({"name": "a", "child": {"tags": ["x"]}}) == codec.message_class(
        name="a", child={"tags": ["x"]}
    )


# --------------------------------------------------------------------------- loads


def _loads_error(body: bytes, max_depth: int = 64) -> str:
    with pytest.raises(GatewayError) as caught:
        loads(body, max_depth=max_depth)
    error = caught.value
    assert error.http_status == 400
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "\n" not in error.message
    assert "Error" not in error.message
    assert "Exception" not in error.message
    return error.message


LOADS_ERRORS = [
    ("invalid-token", b"INVALID_JSON", "body: not valid JSON"),
    ("truncated", b'{"a":', "body: not valid JSON"),
    ("missing-colon", b'{"a" 1}', "body: not valid JSON"),
    ("empty", b"", "body: not valid JSON"),
    ("trailing-garbage", b'{"a":1}EXTRA', "body: not valid JSON"),
    ("two-documents", b'{"a":1}{"b":2}', "body: not valid JSON"),
    ("duplicate-key", b'{"a":1,"a":2}', 'body: duplicate key "a"'),
    ("duplicate-nested", b'{"x":[{"k":1,"b":{"k":2,"k":3}}]}', 'body: duplicate key "k"'),
    ("duplicate-with-spaces", b'{"a" : 1 , "a" : "2"}', 'body: duplicate key "a"'),
    ("duplicate-with-escapes", b'{"a":"\\n\\"","a":2}', 'body: duplicate key "a"'),
    ("duplicate-with-escaped-backslash", b'{"a":"\\\\","a":2}', 'body: duplicate key "a"'),
    ("duplicate-escaped-key", b'{"\\u0061":1,"a":2}', 'body: duplicate key "a"'),
    ("nan", b'{"a":NaN}', "body: not valid JSON"),
    ("infinity", b"[Infinity]", "body: not valid JSON"),
    ("minus-infinity", b"[-Infinity]", "body: not valid JSON"),
    ("bom", b'\xef\xbb\xbf{"a":1}', "body: not valid JSON"),
    ("invalid-utf8", b'{"a":"\xc3\x28"}', "body: not valid JSON"),
    ("overlong-utf8", b'{"a":"\xc0\xaf"}', "body: not valid JSON"),
    ("utf8-surrogate", b'{"a":"\xed\xa0\x80"}', "body: not valid JSON"),
    ("escaped-lone-surrogate", b'{"a":"\\ud800"}', "body: not valid JSON"),
    ("escaped-lone-low-surrogate", b'["\\udc00"]', "body: not valid JSON"),
    ("escaped-lone-surrogate-key", b'{"\\ud800":1}', "body: not valid JSON"),
    ("five-thousand-digits", b'{"a":' + b"1" * 5000 + b"}", "body: not valid JSON"),
    ("deep-arrays", b"[" * 10000 + b"]" * 10000, "body: "),
    ("deep-objects", b'{"k":' * 10000 + b"{}" + b"}" * 10000, "body: "),
    ("one-level-too-deep", b"[" * 65 + b"]" * 65, "body: JSON nesting is deeper than 64 levels"),
    (
        "too-deep-with-escapes",
        b'["\\n",' + b"[" * 65 + b"]" * 66,
        "body: JSON nesting is deeper than 64 levels",
    ),
    ("control-character", b'{"a":"\x01"}', "body: not valid JSON"),
    ("single-quotes", b"{'a':1}", "body: not valid JSON"),
    ("trailing-comma", b'{"a":1,}', "body: not valid JSON"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in LOADS_ERRORS], ids=[c[0] for c in LOADS_ERRORS]
)
def test_loads_rejects_with_a_400(body: bytes, expected: str) -> None:
    started = time.perf_counter()
    message = _loads_error(body)
    assert time.perf_counter() - started < 0.05
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b" [ ] ",
        b'{"a":1}\n',
        b'"s"',
        b"7",
        b"null",
        b"[" * 64 + b"]" * 64,
        b'{"a":"\\u0022:\\"","b":"\\\\","c":"\\/\\b\\f\\n\\r\\t","d":"\\ud83d\\ude00"}',
        b'{"a" : 1 , "b" :\t[ "x" , {"c" : "y"} ] }',
        b'{"a":"\\"","a\\"":"x"}',
        '{"ключ":"значение","emoji":"😀","sep":"\u2028"}'.encode(),
        b'{"big":18446744073709551615,"neg":-9223372036854775808,"f":1.5e300,"e":1E2,"z":-0}',
        b'{"a":{"b":{"c":[1,2,{"d":null}]}},"e":[[],[[]],{}]}',
        b'{"":1,"x":""}',
    ],
    ids=[
        "empty-object",
        "spaces",
        "newline",
        "string",
        "number",
        "null",
        "exactly-max-depth",
        "escapes",
        "whitespace",
        "escaped-quote-keys",
        "unicode",
        "numbers",
        "nesting",
        "empty-strings",
    ],
)
def test_loads_accepts_valid_json_like_the_stdlib(body: bytes) -> None:
    assert loads(body, max_depth=64) == json.loads(body)


@pytest.mark.parametrize("depth", [255, 256, 300, 1000, 1024, 1025])
def test_loads_depth_past_what_orjson_writes(depth: int) -> None:
    """orjson reads 1,024 levels but writes only 255: the duplicate check must not trip on it."""
    body = b"[" * depth + b"]" * depth
    assert _loads_error(body).startswith("body: JSON nesting is deeper than 64 levels")
    if depth <= 900:  # the stdlib parser's recursion limit is near 1,000
        assert loads(body, max_depth=depth) == json.loads(body)
        assert loads(b'{"a":' + body + b"}", max_depth=depth + 1) == {"a": json.loads(body)}
        with pytest.raises(GatewayError, match='duplicate key "a"'):
            loads(b'{"a":1,"a":' + body + b"}", max_depth=depth + 1)
    else:
        assert _loads_error(body, max_depth=2000).startswith("body: ")


def test_loads_hands_numbers_orjson_cannot_hold_to_the_decoder() -> None:
    assert loads(b'{"a":1e999}', max_depth=64) == {"a": math.inf}
    assert loads(b"[" + b"9" * 400 + b"]", max_depth=64) == [int("9" * 400)]


_JSON_TEXT = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_TEXT, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_loads_equals_stdlib_on_generated_json(
    value: Any, ascii_only: bool, indent: int | None
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert loads(body, max_depth=64) == _as_orjson_reads(json.loads(body))


def _as_orjson_reads(value: Any) -> Any:
    """orjson reads integers outside int64 and uint64 as floats, while a float can hold them."""
    if isinstance(value, bool) or not isinstance(value, int | dict | list):
        return value
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return value
        try:
            return float(value)
        except OverflowError:  # orjson refuses it; the stdlib fallback reads it exactly
            return value
    if isinstance(value, dict):
        return {k: _as_orjson_reads(v) for k, v in value.items()}
    return [_as_orjson_reads(v) for v in value]


@settings(max_examples=300, deadline=None)
@given(
    value=st.dictionaries(st.text(max_size=4), _JSON_TEXT, min_size=1, max_size=4),
    data=st.data(),
    ascii_only=st.booleans(),
)
def test_loads_finds_generated_duplicate_keys(
    value: dict[str, Any], data: st.DataObject, ascii_only: bool
) -> None:
    key = data.draw(st.sampled_from(sorted(value)))
    text = json.dumps(value, ensure_ascii=ascii_only)
    duplicate = json.dumps({key: data.draw(_JSON_TEXT)}, ensure_ascii=ascii_only)
    body = (text[:-1] + ", " + duplicate[1:]).encode()
    assert _loads_error(body).startswith("body: duplicate key")


# --------------------------------------------------------------------------- field_paths


FIELD_PATHS = [
    ("scalars-json-names", {"int32Field": 1, "stringField": "s"}, ["int32_field", "string_field"]),
    ("proto-names", {"int32_field": 1}, ["int32_field"]),
    ("custom-json-name", {"customJsonName": "x"}, ["json_named"]),
    (
        "nested-recursion",
        {"nested": {"name": "n", "child": {"value": 1}}},
        ["nested.name", "nested.child.value"],
    ),
    ("empty-nested-object", {"nested": {}}, []),
    ("nested-null", {"nested": None}, ["nested"]),
    ("repeated-leaf", {"repeatedNested": [{"name": "a"}]}, ["repeated_nested"]),
    ("map-leaf", {"mapBoolNested": {"true": {"name": "x"}}}, ["map_bool_nested"]),
    (
        "wkt-leaf",
        {"timestamp": "2020-01-01T00:00:00Z", "structField": {"a": 1}, "int32Wrapper": 3},
        ["timestamp", "struct_field", "int32_wrapper"],
    ),
    ("any-leaf", {"anyField": {"@type": "x/y", "a": 1}}, ["any_field"]),
    ("value-leaf", {"valueField": {"a": 1}}, ["value_field"]),
    ("unknown-keys-skipped", {"bogus": 1, "nested": {"bogus": 2, "value": 3}}, ["nested.value"]),
    (
        "deep-recursive",
        {"recursive": {"recursive": {"int64Field": "1"}}},
        ["recursive.recursive.int64_field"],
    ),
    ("duplicate-names-once", {"int32Field": 1, "int32_field": 2}, ["int32_field"]),
    ("oneof-message", {"choiceNested": {"name": "x"}}, ["choice_nested.name"]),
    ("not-an-object", [1, 2], []),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in FIELD_PATHS], ids=[c[0] for c in FIELD_PATHS]
)
def test_field_paths(pool: Pool, value: Any, expected: list[str]) -> None:
    assert field_paths(everything(pool), value) == expected


# --------------------------------------------------------------------------- output details


def test_dumps_is_one_compact_line(pool: Pool, sample_messages: dict[str, Message]) -> None:
    for options in OUTPUT_OPTIONS:
        codec = codec_for(pool, options)
        for message in sample_messages.values():
            data = codec.dumps(message)
            assert b"\n" not in data
            assert b"\r" not in data
            expected = json.dumps(
                codec.encode(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
            assert data == expected.encode()
            assert orjson.loads(data) == reference_dict(message, options, pool)


def test_encode_field_gives_the_field_value(
    pool: Pool, sample_messages: dict[str, Message]
) -> None:
    codec = codec_for(pool)
    full = sample_messages["full"]
    expected = reference_dict(full, JsonOptions(), pool)
    for field in everything(pool).fields:
        if not field.has_presence or full.HasField(field.name):
            assert codec.encode_field(full, field.name) == expected[field.json_name], field.name
    empty = sample_messages["empty"]
    assert codec.encode_field(empty, "nested") == {"name": "", "value": 0, "tags": []}
    assert codec.encode_field(empty, "timestamp") == "1970-01-01T00:00:00Z"
    assert codec.encode_field(empty, "int64_field") == "0"
    assert codec.encode_field(empty, "repeated_nested") == []
    with pytest.raises(KeyError):
        codec.encode_field(empty, "noSuchField")


def test_encode_of_wkt_messages_gives_their_json_form(pool: Pool) -> None:
    codecs = Codecs(pool, JsonOptions())
    timestamp = cls(pool, "google.protobuf.Timestamp")(seconds=1, nanos=20000000)
    timestamp_codec = codecs.codec(pool.FindMessageTypeByName("google.protobuf.Timestamp"))
    assert timestamp_codec.encode(timestamp) == "1970-01-01T00:00:01.020Z"
    wrapper = cls(pool, "google.protobuf.UInt64Value")(value=2**64 - 1)
    wrapper_codec = codecs.codec(pool.FindMessageTypeByName("google.protobuf.UInt64Value"))
    assert wrapper_codec.encode(wrapper) == "18446744073709551615"
    value_codec = codecs.codec(pool.FindMessageTypeByName("google.protobuf.Value"))
    assert value_codec.decode(None) == value_codec.message_class(null_value=0)
    assert value_codec.encode(value_codec.decode({"a": [1, None]})) == {"a": [1.0, None]}
    list_codec = codecs.codec(pool.FindMessageTypeByName("google.protobuf.ListValue"))
    assert list_codec.encode(list_codec.decode([1, "a"])) == [1.0, "a"]
    struct_codec = codecs.codec(pool.FindMessageTypeByName("google.protobuf.Struct"))
    assert struct_codec.encode(struct_codec.decode({"k": {"n": True}})) == {"k": {"n": True}}
    empty_codec = codecs.codec(pool.FindMessageTypeByName("google.protobuf.Empty"))
    assert empty_codec.encode(empty_codec.decode({})) == {}


def test_any_to_json(pool: Pool) -> None:
    codecs = Codecs(pool, JsonOptions(emit_unpopulated=False))
    Any_ = cls(pool, "google.protobuf.Any")
    nested = cls(pool, f"{PACKAGE}.Nested")(name="x")
    assert codecs.any_to_json(packed(pool, nested)) == {
        "@type": f"type.googleapis.com/{PACKAGE}.Nested",
        "name": "x",
    }
    assert codecs.any_to_json(Any_()) == {}
    assert (
        codecs.any_to_json(Any_(type_url="type.googleapis.com/no.Such", value=b"\x08\x01")) is None
    )
    assert codecs.any_to_json(Any_(type_url=f"x/{PACKAGE}.Nested", value=b"\xff")) is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"value_field": {"number_value": math.nan}}, "number_value"),
        ({"struct_field": {"a": math.inf}}, "inf"),
        ({"timestamp": {"seconds": 253402300800}}, "Timestamp"),
        ({"timestamp": {"nanos": -1}}, "Timestamp"),
        ({"duration": {"seconds": 1, "nanos": -1}}, "Duration"),
        ({"duration": {"seconds": 315576000001}}, "Duration"),
        ({"field_mask": {"paths": ["fooBar"]}}, "FieldMask"),
        ({"field_mask": {"paths": ["foo_1"]}}, "FieldMask"),
        ({"field_mask": {"paths": ["foo_"]}}, "FieldMask"),
        ({"any_field": {"type_url": "x/no.Such"}}, "Any"),
    ],
    ids=[
        "value-nan",
        "struct-inf",
        "timestamp-after-9999",
        "timestamp-negative-nanos",
        "duration-sign-mismatch",
        "duration-too-long",
        "field-mask-uppercase",
        "field-mask-digit-after-underscore",
        "field-mask-trailing-underscore",
        "any-unknown-type",
    ],
)
def test_unrepresentable_message_is_an_internal_error(
    pool: Pool, kwargs: dict[str, Any], reason: str
) -> None:
    message = cls(pool, f"{PACKAGE}.Everything")(**kwargs)
    with pytest.raises((json_format.Error, TypeError, ValueError)):
        reference_dict(message, JsonOptions(), pool)
    with pytest.raises(GatewayError) as caught:
        codec_for(pool).dumps(message)
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert reason in caught.value.message


def test_codecs_are_cached_and_handle_recursion(pool: Pool) -> None:
    codecs = Codecs(pool, JsonOptions())
    first = codecs.codec(everything(pool))
    assert codecs.codec(everything(pool)) is first
    nested = codecs.codec(pool.FindMessageTypeByName(f"{PACKAGE}.Nested"))
    assert first.message_class.DESCRIPTOR.full_name == f"{PACKAGE}.Everything"
    message = nested.decode({"child": {"child": {"child": {"name": "deep"}}}})
    assert nested.encode(message)["child"]["child"]["child"]["name"] == "deep"


def test_options_are_a_frozen_value() -> None:
    options = JsonOptions()
    assert (options.use_proto_names, options.emit_unpopulated, options.use_enum_numbers) == (
        False,
        True,
        False,
    )
    assert (options.ignore_unknown_fields, options.max_depth) == (False, 64)
    with pytest.raises(AttributeError):
        options.max_depth = 3  # type: ignore[misc]
