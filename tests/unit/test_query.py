"""Query strings and text values → fields (contract §3; reliability b.3, Q1-Q13)."""

from __future__ import annotations

import math
import string
import time
from collections.abc import Collection
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transcoder import query as query_module
from transcoder.descriptors import message_class
from transcoder.errors import GatewayError
from transcoder.query import (
    MAX_FIELD_PATH_PARTS,
    QueryOptions,
    assign_text,
    bind_query,
    parse_query_string,
    resolve_field_path,
)

EVERYTHING = "transcoder.testing.v1.Everything"


@pytest.fixture(scope="module")
def everything_descriptor(pool: descriptor_pool.DescriptorPool) -> Descriptor:
    return pool.FindMessageTypeByName(EVERYTHING)


@pytest.fixture(scope="module")
def everything(everything_descriptor: Descriptor) -> type[Message]:
    return message_class(everything_descriptor)


def bind(
    cls: type[Message],
    query: bytes,
    *,
    taken: Collection[str] = (),
    options: QueryOptions | None = None,
    into: Message | None = None,
) -> Message:
    message = into if into is not None else cls()
    bind_query(message, parse_query_string(query), taken=taken, options=options or QueryOptions())
    return message


def bind_error(cls: type[Message], query: bytes, **kwargs: Any) -> str:
    with pytest.raises(GatewayError) as caught:
        bind(cls, query, **kwargs)
    assert caught.value.http_status == 400
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value.message


# -- parse_query_string --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"", [], id="empty_query_has_no_items"),
        pytest.param(b"a=1&b=2", [("a", "1"), ("b", "2")], id="pairs_keep_their_order"),
        pytest.param(b"q=a+b", [("q", "a b")], id="plus_is_a_space_Q7"),
        pytest.param(b"q=a%20b", [("q", "a b")], id="percent_20_is_a_space_Q7"),
        pytest.param(b"q=a%2Bb", [("q", "a+b")], id="encoded_plus_stays_a_plus"),
        pytest.param(b"q=%252F", [("q", "%2F")], id="one_decoding_pass_only"),
        pytest.param(b"flag", [("flag", "")], id="key_without_equals_is_empty_value"),
        pytest.param(b"k=", [("k", "")], id="key_with_equals_and_nothing_is_empty_value"),
        pytest.param(b"k=a=b", [("k", "a=b")], id="value_keeps_later_equals_signs"),
        pytest.param(b"&&a=1&&", [("a", "1")], id="empty_pieces_are_skipped"),
        pytest.param(b"a.b%5Bk%5D=1", [("a.b[k]", "1")], id="key_is_decoded_too"),
        pytest.param(b"s=%C3%A9%E2%82%AC", [("s", "é€")], id="utf8_is_decoded"),
        pytest.param("s=é".encode(), [("s", "é")], id="raw_utf8_bytes_are_accepted"),
        pytest.param(b"s=%00", [("s", "\x00")], id="nul_is_kept_not_truncated"),
        pytest.param(b"a+b=1", [("a b", "1")], id="plus_in_key_is_a_space"),
    ],
)
def test_parse_query_string(raw: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_query_string(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"k=%zz", "k: malformed percent-encoding", id="bad_hex_in_value_Q8"),
        pytest.param(b"k=%", "k: malformed percent-encoding", id="lone_percent_in_value"),
        pytest.param(b"k=%4", "k: malformed percent-encoding", id="truncated_escape_in_value"),
        pytest.param(
            b"k=%C3%28", "k: not valid UTF-8 after percent-decoding", id="invalid_utf8_Q8"
        ),
        pytest.param(b"k=%C3", "k: not valid UTF-8 after percent-decoding", id="truncated_utf8"),
        pytest.param(
            b"k=%ED%A0%80", "k: not valid UTF-8 after percent-decoding", id="encoded_surrogate"
        ),
        pytest.param(
            b"k=%C0%AF", "k: not valid UTF-8 after percent-decoding", id="overlong_encoding"
        ),
        pytest.param(b"k=\xff", "k: not valid UTF-8 after percent-decoding", id="raw_bad_byte"),
        pytest.param(
            b"%zz=1", "query: parameter name: malformed percent-encoding", id="bad_escape_in_key"
        ),
        pytest.param(
            b"%C3%28=1",
            "query: parameter name: not valid UTF-8 after percent-decoding",
            id="invalid_utf8_in_key",
        ),
    ],
)
def test_parse_query_string_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_query_string(raw)
    assert caught.value.http_status == 400
    assert caught.value.message == message


# -- resolve_field_path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(["int32_field"], ["int32_field"], id="proto_name"),
        pytest.param(["int32Field"], ["int32_field"], id="json_name"),
        pytest.param(["customJsonName"], ["json_named"], id="custom_json_name"),
        pytest.param(["json_named"], ["json_named"], id="proto_name_of_custom_json_name"),
        pytest.param(["nested", "child", "name"], ["nested", "child", "name"], id="nested_path"),
        pytest.param(
            ["recursive", "nested", "value"], ["recursive", "nested", "value"], id="mixed"
        ),
        pytest.param(
            ["repeatedNested", "name"], ["repeated_nested", "name"], id="through_repeated"
        ),
        pytest.param(["map_bool_nested", "key"], ["map_bool_nested", "key"], id="into_map_entry"),
        pytest.param(["nope"], None, id="unknown_field_is_none"),
        pytest.param(["nested", "nope"], None, id="unknown_nested_field_is_none"),
        pytest.param(["string_field", "x"], None, id="through_scalar_is_none"),
        pytest.param(["customjsonname"], None, id="names_are_case_sensitive"),
        pytest.param([], None, id="empty_path_is_none"),
    ],
)
def test_resolve_field_path(
    everything_descriptor: Descriptor, path: list[str], expected: list[str] | None
) -> None:
    fields = resolve_field_path(everything_descriptor, path)
    if expected is None:
        assert fields is None
    else:
        assert fields is not None
        assert [field.name for field in fields] == expected


# -- bind_query: values that bind ---------------------------------------------------

I32 = 2**31
I64 = 2**63

BINDS: list[Any] = [
    # integers (Q13 rejections are in REJECTS)
    pytest.param(b"int32_field=-2147483648", {"int32_field": -I32}, id="int32_min"),
    pytest.param(b"int32_field=2147483647", {"int32_field": I32 - 1}, id="int32_max"),
    pytest.param(b"int32_field=007", {"int32_field": 7}, id="leading_zeros_are_decimal"),
    pytest.param(b"int32_field=-0", {}, id="minus_zero_is_zero"),
    pytest.param(b"int64_field=-9223372036854775808", {"int64_field": -I64}, id="int64_min"),
    pytest.param(b"int64_field=9223372036854775807", {"int64_field": I64 - 1}, id="int64_max"),
    pytest.param(b"uint32_field=4294967295", {"uint32_field": 2**32 - 1}, id="uint32_max"),
    pytest.param(
        b"uint64_field=18446744073709551615", {"uint64_field": 2**64 - 1}, id="uint64_max"
    ),
    pytest.param(b"sint32_field=-5", {"sint32_field": -5}, id="sint32"),
    pytest.param(b"sint64_field=-5", {"sint64_field": -5}, id="sint64"),
    pytest.param(b"fixed32_field=5", {"fixed32_field": 5}, id="fixed32"),
    pytest.param(b"fixed64_field=5", {"fixed64_field": 5}, id="fixed64"),
    pytest.param(b"sfixed32_field=-5", {"sfixed32_field": -5}, id="sfixed32"),
    pytest.param(b"sfixed64_field=-5", {"sfixed64_field": -5}, id="sfixed64"),
    # floating point
    pytest.param(b"double_field=1.5", {"double_field": 1.5}, id="double_decimal"),
    pytest.param(b"double_field=-2.5e-3", {"double_field": -2.5e-3}, id="double_exponent"),
    pytest.param(b"double_field=1E2", {"double_field": 100.0}, id="double_capital_exponent"),
    pytest.param(b"double_field=7", {"double_field": 7.0}, id="double_integer_form"),
    pytest.param(b"double_field=Infinity", {"double_field": math.inf}, id="double_infinity"),
    pytest.param(b"double_field=-Infinity", {"double_field": -math.inf}, id="double_minus_inf"),
    pytest.param(b"float_field=0.1", {"float_field": 0.1}, id="float_rounds_to_float32"),
    pytest.param(
        b"float_field=3.4028234663852886e38",
        {"float_field": 3.4028234663852886e38},
        id="float_max",
    ),
    pytest.param(b"double_field=1e-400", {}, id="double_underflow_is_zero"),
    # booleans, strings, bytes
    pytest.param(b"bool_field=true", {"bool_field": True}, id="bool_true"),
    pytest.param(b"bool_field=false", {}, id="bool_false"),
    pytest.param(b"string_field=a+b%26c", {"string_field": "a b&c"}, id="string_as_is"),
    pytest.param(b"string_field=", {}, id="string_empty"),
    pytest.param(b"string_field", {}, id="string_key_without_equals_is_empty"),
    pytest.param(b"bytes_field=aGk%3D", {"bytes_field": b"hi"}, id="bytes_padded"),
    pytest.param(b"bytes_field=aGk", {"bytes_field": b"hi"}, id="bytes_unpadded"),
    pytest.param(b"bytes_field=aGk=", {"bytes_field": b"hi"}, id="bytes_raw_equals_in_value"),
    pytest.param(b"bytes_field=%2B%2F8%3D", {"bytes_field": b"\xfb\xff"}, id="bytes_standard"),
    pytest.param(b"bytes_field=-_8", {"bytes_field": b"\xfb\xff"}, id="bytes_url_safe"),
    pytest.param(b"bytes_field=", {}, id="bytes_empty"),
    # enums
    pytest.param(b"color=GREEN", {"color": 2}, id="enum_by_name"),
    pytest.param(b"color=3", {"color": 3}, id="enum_by_number"),
    pytest.param(b"color=99", {"color": 99}, id="open_enum_takes_unknown_number_Q11"),
    pytest.param(b"color=-2147483648", {"color": -I32}, id="open_enum_int32_min"),
    pytest.param(b"repeated_color=RED&repeated_color=2", {"repeated_color": [1, 2]}, id="enums"),
    # names, presence, repeats
    pytest.param(b"int32Field=5", {"int32_field": 5}, id="json_name_binds"),
    pytest.param(b"customJsonName=x", {"json_named": "x"}, id="custom_json_name_binds"),
    pytest.param(b"optional_int32=0", {"optional_int32": 0}, id="explicit_presence_at_zero"),
    pytest.param(b"optionalString=", {"optional_string": ""}, id="explicit_presence_empty"),
    pytest.param(
        b"repeated_int32=1&repeated_int32=2&repeatedInt32=3",
        {"repeated_int32": [1, 2, 3]},
        id="repeated_key_appends_in_order",
    ),
    pytest.param(b"repeated_string=", {"repeated_string": [""]}, id="repeated_empty_appends"),
    pytest.param(
        b"repeated_bytes=aGk&repeated_bool=true&repeated_double=2.5&repeated_float=1",
        {
            "repeated_bytes": [b"hi"],
            "repeated_bool": [True],
            "repeated_double": [2.5],
            "repeated_float": [1.0],
        },
        id="repeated_scalars_of_each_kind",
    ),
    pytest.param(
        b"repeated_uint64=18446744073709551615&repeated_int64=-1",
        {"repeated_uint64": [2**64 - 1], "repeated_int64": [-1]},
        id="repeated_64_bit",
    ),
    # nested paths
    pytest.param(b"nested.name=n", {"nested": {"name": "n"}}, id="nested_field"),
    pytest.param(
        b"nested.child.child.value=3",
        {"nested": {"child": {"child": {"value": 3}}}},
        id="deep_nested_field",
    ),
    pytest.param(b"nested.value=0", {"nested": {}}, id="nested_default_marks_parent_present"),
    pytest.param(b"nested.tags=a&nested.tags=b", {"nested": {"tags": ["a", "b"]}}, id="n_rep"),
    pytest.param(
        b"recursive.nested.name=x&recursive.int32Field=1",
        {"recursive": {"nested": {"name": "x"}, "int32_field": 1}},
        id="recursive_message_with_json_names",
    ),
    # oneof
    pytest.param(b"choice_string=s", {"choice_string": "s"}, id="oneof_member"),
    pytest.param(
        b"choice_nested.name=a&choice_nested.value=2",
        {"choice_nested": {"name": "a", "value": 2}},
        id="oneof_message_member_twice_is_one_member",
    ),
    # maps
    pytest.param(
        b"map_string_int32[a]=1&mapStringInt32[b]=2",
        {"map_string_int32": {"a": 1, "b": 2}},
        id="map_entries_by_proto_and_json_name",
    ),
    pytest.param(
        b"map_string_int32[a.b]=1", {"map_string_int32": {"a.b": 1}}, id="map_key_may_hold_dots"
    ),
    pytest.param(
        b"map_string_int32%5Bk%5D=1", {"map_string_int32": {"k": 1}}, id="map_brackets_encoded"
    ),
    pytest.param(
        b"map_int64_string[-5]=x&map_int64_string[7]=",
        {"map_int64_string": {-5: "x", 7: ""}},
        id="map_integer_keys",
    ),
    pytest.param(
        b"map_string_color[a]=GREEN&map_string_color[b]=9",
        {"map_string_color": {"a": 2, "b": 9}},
        id="map_enum_values",
    ),
    pytest.param(
        b"map_uint32_bytes[4294967295]=aGk",
        {"map_uint32_bytes": {2**32 - 1: b"hi"}},
        id="map_bytes_value",
    ),
    pytest.param(
        b"map_string_timestamp[t]=1970-01-01T00:00:01Z",
        {"map_string_timestamp": {"t": {"seconds": 1}}},
        id="map_timestamp_value",
    ),
    pytest.param(
        b"recursive.map_string_int32[k]=0",
        {"recursive": {"map_string_int32": {"k": 0}}},
        id="map_inside_a_nested_message",
    ),
    pytest.param(
        b"nested.name=x&map_string_int32[x]=1",
        {"nested": {"name": "x"}, "map_string_int32": {"x": 1}},
        id="map_and_fields_together",
    ),
    # Timestamp
    pytest.param(b"timestamp=1970-01-01T00:00:00Z", {"timestamp": {}}, id="timestamp_epoch"),
    pytest.param(
        b"timestamp=2024-05-01T12:00:00.5%2B01:00",
        {"timestamp": {"seconds": 1714561200, "nanos": 500_000_000}},
        id="timestamp_positive_offset_and_fraction",
    ),
    pytest.param(
        b"timestamp=2024-05-01T12:00:00-01:30",
        {"timestamp": {"seconds": 1714570200}},
        id="timestamp_negative_offset",
    ),
    pytest.param(
        b"timestamp=2024-02-29T00:00:00.000000001Z",
        {"timestamp": {"seconds": 1709164800, "nanos": 1}},
        id="timestamp_leap_day_and_nanoseconds",
    ),
    pytest.param(
        b"timestamp=0001-01-01T00:00:00Z",
        {"timestamp": {"seconds": -62135596800}},
        id="timestamp_min",
    ),
    pytest.param(
        b"timestamp=9999-12-31T23:59:59.999999999Z",
        {"timestamp": {"seconds": 253402300799, "nanos": 999_999_999}},
        id="timestamp_max",
    ),
    pytest.param(
        b"repeated_timestamp=1970-01-01T00:00:00Z&repeated_timestamp=1970-01-01T00:00:02Z",
        {"repeated_timestamp": [{}, {"seconds": 2}]},
        id="repeated_timestamp_appends",
    ),
    # Duration
    pytest.param(
        b"duration=1.5s", {"duration": {"seconds": 1, "nanos": 500_000_000}}, id="duration"
    ),
    pytest.param(
        b"duration=-1.5s",
        {"duration": {"seconds": -1, "nanos": -500_000_000}},
        id="duration_negative_signs_agree",
    ),
    pytest.param(
        b"duration=-0.000000001s", {"duration": {"nanos": -1}}, id="duration_negative_nanos"
    ),
    pytest.param(b"duration=0s", {"duration": {}}, id="duration_zero_is_present"),
    pytest.param(
        b"duration=315576000000s",
        {"duration": {"seconds": 315576000000}},
        id="duration_max",
    ),
    pytest.param(
        b"repeated_duration=1s&repeated_duration=2s",
        {"repeated_duration": [{"seconds": 1}, {"seconds": 2}]},
        id="repeated_duration_appends",
    ),
    # FieldMask
    pytest.param(
        b"field_mask=fooBar,baz.quxQuux",
        {"field_mask": {"paths": ["foo_bar", "baz.qux_quux"]}},
        id="field_mask_camel_to_snake",
    ),
    pytest.param(
        b"fieldMask=a1,b", {"field_mask": {"paths": ["a1", "b"]}}, id="field_mask_json_name"
    ),
    pytest.param(b"field_mask=", {"field_mask": {}}, id="field_mask_empty_is_present"),
    # wrappers
    pytest.param(b"int32_wrapper=0", {"int32_wrapper": {}}, id="int32_wrapper_zero_is_present"),
    pytest.param(b"int32_wrapper=-3", {"int32_wrapper": {"value": -3}}, id="int32_wrapper"),
    pytest.param(
        b"int64_wrapper=9223372036854775807",
        {"int64_wrapper": {"value": I64 - 1}},
        id="int64_wrapper",
    ),
    pytest.param(b"uint32_wrapper=4", {"uint32_wrapper": {"value": 4}}, id="uint32_wrapper"),
    pytest.param(b"uint64_wrapper=4", {"uint64_wrapper": {"value": 4}}, id="uint64_wrapper"),
    pytest.param(b"float_wrapper=0.5", {"float_wrapper": {"value": 0.5}}, id="float_wrapper"),
    pytest.param(
        b"double_wrapper=-Infinity",
        {"double_wrapper": {"value": -math.inf}},
        id="double_wrapper",
    ),
    pytest.param(b"bool_wrapper=false", {"bool_wrapper": {}}, id="bool_wrapper_false_is_present"),
    pytest.param(b"string_wrapper=", {"string_wrapper": {}}, id="string_wrapper_empty"),
    pytest.param(
        b"string_wrapper=null", {"string_wrapper": {"value": "null"}}, id="string_wrapper_null"
    ),
    pytest.param(b"bytes_wrapper=aGk", {"bytes_wrapper": {"value": b"hi"}}, id="bytes_wrapper"),
]


@pytest.mark.parametrize(("query", "expected"), BINDS)
def test_bind_query_sets_fields(
    everything: type[Message], query: bytes, expected: dict[str, Any]
) -> None:
    assert bind(everything, query) == everything(**expected)


def test_double_nan_binds(everything: type[Message]) -> None:
    message: Any = bind(everything, b"double_field=NaN&float_wrapper=NaN")
    assert math.isnan(message.double_field)
    assert math.isnan(message.float_wrapper.value)


# -- bind_query: values and keys that are refused ---------------------------------------

E = EVERYTHING
TS = "expected an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
DUR = "expected a duration in seconds such as 1.5s"
B64 = "expected base64 (standard or URL-safe alphabet)"
FLOAT = "expected a decimal number, NaN, Infinity or -Infinity"

REJECTS: list[Any] = [
    # Q1 unknown parameter
    pytest.param(b"nope=1", f"nope: unknown query parameter: no such field in {E}", id="Q1"),
    pytest.param(
        b"nested.nope=1",
        "nested.nope: unknown query parameter: no such field in " + E,
        id="Q1_unknown_nested_field",
    ),
    pytest.param(
        b"Int32_field=1",
        f"Int32_field: unknown query parameter: no such field in {E}",
        id="Q1_names_are_case_sensitive",
    ),
    pytest.param(
        b"nested..name=1",
        f"nested..name: unknown query parameter: no such field in {E}",
        id="Q1_empty_path_part",
    ),
    pytest.param(b"=1", "query: a parameter has an empty name", id="Q1_empty_name"),
    # Q2 too many values
    pytest.param(
        b"int32_field=1&int32_field=2",
        "int32_field: too many values for singular field int32_field",
        id="Q2_singular_twice",
    ),
    pytest.param(
        b"int32_field=1&int32Field=1",
        "int32Field: too many values for singular field int32_field",
        id="Q2_proto_and_json_name_are_one_field",
    ),
    pytest.param(
        b"nested.name=a&nested.name=b",
        "nested.name: too many values for singular field nested.name",
        id="Q2_nested_singular_twice",
    ),
    pytest.param(
        b"timestamp=1970-01-01T00:00:00Z&timestamp=1970-01-01T00:00:00Z",
        "timestamp: too many values for singular field timestamp",
        id="Q2_well_known_type_twice",
    ),
    # Q3 maps
    pytest.param(
        b"map_string_int32[k]=1&map_string_int32[k]=2",
        "map_string_int32[k]: map key given more than once",
        id="Q3_same_map_key_twice",
    ),
    pytest.param(
        b"map_int64_string[1]=a&mapInt64String[01]=b",
        "mapInt64String[01]: map key given more than once",
        id="Q3_same_typed_map_key_twice",
    ),
    pytest.param(
        b"map_string_int32[]=1",
        "map_string_int32[]: malformed map parameter; expected name[key]=value",
        id="Q3_empty_brackets",
    ),
    pytest.param(
        b"map_string_int32[k=1",
        "map_string_int32[k: malformed map parameter; expected name[key]=value",
        id="Q3_unclosed_bracket",
    ),
    pytest.param(
        b"map_string_int32[a][b]=1",
        "map_string_int32[a][b]: malformed map parameter; expected name[key]=value",
        id="Q3_two_brackets",
    ),
    pytest.param(
        b"map_string_int32]k[=1",
        "map_string_int32]k[: malformed map parameter; expected name[key]=value",
        id="Q3_reversed_brackets",
    ),
    pytest.param(
        b"map_string_int32[k]x=1",
        "map_string_int32[k]x: malformed map parameter; expected name[key]=value",
        id="Q3_text_after_bracket",
    ),
    pytest.param(
        b"map_string_int32=1",
        "map_string_int32: map field map_string_int32 is set as map_string_int32[key]=value",
        id="map_without_key",
    ),
    pytest.param(
        b"int32_field[k]=1", "int32_field[k]: int32_field is not a map field", id="key_on_scalar"
    ),
    pytest.param(
        b"map_int64_string[x]=a",
        "map_int64_string[x]: expected a decimal integer (int64)",
        id="map_integer_key_not_decimal",
    ),
    pytest.param(
        b"map_uint32_bytes[-1]=aGk",
        "map_uint32_bytes[-1]: out of range for uint32",
        id="map_key_out_of_range",
    ),
    pytest.param(
        b"map_bool_nested[yes]=x",
        "map_bool_nested[yes]: expected true or false",
        id="map_bool_key_is_true_or_false",
    ),
    pytest.param(
        b"map_bool_nested[true]=x",
        "map_bool_nested[true]: cannot be set from the query "
        "(message type transcoder.testing.v1.Nested)",
        id="map_message_value",
    ),
    pytest.param(
        b"map_string_int32[k]=x",
        "map_string_int32[k]: expected a decimal integer (int32)",
        id="map_value_parsed_by_type",
    ),
    # Q4 traversal
    pytest.param(
        b"string_field.sub=1",
        "string_field.sub: string_field is not a message field; it has no fields to set",
        id="Q4_through_scalar",
    ),
    pytest.param(
        b"nested.name.x=1",
        "nested.name.x: name is not a message field; it has no fields to set",
        id="Q4_through_nested_scalar",
    ),
    pytest.param(
        b"repeated_nested.name=1",
        "repeated_nested.name: cannot set a field inside repeated field repeated_nested",
        id="Q4_through_repeated",
    ),
    pytest.param(
        b"repeated_nested.nope=1",
        "repeated_nested.nope: cannot set a field inside repeated field repeated_nested",
        id="Q4_through_repeated_before_unknown",
    ),
    pytest.param(
        b"map_bool_nested.value.name=1",
        "map_bool_nested.value.name: cannot set a field inside map field map_bool_nested",
        id="Q4_through_map",
    ),
    pytest.param(
        b"repeated_nested=1",
        "repeated_nested: a repeated message field cannot be set from the query",
        id="repeated_message_leaf",
    ),
    pytest.param(
        b"repeated_value=1",
        "repeated_value: a repeated message field cannot be set from the query",
        id="repeated_value_leaf",
    ),
    # Q5 depth
    pytest.param(
        b".".join([b"recursive"] * 1000) + b"=1",
        "recursive." * 20 + "…: field path has more than 32 parts",
        id="Q5_thousand_levels",
    ),
    pytest.param(
        b".".join([b"recursive"] * 32) + b".int32_field=1",
        "recursive." * 20 + "…: field path has more than 32 parts",
        id="Q5_thirty_three_parts",
    ),
    # Q9 empty and null well-known types
    pytest.param(b"timestamp=null", f"timestamp: {TS}", id="Q9_timestamp_null"),
    pytest.param(b"timestamp=", f"timestamp: {TS}", id="Q9_timestamp_empty"),
    pytest.param(b"duration=null", f"duration: {DUR}", id="Q9_duration_null"),
    pytest.param(b"duration", f"duration: {DUR}", id="Q9_duration_no_value"),
    pytest.param(
        b"int32_wrapper=null", "int32_wrapper: expected a decimal integer (int32)", id="Q9_i32w"
    ),
    pytest.param(
        b"int64_wrapper=", "int64_wrapper: expected a decimal integer (int64)", id="Q9_i64w_empty"
    ),
    pytest.param(
        b"double_wrapper=null", f"double_wrapper: {FLOAT} (double)", id="Q9_double_wrapper_null"
    ),
    pytest.param(
        b"bool_wrapper=null", "bool_wrapper: expected true or false", id="Q9_bool_wrapper_null"
    ),
    pytest.param(
        b"uint32_wrapper=-1", "uint32_wrapper: out of range for uint32", id="uint32_wrapper_neg"
    ),
    pytest.param(
        b"float_wrapper=1e39", "float_wrapper: out of range for float", id="float_wrapper_range"
    ),
    pytest.param(b"bytes_wrapper=a", f"bytes_wrapper: {B64}", id="bytes_wrapper_bad_base64"),
    # Q11 enums
    pytest.param(
        b"color=red",
        "color: not a value of enum transcoder.testing.v1.Color",
        id="Q11_lowercase_name",
    ),
    pytest.param(
        b"color=PURPLE", "color: not a value of enum transcoder.testing.v1.Color", id="enum_name"
    ),
    pytest.param(
        b"color=2147483648",
        "color: out of range for transcoder.testing.v1.Color",
        id="Q11_number_beyond_int32",
    ),
    pytest.param(
        b"color=+1", "color: not a value of enum transcoder.testing.v1.Color", id="enum_plus_number"
    ),
    pytest.param(
        b"color=", "color: not a value of enum transcoder.testing.v1.Color", id="enum_empty"
    ),
    # Q12 booleans
    *(
        pytest.param(
            f"bool_field={text}".encode(), "bool_field: expected true or false", id=f"Q12_{text}"
        )
        for text in ("1", "0", "True", "TRUE", "yes", "t", "")
    ),
    # Q13 integers
    *(
        pytest.param(
            f"int32_field={text}".encode(),
            "int32_field: expected a decimal integer (int32)",
            id=f"Q13_{label}",
        )
        for label, text in (
            ("plus_sign", "%2B5"),
            ("hex", "0x10"),
            ("underscore", "1_000"),
            ("full_width", "%EF%BC%91%EF%BC%92"),
            ("spaces", "+7+"),
            ("tab", "7%09"),
            ("decimal_point", "1.0"),
            ("exponent", "1e2"),
            ("empty", ""),
            ("minus_only", "-"),
            ("arabic_indic", "%D9%A1"),
        )
    ),
    pytest.param(b"int32_field=2147483648", "int32_field: out of range for int32", id="i32_high"),
    pytest.param(b"int32_field=-2147483649", "int32_field: out of range for int32", id="i32_low"),
    pytest.param(b"sint32_field=2147483648", "sint32_field: out of range for sint32", id="si32"),
    pytest.param(
        b"sfixed32_field=2147483648", "sfixed32_field: out of range for sfixed32", id="sf32"
    ),
    pytest.param(b"uint32_field=-1", "uint32_field: out of range for uint32", id="u32_negative"),
    pytest.param(b"uint32_field=4294967296", "uint32_field: out of range for uint32", id="u32"),
    pytest.param(b"fixed32_field=4294967296", "fixed32_field: out of range for fixed32", id="f32"),
    pytest.param(
        b"int64_field=9223372036854775808", "int64_field: out of range for int64", id="i64_high"
    ),
    pytest.param(
        b"int64_field=99999999999999999999", "int64_field: out of range for int64", id="P8_like"
    ),
    pytest.param(
        b"uint64_field=18446744073709551616", "uint64_field: out of range for uint64", id="u64"
    ),
    pytest.param(b"fixed64_field=-1", "fixed64_field: out of range for fixed64", id="f64_negative"),
    pytest.param(
        b"int64_field=" + b"9" * 5000,
        "int64_field: out of range for int64",
        id="five_thousand_digits",
    ),
    pytest.param(
        b"repeated_int64=1&repeated_int64=x",
        "repeated_int64: expected a decimal integer (int64)",
        id="bad_repeated_element",
    ),
    # floating point
    pytest.param(b"double_field=1e999", "double_field: out of range for double", id="double_inf"),
    pytest.param(b"float_field=1e39", "float_field: out of range for float", id="float_range"),
    pytest.param(b"float_field=-1e39", "float_field: out of range for float", id="float_neg"),
    *(
        pytest.param(
            f"double_field={text}".encode(),
            f"double_field: {FLOAT} (double)",
            id=f"double_{label}",
        )
        for label, text in (
            ("nan_lowercase", "nan"),
            ("inf", "inf"),
            ("infinity_lowercase", "infinity"),
            ("plus_sign", "%2B1.5"),
            ("hex", "0x1p3"),
            ("underscore", "1_0.5"),
            ("empty", ""),
            ("minus_nan", "-NaN"),
            ("comma", "1,5"),
        )
    ),
    # bytes
    *(
        pytest.param(f"bytes_field={text}".encode(), f"bytes_field: {B64}", id=f"bytes_{label}")
        for label, text in (
            ("one_char_group", "a"),
            ("five_chars", "aGk%3D%3D"),
            ("padding_inside", "aG%3Dk"),
            ("three_padding", "a%3D%3D%3D"),
            ("space_from_plus", "a+Gk"),
            ("dollar", "a%24Gk"),
            ("padded_length_not_multiple_of_four", "aGk%3D%3D"),
        )
    ),
    # Timestamp
    *(
        pytest.param(f"timestamp={text}".encode(), f"timestamp: {TS}", id=f"timestamp_{label}")
        for label, text in (
            ("no_offset", "2024-01-01T00:00:00"),
            ("lowercase_t", "2024-01-01t00:00:00Z"),
            ("lowercase_z", "2024-01-01T00:00:00z"),
            ("five_digit_year", "10000-01-01T00:00:00Z"),
            ("ten_fraction_digits", "2024-01-01T00:00:00.1234567890Z"),
            ("empty_fraction", "2024-01-01T00:00:00.Z"),
            ("short_month", "2024-1-01T00:00:00Z"),
            ("offset_without_colon", "2024-01-01T00:00:00%2B0100"),
            ("date_only", "2024-01-01"),
            ("unix_seconds", "1700000000"),
        )
    ),
    *(
        pytest.param(
            f"timestamp={text}".encode(),
            f"timestamp: {TS} (no such date or time)",
            id=f"timestamp_{label}",
        )
        for label, text in (
            ("year_zero", "0000-01-01T00:00:00Z"),
            ("february_30", "2024-02-30T00:00:00Z"),
            ("not_a_leap_year", "2023-02-29T00:00:00Z"),
            ("month_13", "2024-13-01T00:00:00Z"),
            ("hour_24", "2024-01-01T24:00:00Z"),
            ("leap_second", "2024-01-01T23:59:60Z"),
        )
    ),
    *(
        pytest.param(
            f"timestamp={text}".encode(),
            f"timestamp: {TS} (send a '+' in the offset as %2B)",
            id=f"timestamp_{label}",
        )
        for label, text in (
            ("space_separator", "2024-01-01+00:00:00Z"),
            ("unencoded_plus_offset_is_a_space", "2024-01-01T00:00:00+01:00"),
        )
    ),
    pytest.param(
        b"timestamp=2024-01-01T00:00:00%2B24:00",
        f"timestamp: {TS} (bad offset)",
        id="timestamp_offset_hour_24",
    ),
    pytest.param(
        b"timestamp=2024-01-01T00:00:00-00:60",
        f"timestamp: {TS} (bad offset)",
        id="timestamp_offset_minute_60",
    ),
    pytest.param(
        b"timestamp=0001-01-01T00:00:00%2B00:01",
        "timestamp: timestamp out of range (years 0001 to 9999)",
        id="timestamp_before_year_1_after_offset",
    ),
    pytest.param(
        b"timestamp=9999-12-31T23:59:59-00:01",
        "timestamp: timestamp out of range (years 0001 to 9999)",
        id="timestamp_after_year_9999_after_offset",
    ),
    # Duration
    *(
        pytest.param(f"duration={text}".encode(), f"duration: {DUR}", id=f"duration_{label}")
        for label, text in (
            ("no_unit", "1.5"),
            ("go_units", "1h2m"),
            ("milliseconds", "100ms"),
            ("exponent", "1e400s"),
            ("plus_sign", "%2B1s"),
            ("leading_point", ".5s"),
            ("trailing_point", "1.s"),
            ("ten_fraction_digits", "1.0000000001s"),
            ("uppercase_unit", "1S"),
            ("space", "1+s"),
        )
    ),
    pytest.param(
        b"duration=315576000001s",
        "duration: duration out of range (±315576000000s)",
        id="duration_just_beyond_max",
    ),
    pytest.param(
        b"duration=-999999999999s",
        "duration: duration out of range (±315576000000s)",
        id="duration_far_beyond_min",
    ),
    pytest.param(
        b"duration=" + b"9" * 5000 + b"s",
        "duration: duration out of range (±315576000000s)",
        id="duration_five_thousand_digits",
    ),
    # FieldMask
    *(
        pytest.param(
            f"field_mask={text}".encode(),
            "field_mask: expected comma-separated lowerCamelCase field paths",
            id=f"field_mask_{label}",
        )
        for label, text in (
            ("empty_path", "a,,b"),
            ("trailing_comma", "a,"),
            ("dash", "a.b-c"),
            ("snake_case", "foo_bar"),
            ("capital_start", "Foo"),
            ("empty_segment", "a..b"),
            ("space", "a,+b"),
        )
    ),
    # messages without a text form
    *(
        pytest.param(
            f"{name}=x".encode(),
            f"{name}: cannot be set from the query (message type {type_name})",
            id=f"message_{name}",
        )
        for name, type_name in (
            ("nested", "transcoder.testing.v1.Nested"),
            ("struct_field", "google.protobuf.Struct"),
            ("value_field", "google.protobuf.Value"),
            ("list_value", "google.protobuf.ListValue"),
            ("any_field", "google.protobuf.Any"),
            ("empty", "google.protobuf.Empty"),
            ("recursive", E),
        )
    ),
    # oneof
    pytest.param(
        b"choice_string=a&choice_int64=1",
        "choice_int64: oneof choice already has choice_string set",
        id="second_oneof_member",
    ),
    pytest.param(
        b"choice_int64=1&choice_nested.name=a",
        "choice_nested.name: oneof choice already has choice_int64 set",
        id="second_oneof_member_through_a_nested_path",
    ),
    pytest.param(
        b"recursive.choice_nested.value=1&recursive.choiceString=a",
        "recursive.choiceString: oneof choice already has choice_nested set",
        id="second_oneof_member_in_a_nested_message",
    ),
]


@pytest.mark.parametrize(("query", "message"), REJECTS)
def test_bind_query_rejects(everything: type[Message], query: bytes, message: str) -> None:
    assert bind_error(everything, query) == message


# -- options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "options", "expected"),
    [
        pytest.param(
            b"nope=1&nested.nope=2&int32_field=3",
            QueryOptions(ignore_unknown=True),
            {"int32_field": 3},
            id="Q1_ignore_unknown_drops_unknown_names",
        ),
        pytest.param(
            b"nope[x]=1&nope[=2",
            QueryOptions(ignore_unknown=True),
            {},
            id="ignore_unknown_drops_unknown_names_with_brackets",
        ),
        pytest.param(
            b"api_key=s3cret&int32_field=3",
            QueryOptions(ignored=frozenset({"api_key"})),
            {"int32_field": 3},
            id="ignored_parameter_is_dropped",
        ),
        pytest.param(
            b"int32_field=x&int32_field=y",
            QueryOptions(ignored=frozenset({"int32_field"})),
            {},
            id="ignored_parameter_is_dropped_even_when_it_names_a_field",
        ),
        pytest.param(
            b"color=green&repeated_color=Blue&map_string_color[k]=red",
            QueryOptions(case_insensitive_enums=True),
            {"color": 2, "repeated_color": [3], "map_string_color": {"k": 1}},
            id="Q11_case_insensitive_enums",
        ),
        pytest.param(
            b"color=RED",
            QueryOptions(case_insensitive_enums=True),
            {"color": 1},
            id="case_insensitive_enums_take_exact_names",
        ),
        pytest.param(
            b"color=2",
            QueryOptions(case_insensitive_enums=True),
            {"color": 2},
            id="case_insensitive_enums_take_numbers",
        ),
    ],
)
def test_bind_query_options(
    everything: type[Message], query: bytes, options: QueryOptions, expected: dict[str, Any]
) -> None:
    assert bind(everything, query, options=options) == everything(**expected)


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [
        pytest.param(
            b"api_key=1",
            QueryOptions(ignored=frozenset({"API_KEY", "api"})),
            f"api_key: unknown query parameter: no such field in {E}",
            id="ignored_matches_the_whole_key_exactly",
        ),
        pytest.param(
            b"nope.x=1&string_field.sub=1",
            QueryOptions(ignore_unknown=True),
            "string_field.sub: string_field is not a message field; it has no fields to set",
            id="ignore_unknown_still_refuses_a_path_through_a_scalar",
        ),
        pytest.param(
            b"map_string_int32[k=1",
            QueryOptions(ignore_unknown=True),
            "map_string_int32[k: malformed map parameter; expected name[key]=value",
            id="ignore_unknown_still_refuses_malformed_brackets_on_a_field",
        ),
        pytest.param(
            b"int32_field=1&int32_field=2",
            QueryOptions(ignore_unknown=True),
            "int32_field: too many values for singular field int32_field",
            id="ignore_unknown_still_refuses_too_many_values",
        ),
        pytest.param(
            b"color=purple",
            QueryOptions(case_insensitive_enums=True),
            "color: not a value of enum transcoder.testing.v1.Color",
            id="case_insensitive_enums_still_refuse_unknown_names",
        ),
    ],
)
def test_bind_query_options_reject(
    everything: type[Message], query: bytes, options: QueryOptions, message: str
) -> None:
    assert bind_error(everything, query, options=options) == message


# -- taken fields and earlier values (Q10, oneof from the body) ------------------------


@pytest.mark.parametrize(
    ("query", "taken", "message"),
    [
        pytest.param(
            b"string_field=x",
            {"string_field"},
            "string_field: string_field is already set by the path or body",
            id="Q10_field_bound_by_the_path",
        ),
        pytest.param(
            b"stringField=x",
            {"string_field"},
            "stringField: string_field is already set by the path or body",
            id="Q10_json_name_of_a_bound_field",
        ),
        pytest.param(
            b"nested.value=1",
            {"nested"},
            "nested.value: nested is already set by the path or body",
            id="field_inside_the_body_field",
        ),
        pytest.param(
            b"nested.name=x",
            {"nested.name"},
            "nested.name: nested.name is already set by the path or body",
            id="nested_field_bound_by_the_path",
        ),
        pytest.param(
            b"map_string_int32[k]=1",
            {"map_string_int32"},
            "map_string_int32[k]: map_string_int32 is already set by the path or body",
            id="map_set_by_the_body",
        ),
        pytest.param(
            b"repeated_int32=1",
            {"repeated_int32"},
            "repeated_int32: repeated_int32 is already set by the path or body",
            id="repeated_field_set_by_the_body",
        ),
    ],
)
def test_bind_query_refuses_taken_fields(
    everything: type[Message], query: bytes, taken: set[str], message: str
) -> None:
    assert bind_error(everything, query, taken=taken) == message


def test_bind_query_fills_fields_beside_taken_ones(everything: type[Message]) -> None:
    message = everything(nested={"name": "from-path"})
    bind(everything, b"nested.value=5&nested.tags=t", taken={"nested.name"}, into=message)
    assert message == everything(nested={"name": "from-path", "value": 5, "tags": ["t"]})


def test_bind_query_refuses_second_oneof_member_set_by_the_body(
    everything: type[Message],
) -> None:
    body: Any = everything(choice_int64=0)
    message = bind_error(everything, b"choice_string=a", taken={"choice_int64"}, into=body)
    assert message == "choice_string: oneof choice already has choice_int64 set"
    assert body == everything(choice_int64=0)


def test_failed_value_creates_no_parent_or_map_entry(everything: type[Message]) -> None:
    message: Any = everything()
    for query in (b"nested.child.value=x", b"map_string_timestamp[k]=null", b"timestamp=null"):
        with pytest.raises(GatewayError):
            bind(everything, query, into=message)
    assert message == everything()
    assert not message.HasField("nested")


# -- assign_text (path variables) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        pytest.param(["string_field"], "a/b", {"string_field": "a/b"}, id="string_variable"),
        pytest.param(["int64_field"], "-12", {"int64_field": -12}, id="int64_variable"),
        pytest.param(["nested", "name"], "n", {"nested": {"name": "n"}}, id="nested_variable"),
        pytest.param(
            ["recursive", "nested", "value"],
            "0",
            {"recursive": {"nested": {}}},
            id="creates_every_parent_even_for_a_default_value",
        ),
        pytest.param(["repeated_string"], "x", {"repeated_string": ["x"]}, id="repeated_appends"),
        pytest.param(["color"], "BLUE", {"color": 3}, id="enum_variable"),
        pytest.param(
            ["timestamp"], "1970-01-01T00:00:09Z", {"timestamp": {"seconds": 9}}, id="timestamp"
        ),
        pytest.param(["string_wrapper"], "s", {"string_wrapper": {"value": "s"}}, id="wrapper"),
    ],
)
def test_assign_text(
    everything_descriptor: Descriptor,
    everything: type[Message],
    path: list[str],
    text: str,
    expected: dict[str, Any],
) -> None:
    fields = resolve_field_path(everything_descriptor, path)
    assert fields is not None
    message = everything()
    assign_text(message, fields, text, name=".".join(path))
    assert message == everything(**expected)


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        pytest.param(
            ["int64_field"], "abc", "int64_field: expected a decimal integer (int64)", id="P8_abc"
        ),
        pytest.param(
            ["int64_field"],
            "99999999999999999999",
            "int64_field: out of range for int64",
            id="P8_too_large",
        ),
        pytest.param(
            ["repeated_nested", "name"],
            "x",
            "repeated_nested.name: cannot set a field inside repeated field repeated_nested",
            id="through_repeated",
        ),
        pytest.param(
            ["map_string_int32"],
            "x",
            "map_string_int32: map field map_string_int32 is set as map_string_int32[key]=value",
            id="map_leaf",
        ),
        pytest.param(
            ["choice_string"],
            "x",
            "choice_string: oneof choice already has choice_int64 set",
            id="oneof_member_already_set",
        ),
    ],
)
def test_assign_text_rejects(
    everything_descriptor: Descriptor,
    everything: type[Message],
    path: list[str],
    text: str,
    message: str,
) -> None:
    fields = resolve_field_path(everything_descriptor, path)
    assert fields is not None
    target = everything(choice_int64=1)
    with pytest.raises(GatewayError) as caught:
        assign_text(target, fields, text, name=".".join(path))
    assert caught.value.http_status == 400
    assert caught.value.message == message
    assert target == everything(choice_int64=1)


def test_assign_text_refuses_fields_of_another_message(
    everything_descriptor: Descriptor, everything: type[Message]
) -> None:
    fields = resolve_field_path(everything_descriptor, ["nested", "name"])
    assert fields is not None
    with pytest.raises(ValueError, match="is not a field of"):
        assign_text(everything(), fields[1:], "x", name="name")


def test_assign_text_needs_a_field(everything: type[Message]) -> None:
    with pytest.raises(ValueError, match="empty field path"):
        assign_text(everything(), (), "x", name="x")


def test_assign_text_case_insensitive_enum(
    everything_descriptor: Descriptor, everything: type[Message]
) -> None:
    fields = resolve_field_path(everything_descriptor, ["color"])
    assert fields is not None
    message = everything()
    assign_text(message, fields, "green", name="color", case_insensitive_enums=True)
    assert message == everything(color=2)


# -- closed (proto2) enums -------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_enum_holder() -> type[Message]:
    """A proto2 message whose enum field is closed: only defined numbers may be set."""
    file = descriptor_pb2.FileDescriptorProto(
        name="closed.proto", package="closedtest", syntax="proto2"
    )
    enum = file.enum_type.add(name="Level")
    enum.value.add(name="LOW", number=1)
    enum.value.add(name="HIGH", number=2)
    holder = file.message_type.add(name="Holder")
    holder.field.add(
        name="level",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        type_name=".closedtest.Level",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_class(pool.FindMessageTypeByName("closedtest.Holder"))


def test_closed_enum_takes_defined_numbers(closed_enum_holder: type[Message]) -> None:
    assert bind(closed_enum_holder, b"level=2") == closed_enum_holder(level=2)
    assert bind(closed_enum_holder, b"level=LOW") == closed_enum_holder(level=1)


def test_closed_enum_refuses_undefined_numbers_Q11(closed_enum_holder: type[Message]) -> None:
    message = bind_error(closed_enum_holder, b"level=5")
    assert message == "level: 5 is not a value of closed enum closedtest.Level"


# -- limits and messages -----------------------------------------------------------------------


def test_error_message_cuts_a_long_parameter_name(everything: type[Message]) -> None:
    message = bind_error(everything, b"x" * 10_000 + b"=1")
    assert message == "x" * 200 + f"…: unknown query parameter: no such field in {E}"


def test_max_field_path_parts_is_accepted(everything: type[Message]) -> None:
    query = b".".join([b"recursive"] * (MAX_FIELD_PATH_PARTS - 1)) + b".int32_field=1"
    message: Any = bind(everything, query)
    for _ in range(MAX_FIELD_PATH_PARTS - 1):
        message = message.recursive
    assert message.int32_field == 1


def test_many_parameters_bind_in_linear_time_Q6(everything: type[Message]) -> None:
    """100,000 parameters stay cheap (the HTTP layer caps URLs long before this)."""
    started = time.perf_counter()
    message: Any = bind(everything, b"repeated_int32=1&" * 100_000)
    bind(everything, b"x=1&" * 100_000, options=QueryOptions(ignore_unknown=True))
    assert len(message.repeated_int32) == 100_000
    assert time.perf_counter() - started < 10


# -- properties -------------------------------------------------------------------------------

_TOKENS = [
    "nested", "name", "child", "value", "tags", "recursive", "int32_field", "int64Field",
    "uint64_field", "float_field", "double_field", "bool_field", "bytes_field", "color",
    "repeated_int32", "repeated_color", "repeated_nested", "repeated_timestamp",
    "map_string_int32", "map_int64_string", "map_bool_nested", "map_string_color",
    "map_string_timestamp", "map_uint32_bytes", "choice_string", "choice_nested", "choice_int64",
    "timestamp", "duration", "field_mask", "struct_field", "int32_wrapper", "bytes_wrapper",
    "bool_wrapper", "string_field", "optional_int32", "customJsonName",
    ".", "[", "]", "=", "&", "%", "%2", "%zz", "%C3", "%28", "%5B", "%5D", "%26", "%3D", "+",
    "true", "false", "RED", "99", "-1", "0", "1.5", "1.5s", "NaN", "Infinity", "null",
    "1970-01-01T00:00:00Z", "aGk", "fooBar,baz", "é", "€", "\uff11\uff12", "\x00",
]  # fmt: skip

_QUERIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.lists(
        st.one_of(st.sampled_from(_TOKENS), st.text(alphabet=string.printable, max_size=4)),
        max_size=30,
    ).map(lambda parts: "".join(parts).encode()),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=_QUERIES, ignore_unknown=st.booleans(), case_insensitive=st.booleans())
def test_any_query_binds_or_is_a_400(
    everything: type[Message], query: bytes, ignore_unknown: bool, case_insensitive: bool
) -> None:
    options = QueryOptions(ignore_unknown=ignore_unknown, case_insensitive_enums=case_insensitive)
    message = everything()
    error: GatewayError | None = None
    try:
        bind_query(message, parse_query_string(query), taken={"nested.child"}, options=options)
    except GatewayError as exc:
        error = exc
    if error is None:
        assert everything.FromString(message.SerializeToString()) == message
    else:
        assert error.http_status == 400
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT


@settings(max_examples=200, deadline=None)
@given(
    int64=st.integers(-(2**63), 2**63 - 1),
    int32=st.integers(-(2**31), 2**31 - 1),
    uint64=st.integers(0, 2**64 - 1),
    flag=st.booleans(),
    color=st.one_of(
        st.sampled_from(["COLOR_UNSPECIFIED", "RED", "GREEN", "BLUE"]),
        st.integers(-(2**31), 2**31 - 1),
    ),
)
def test_formatted_values_round_trip(
    everything: type[Message], int64: int, int32: int, uint64: int, flag: bool, color: str | int
) -> None:
    query = (
        f"int64_field={int64}&int32_field={int32}&uint64_field={uint64}"
        f"&bool_field={str(flag).lower()}&color={color}&map_int64_string[{int64}]=v"
    )
    message: Any = bind(everything, query.encode())
    number = (
        color
        if isinstance(color, int)
        else ["COLOR_UNSPECIFIED", "RED", "GREEN", "BLUE"].index(color)
    )
    assert message.int64_field == int64
    assert message.int32_field == int32
    assert message.uint64_field == uint64
    assert message.bool_field is flag
    assert message.color == number
    assert dict(message.map_int64_string) == {int64: "v"}


@pytest.mark.parametrize(
    "query",
    [
        b"timestamp.seconds=5",
        b"duration.nanos=-5",
        b"field_mask.paths=a",
        b"any_field.type_url=x",
        b"value_field.number_value=1",
        b"int32_wrapper.value=3",
        b"struct_field.fields=1",
    ],
    ids=["timestamp", "duration", "field-mask", "any", "value", "wrapper", "struct"],
)
def test_well_known_types_are_set_only_by_their_string_form(
    everything: type[Message], query: bytes
) -> None:
    """Regression: the binder walked into well-known types, so ``timestamp.seconds=-99999999999``
    reached the upstream and the echoed response could not be written as JSON (a 500).
    Contract §3 sets them by their JSON string form only; their fields are not bindable."""
    assert "JSON string form" in bind_error(everything, query)


# -- the short paths agree with the general ones ------------------------------------------------

_SIMPLE_NAMES = [
    "int32_field", "int32Field", "int64Field", "uint64_field", "float_field", "double_field",
    "bool_field", "bytes_field", "color", "string_field", "stringField", "optional_int32",
    "choice_string", "choice_int64", "customJsonName", "nested", "repeated_int32", "api_key",
]  # fmt: skip
_SIMPLE_VALUES = [
    "1", "-1", "99", "1.5", "true", "false", "RED", "red", "aGk", "x", "", "NaN", "1e3",
    "99999999999999999999",
]  # fmt: skip


def _outcome(
    bind: Any, message_class: type[Message], items: list[tuple[str, str]], **kw: Any
) -> Any:
    message = message_class()
    try:
        bind(message, items, **kw)
    except GatewayError as exc:
        return ("error", exc.http_status, exc.message)
    return ("ok", message.SerializeToString(deterministic=True))


@settings(max_examples=400, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.sampled_from(_SIMPLE_NAMES), st.sampled_from(_SIMPLE_VALUES)), max_size=6
    ),
    taken=st.sets(st.sampled_from(["int32_field", "color", "nested"])),
    case_insensitive=st.booleans(),
)
def test_simple_parameters_bind_as_the_general_path_does(
    everything: type[Message],
    everything_descriptor: Descriptor,
    items: list[tuple[str, str]],
    taken: set[str],
    case_insensitive: bool,
) -> None:
    options = QueryOptions(case_insensitive_enums=case_insensitive, ignored=frozenset({"api_key"}))
    descriptor = everything_descriptor

    def general(message: Message, items: list[tuple[str, str]]) -> None:
        query_module._bind_general(message, descriptor, items, taken, options)

    def public(message: Message, items: list[tuple[str, str]]) -> None:
        bind_query(message, items, taken=taken, options=options)

    assert _outcome(public, everything, items) == _outcome(general, everything, items)


def test_simple_path_is_taken_for_top_level_scalars(
    everything: type[Message], everything_descriptor: Descriptor
) -> None:
    items = [("int32Field", "7"), ("color", "RED"), ("optional_int32", "0")]
    message = everything()
    assert query_module._bind_simple(message, everything_descriptor, items, (), QueryOptions())
    assert message.int32_field == 7  # type: ignore[attr-defined]
    assert message.HasField("optional_int32")
    # A nested path, a repeat and a taken field each need the general path, untouched.
    for refused, taken in (
        ([("nested.name", "x")], ()),
        ([("color", "RED"), ("color", "BLUE")], ()),
        ([("color", "RED")], ("color",)),
        ([("choice_string", "x")], ()),  # a oneof shared with other fields
    ):
        untouched = everything()
        assert not query_module._bind_simple(
            untouched, everything_descriptor, refused, taken, QueryOptions()
        )
        assert untouched == everything()


@settings(max_examples=400, deadline=None)
@given(query=_QUERIES)
def test_undecoded_query_splits_as_the_general_path_does(query: bytes) -> None:
    plain = query.replace(b"%", b"").replace(b"+", b"")
    try:
        expected: Any = [
            (query_module_decode(k), query_module_decode(v))
            for k, _, v in (p.partition(b"=") for p in plain.split(b"&") if p)
        ]
    except ValueError:
        expected = "error"
    try:
        got: Any = parse_query_string(plain)
    except GatewayError:
        got = "error"
    assert got == expected


def query_module_decode(raw: bytes) -> str:
    return query_module._form_decode(raw)  # the general path's decoding of one part
