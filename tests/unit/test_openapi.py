"""The OpenAPI document: schemas per field kind, parameters, descriptions (contract §10).

Schemas are checked against the proto3 JSON the gateway really writes (the codecs
of ``protojson``) with ``openapi-schema-validator`` (JSON Schema 2020-12 with
OpenAPI 3.1's formats), the whole document against the OpenAPI 3.1 specification
with ``openapi-spec-validator``, and every documented query parameter against what
``query.bind_query`` accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate

from transcoder.config import Settings, load_settings
from transcoder.descriptors import Descriptors, build_pool, load_descriptors, message_class
from transcoder.errors import GatewayError, error_body
from transcoder.http_rules import Route, RoutePlan, build_plan
from transcoder.json_schema import Comments
from transcoder.openapi import MAX_QUERY_DEPTH, openapi_document
from transcoder.protojson import Codecs, JsonOptions
from transcoder.query import QueryOptions, bind_query

PKG = "transcoder.testing.v1"
Document = dict[str, Any]


def settings_for(descriptor_set: Path, **sections: Any) -> Settings:
    return load_settings(None, {"descriptors": {"files": [str(descriptor_set)]}, **sections})


def document_for(descriptor_set: Path, **sections: Any) -> Document:
    settings = settings_for(descriptor_set, **sections)
    descriptors = load_descriptors(settings.descriptors.files)
    return openapi_document(build_plan(descriptors), descriptors, settings)


@pytest.fixture(scope="module")
def document(descriptor_set: Path) -> Document:
    return document_for(descriptor_set)


@pytest.fixture(scope="module")
def proto_names_document(descriptor_set: Path) -> Document:
    return document_for(descriptor_set, json={"use_proto_names": True, "use_enum_numbers": True})


def operation(document: Document, operation_id: str) -> dict[str, Any]:
    found = [
        (path, op)
        for path, item in document["paths"].items()
        for op in item.values()
        if op["operationId"] == operation_id
    ]
    assert len(found) == 1, operation_id
    path, op = found[0]
    return {**op, "path": path}


def parameters(op: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == where}


def validator(document: Document, name: str) -> OAS31Validator:
    """A validator (OpenAPI 3.1's JSON Schema dialect) for one component of ``document``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return OAS31Validator(schema, format_checker=oas31_format_checker)


def errors(document: Document, name: str, value: Any) -> list[str]:
    return [e.message for e in validator(document, name).iter_errors(value)]


# -- the document as a whole ---------------------------------------------------------


def test_document_is_valid_openapi_3_1(document: Document, proto_names_document: Document) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)
    validate(proto_names_document)


def test_envelope_and_settings_variants_are_valid_openapi(descriptor_set: Path) -> None:
    validate(document_for(descriptor_set, streaming={"ndjson_envelope": True}))


def test_every_component_is_a_valid_json_schema(document: Document) -> None:
    for schema in document["components"]["schemas"].values():
        OAS31Validator.check_schema(schema)


def test_document_is_deterministic_and_json(descriptor_set: Path, document: Document) -> None:
    assert json.dumps(document_for(descriptor_set)) == json.dumps(document)


def test_operation_ids_are_unique_service_method_with_binding_suffixes(
    document: Document,
) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert {"Echo_Get", "Echo_GetResource", "Echo_GetResource_1", "Echo_GetResource_2"} <= set(ids)
    assert {"Echo_Stream", "Echo_Stream_1", "Echo_Unannotated", "Other_Ping"} <= set(ids)
    assert operation(document, "Other_Ping")["tags"] == [f"{PKG}.Other"]


def test_operations_are_one_per_binding_minus_those_openapi_cannot_show(
    document: Document,
) -> None:
    omitted = {(o["rpc"].rsplit(".", 1)[1], o["method"]) for o in document["x-transcoder-omitted"]}
    assert omitted == {("Search", "SEARCH"), ("PrecedenceDouble", "GET"), ("Shadowed", "GET")}
    reasons = {o["rpc"].rsplit(".", 1)[1]: o["reason"] for o in document["x-transcoder-omitted"]}
    assert "SEARCH" in reasons["Search"]
    assert "shadowed by GET /v1/everything/{string_field}" in reasons["Shadowed"]
    assert "same OpenAPI path /v1/precedence/{string_field}" in reasons["PrecedenceDouble"]
    assert "x-transcoder-omitted" in document["info"]["description"]


@pytest.mark.parametrize(
    ("operation_id", "path", "method"),
    [
        ("Echo_Get", "/v1/everything/{string_field}", "get"),
        ("Echo_GetNested", "/v1/nested/{nested.name}/value/{nested.value}", "get"),
        ("Echo_GetResource", "/v1/{string_field}", "get"),
        ("Echo_GetResource_1", "/v1/files/{string_field}", "get"),
        ("Echo_GetResource_2", "/v1/{string_field}/docs/{nested.name}", "get"),
        ("Echo_Publish", "/v1/{string_field}:publish", "post"),
        ("Echo_Patch", "/v1/items/{item.string_field}", "patch"),
        ("Echo_Delete", "/v1/everything/{string_field}", "delete"),
        ("Echo_PrecedenceLiteral", "/v1/precedence/literal", "get"),
        ("Echo_Unannotated", f"/{PKG}.Echo/Unannotated", "post"),
    ],
    ids=lambda v: str(v),
)
def test_template_becomes_openapi_path(
    document: Document, operation_id: str, path: str, method: str
) -> None:
    assert document["paths"][path][method]["operationId"] == operation_id


# -- path parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation_id", "name", "schema", "multi_segment"),
    [
        ("Echo_Get", "string_field", {"type": "string"}, False),
        ("Echo_GetResource", "string_field", {
            "type": "string", "pattern": "^shelves/[^/]+/books/[^/]+$"}, True),
        ("Echo_GetResource_1", "string_field", {
            "type": "string", "pattern": "^[^/]+(/[^/]+)*$"}, True),
        ("Echo_GetResource_2", "string_field", {
            "type": "string", "pattern": "^projects/[^/]+$"}, True),
        ("Echo_GetNested", "nested.value", {"type": "integer", "format": "int32"}, False),
        ("Echo_GetInts", "int64_field", {
            "type": "string", "format": "int64", "pattern": "^-?[0-9]+$", "examples": ["0"]},
            False),
        ("Echo_Stream", "count", {"type": "integer", "format": "int32"}, False),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_path_parameter_schema_and_pattern(
    document: Document, operation_id: str, name: str, schema: Any, multi_segment: bool
) -> None:
    parameter = parameters(operation(document, operation_id), "path")[name]
    assert parameter["required"] is True
    assert parameter["schema"] == schema
    assert parameter.get("x-transcoder-multi-segment", False) is multi_segment
    if multi_segment:
        assert "Matches `" in parameter["description"]


# -- query parameters ------------------------------------------------------------------


def test_query_parameters_cover_what_the_query_may_set(document: Document) -> None:
    query = parameters(operation(document, "Echo_Get"), "query")
    assert "stringField" not in query  # bound by the path
    for name in (
        "doubleField", "int64Field", "bytesField", "color", "optionalInt32",
        "nested.name", "nested.value", "nested.tags", "repeatedColor", "repeatedUint64",
        "choiceString", "choiceNested.name", "timestamp", "duration", "fieldMask",
        "int64Wrapper", "bytesWrapper", "repeatedTimestamp", "repeatedDuration",
        "mapStringInt32", "mapInt64String", "mapStringColor", "mapStringTimestamp",
        "customJsonName",
    ):  # fmt: skip
        assert name in query, name
    for name in query:
        # No text form (Struct, Value, Any, Empty, repeated or map-of messages), or
        # recursion: Nested.child is a Nested, Everything.recursive an Everything.
        assert not name.startswith(
            ("structField", "valueField", "listValue", "anyField", "empty", "repeatedNested",
             "repeatedValue", "mapBoolNested", "nested.child", "recursive", "choiceNested.child")
        ), name  # fmt: skip
        assert name.count(".") < MAX_QUERY_DEPTH
    assert query["nested.tags"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert query["nested.tags"]["explode"] is True
    assert query["mapInt64String"]["style"] == "deepObject"
    assert query["mapInt64String"]["schema"]["propertyNames"] == {"pattern": "^-?[0-9]+$"}
    assert query["timestamp"]["schema"]["format"] == "date-time"
    assert query["int32Wrapper"]["schema"] == {"type": "integer", "format": "int32"}
    assert "oneof `choice`" in query["choiceString"]["description"]


@pytest.mark.parametrize(
    ("operation_id", "absent", "present"),
    [
        ("Echo_Post", ["doubleField"], []),  # body "*": no query parameter at all
        ("Echo_Publish", ["doubleField"], []),
        ("Echo_PostNested", ["nested.name", "nested.tags", "stringField"], ["doubleField"]),
        ("Echo_GetNested", ["nested.name", "nested.value"], ["nested.tags", "stringField"]),
        ("Echo_Patch", ["item.doubleField", "item.stringField"], ["updateMask"]),
        ("Echo_Stream", ["count"], ["intervalMs", "failWithDetails"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_query_parameters_leave_out_what_path_and_body_set(
    document: Document, operation_id: str, absent: list[str], present: list[str]
) -> None:
    query = parameters(operation(document, operation_id), "query")
    assert not set(absent) & set(query)
    assert set(present) <= set(query)


def test_query_parameters_use_proto_names_when_asked(proto_names_document: Document) -> None:
    query = parameters(operation(proto_names_document, "Echo_Get"), "query")
    assert {"double_field", "nested.tags", "json_named", "map_int64_string"} <= set(query)
    assert "customJsonName" not in query


def sample(schema: dict[str, Any], document: Document) -> Any:
    """A value a person could type for ``schema``."""
    if "$ref" in schema:
        return sample(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], document)
    if "enum" in schema:
        return str(schema["enum"][-1])
    if "anyOf" in schema:
        return "NaN"
    if schema.get("type") == "array":
        return [sample(schema["items"], document)] * 2
    if schema.get("type") == "object":
        key = schema.get("propertyNames", {})
        name = "true" if "enum" in key else "-3" if "-?" in key.get("pattern", "") else "3"
        return {name if key else "k": sample(schema["additionalProperties"], document)}
    examples = {"integer": "7", "boolean": "true"}
    if schema.get("type") in examples:
        return examples[schema["type"]]
    if schema.get("format") == "date-time":
        return "2024-05-01T12:00:00.5Z"
    if "contentEncoding" in schema:
        return "AAEC"
    if "pattern" in schema:
        return {"^-?[0-9]+$": "-7", "^[0-9]+$": "7"}.get(schema["pattern"], "1.5s")
    return "abc"


@pytest.mark.parametrize(
    "operation_id", ["Echo_Get", "Echo_GetNested", "Echo_PostNested", "Echo_Patch", "Echo_Stream"]
)
@pytest.mark.parametrize("proto_names", [False, True], ids=["json-names", "proto-names"])
def test_every_documented_query_parameter_is_accepted_by_the_gateway(
    descriptor_set: Path,
    document: Document,
    proto_names_document: Document,
    pool: DescriptorPool,
    operation_id: str,
    proto_names: bool,
) -> None:
    doc = proto_names_document if proto_names else document
    op = operation(doc, operation_id)
    route = route_for(build_plan(load_descriptors([descriptor_set])), operation_id)
    taken = {".".join(f.name for f in fields) for fields in route.variables.values()}
    if route.body_field is not None:
        taken.add(route.body_field.name)
    for name, parameter in parameters(op, "query").items():
        value = sample(parameter["schema"], doc)
        if isinstance(value, dict):
            items = [(f"{name}[{k}]", v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(name, v) for v in value]
        else:
            items = [(name, value)]
        message = message_class(route.method.input_type)()
        try:
            bind_query(message, items, taken=taken, options=QueryOptions())
        except GatewayError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{name}={value!r}: {exc.message}")
        assert message.ByteSize() > 0, name


def route_for(plan: RoutePlan, operation_id: str) -> Route:
    """``Service_Method[_N]`` → the method's N-th binding."""
    service, method, *index = operation_id.split("_")
    routes = [
        r
        for r in plan.routes
        if r.method.name == method and r.method.containing_service.name == service
    ]
    return routes[int(index[0]) if index else 0]


# -- request bodies and responses ------------------------------------------------------


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_request_body_is_the_message_or_the_field(document: Document) -> None:
    whole = operation(document, "Echo_Post")["requestBody"]
    assert whole["content"] == {"application/json": {"schema": ref(f"{PKG}.Everything")}}
    field = operation(document, "Echo_PostNested")["requestBody"]
    assert field["content"] == {"application/json": {"schema": ref(f"{PKG}.Nested")}}
    patch = operation(document, "Echo_Patch")["requestBody"]
    assert "`updateMask` is not set" in patch["description"]
    assert "requestBody" not in operation(document, "Echo_Get")
    assert "requestBody" not in operation(document, "Echo_Delete")


def test_http_body_in_and_out_is_raw_binary(document: Document) -> None:
    binary = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    assert operation(document, "Echo_UploadRaw")["requestBody"]["content"] == binary
    assert operation(document, "Echo_Upload")["requestBody"]["content"] == binary
    assert operation(document, "Echo_Download")["responses"]["200"]["content"] == binary
    assert operation(document, "Echo_UploadRaw")["responses"]["200"]["content"] == binary
    # As a plain field of a JSON message, HttpBody is an ordinary message.
    upload = operation(document, "Echo_Upload")["responses"]["200"]["content"]
    assert upload == {"application/json": {"schema": ref(f"{PKG}.UploadRequest")}}


def test_unary_response_is_the_message_or_the_response_body_field(document: Document) -> None:
    ok = operation(document, "Echo_Get")["responses"]["200"]
    assert ok["content"] == {"application/json": {"schema": ref(f"{PKG}.Everything")}}
    nested = operation(document, "Echo_ResponseBody")["responses"]["200"]
    assert nested["content"] == {"application/json": {"schema": ref(f"{PKG}.Nested")}}
    empty = operation(document, "Echo_Delete")["responses"]["200"]
    assert empty["content"]["application/json"]["schema"] == ref("google.protobuf.Empty")


def test_server_streaming_response_has_ndjson_and_sse(document: Document) -> None:
    for operation_id in ("Echo_Stream", "Echo_Stream_1"):
        content = operation(document, operation_id)["responses"]["200"]["content"]
        assert set(content) == {"application/x-ndjson", "text/event-stream"}
        assert content["application/x-ndjson"]["schema"] == ref(f"{PKG}.StreamItem")
        sse = content["text/event-stream"]["schema"]
        assert sse["type"] == "string"
        for frame in ("id: N", "data: <message>", "event: stream-error", "event: end"):
            assert frame in sse["description"], frame


def test_ndjson_envelope_and_sse_error_event_follow_the_settings(descriptor_set: Path) -> None:
    document = document_for(
        descriptor_set, streaming={"ndjson_envelope": True, "sse_error_event": "oops"}
    )
    content = operation(document, "Echo_Stream")["responses"]["200"]["content"]
    line = content["application/x-ndjson"]["schema"]
    assert line["properties"] == {"result": ref(f"{PKG}.StreamItem"), "error": ref("Error")}
    assert "event: oops" in content["text/event-stream"]["schema"]["description"]
    assert not errors(document, "Error", error_body(GatewayError.not_found("x")))


def test_default_response_is_the_error_object(document: Document) -> None:
    for item in document["paths"].values():
        for op in item.values():
            assert op["responses"]["default"] == {"$ref": "#/components/responses/Error"}
    response = document["components"]["responses"]["Error"]
    assert response["content"]["application/json"]["schema"] == ref("Error")
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "error", "message", "details"]
    detail = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"}
    body = error_body(GatewayError.not_found("book 7"))
    assert not errors(document, "Error", {**body, "details": [detail]})
    assert errors(document, "Error", {"detail": "Not Found"})


# -- schemas per field kind ------------------------------------------------------------

INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$", "examples": ["0"]}
UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$", "examples": ["0"]}
INT32 = {"type": "integer", "format": "int32"}
UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 4294967295}
SPECIALS = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
DOUBLE = {"anyOf": [{"type": "number", "format": "double"}, SPECIALS]}
BASE64 = {"type": "string", "contentEncoding": "base64"}


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("doubleField", DOUBLE),
        ("floatField", {"anyOf": [{"type": "number", "format": "float"}, SPECIALS]}),
        ("int32Field", INT32),
        ("sint32Field", INT32),
        ("sfixed32Field", INT32),
        ("uint32Field", UINT32),
        ("fixed32Field", UINT32),
        ("int64Field", INT64),
        ("sint64Field", INT64),
        ("sfixed64Field", INT64),
        ("uint64Field", UINT64),
        ("fixed64Field", UINT64),
        ("boolField", {"type": "boolean"}),
        ("stringField", {"type": "string"}),
        ("bytesField", BASE64),
        ("color", ref(f"{PKG}.Color")),
        ("nested", ref(f"{PKG}.Nested")),
        ("optionalInt32", INT32),
        ("repeatedInt64", {"type": "array", "items": INT64}),
        ("repeatedDouble", {"type": "array", "items": DOUBLE}),
        ("repeatedNested", {"type": "array", "items": ref(f"{PKG}.Nested")}),
        ("mapStringInt32", {"type": "object", "additionalProperties": INT32}),
        ("mapInt64String", {"type": "object", "additionalProperties": {"type": "string"},
                            "propertyNames": {"pattern": "^-?[0-9]+$"}}),
        ("mapBoolNested", {"type": "object", "additionalProperties": ref(f"{PKG}.Nested"),
                           "propertyNames": {"enum": ["true", "false"]}}),
        ("mapUint32Bytes", {"type": "object", "additionalProperties": BASE64,
                            "propertyNames": {"pattern": "^[0-9]+$"}}),
        ("mapStringTimestamp", {"type": "object",
                                "additionalProperties": ref("google.protobuf.Timestamp")}),
        ("timestamp", ref("google.protobuf.Timestamp")),
        ("int64Wrapper", ref("google.protobuf.Int64Value")),
        ("customJsonName", {"type": "string"}),
        ("recursive", ref(f"{PKG}.Everything")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_field_schema_by_kind(document: Document, name: str, schema: Any) -> None:
    properties = document["components"]["schemas"][f"{PKG}.Everything"]["properties"]
    assert properties[name] == schema


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("google.protobuf.Timestamp", {"type": "string", "format": "date-time"}),
        ("google.protobuf.Duration", {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"}),
        ("google.protobuf.FieldMask", {"type": "string"}),
        ("google.protobuf.Struct", {"type": "object", "additionalProperties": True}),
        ("google.protobuf.Value", {}),
        ("google.protobuf.ListValue", {"type": "array", "items": True}),
        ("google.protobuf.Empty", {"type": "object"}),
        ("google.protobuf.Int64Value", {**INT64, "type": ["string", "null"], "examples": None}),
        ("google.protobuf.Int32Value", {**INT32, "type": ["integer", "null"]}),
        ("google.protobuf.BoolValue", {"type": ["boolean", "null"]}),
        ("google.protobuf.BytesValue", {**BASE64, "type": ["string", "null"]}),
        ("google.protobuf.DoubleValue", {"anyOf": [*DOUBLE["anyOf"], {"type": "null"}]}),
    ],
    ids=lambda v: v.rsplit(".", 1)[-1] if isinstance(v, str) else "",
)
def test_well_known_types_take_their_json_form(
    document: Document, name: str, schema: dict[str, Any]
) -> None:
    component = document["components"]["schemas"][name]
    expected = {k: v for k, v in schema.items() if v is not None}
    assert {k: v for k, v in component.items() if k not in ("description", "examples")} == expected


def test_any_has_a_type_url(document: Document) -> None:
    schema = document["components"]["schemas"]["google.protobuf.Any"]
    assert schema["required"] == ["@type"]
    assert schema["additionalProperties"] is True


def test_enums_by_name_or_by_number(document: Document, proto_names_document: Document) -> None:
    by_name = document["components"]["schemas"][f"{PKG}.Color"]
    assert by_name["type"] == "string"
    assert by_name["enum"] == ["COLOR_UNSPECIFIED", "RED", "GREEN", "BLUE"]
    by_number = proto_names_document["components"]["schemas"][f"{PKG}.Color"]
    assert by_number["type"] == "integer"
    assert by_number["enum"] == [0, 1, 2, 3]
    assert "`1`: RED" in by_number["description"]


def test_field_names_follow_use_proto_names(proto_names_document: Document) -> None:
    properties = proto_names_document["components"]["schemas"][f"{PKG}.Everything"]["properties"]
    assert "double_field" in properties
    assert "json_named" in properties
    assert "doubleField" not in properties


def test_oneofs_are_documented_and_proto3_optional_is_not_a_oneof(document: Document) -> None:
    everything = document["components"]["schemas"][f"{PKG}.Everything"]
    assert (
        "Oneof `choice`: at most one of `choiceString`, `choiceInt64`, `choiceNested`."
        in (everything["description"])
    )
    assert "_optional_int32" not in everything["description"]
    assert "description" not in everything["properties"]["optionalInt32"]
    assert "oneof `choice`" in everything["properties"]["choiceInt64"]["description"]


def test_recursive_messages_refer_to_their_own_component(document: Document) -> None:
    schemas = document["components"]["schemas"]
    assert schemas[f"{PKG}.Nested"]["properties"]["child"] == ref(f"{PKG}.Nested")
    everything = schemas[f"{PKG}.Everything"]["properties"]
    assert everything["recursive"] == ref(f"{PKG}.Everything")
    # Every $ref resolves to a component.
    refs = {r for r in _refs(document) if r.startswith("#/components/schemas/")}
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas)
    assert not any(name.endswith("Entry") for name in schemas)  # map entries stay inline


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if "$ref" in value else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


# -- what the gateway writes validates against the schemas -------------------------------

EVERYTHING = {
    "doubleField": "NaN",
    "floatField": "-Infinity",
    "int32Field": -5,
    "int64Field": "-9223372036854775808",
    "uint32Field": 4294967295,
    "uint64Field": "18446744073709551615",
    "sint64Field": "7",
    "fixed64Field": "8",
    "sfixed64Field": "-9",
    "boolField": True,
    "stringField": "s",
    "bytesField": "AAEC",
    "color": "BLUE",
    "nested": {"name": "n", "value": 1, "child": {"name": "c"}, "tags": ["a"]},
    "optionalInt32": 0,
    "repeatedInt32": [1, 2],
    "repeatedInt64": ["3", "-4"],
    "repeatedString": ["x"],
    "repeatedColor": ["RED", "GREEN"],
    "repeatedNested": [{"name": "r"}],
    "repeatedBytes": ["AA=="],
    "repeatedBool": [True],
    "repeatedDouble": [1.5, "Infinity"],
    "repeatedFloat": [0.25],
    "repeatedUint64": ["1"],
    "mapStringInt32": {"k": 1},
    "mapInt64String": {"-7": "v"},
    "mapBoolNested": {"true": {"name": "t"}},
    "mapStringColor": {"k": "RED"},
    "mapUint32Bytes": {"3": "AQI="},
    "mapStringTimestamp": {"k": "2024-05-01T12:00:00Z"},
    "choiceNested": {"name": "choice"},
    "timestamp": "2024-05-01T12:00:00.123456789Z",
    "duration": "-1.5s",
    "fieldMask": "a.bC,d",
    "structField": {"a": [1, None, {"b": "c"}]},
    "valueField": None,
    "listValue": [1, "two"],
    "anyField": {"@type": f"type.googleapis.com/{PKG}.Nested", "name": "in any"},
    "empty": {},
    "int32Wrapper": 0,
    "int64Wrapper": "5",
    "uint32Wrapper": 6,
    "uint64Wrapper": "7",
    "floatWrapper": "NaN",
    "doubleWrapper": 2.5,
    "boolWrapper": False,
    "stringWrapper": "",
    "bytesWrapper": "",
    "repeatedTimestamp": ["1970-01-01T00:00:00Z"],
    "repeatedDuration": ["0s"],
    "repeatedValue": [1, "x", None, True, {"a": 1}, [1]],
    "customJsonName": "j",
    "recursive": {"stringField": "inner", "recursive": {"int64Field": "1"}},
}


@pytest.mark.parametrize("emit_unpopulated", [True, False], ids=["emit", "omit"])
@pytest.mark.parametrize("proto_names", [False, True], ids=["json-names", "proto-names"])
def test_gateway_output_validates_against_the_schemas(
    pool: DescriptorPool,
    document: Document,
    proto_names_document: Document,
    proto_names: bool,
    emit_unpopulated: bool,
) -> None:
    doc = proto_names_document if proto_names else document
    descriptor = pool.FindMessageTypeByName(f"{PKG}.Everything")
    codecs = Codecs(
        pool,
        JsonOptions(
            use_proto_names=proto_names,
            use_enum_numbers=proto_names,
            emit_unpopulated=emit_unpopulated,
        ),
    )
    full = json_format.ParseDict(EVERYTHING, message_class(descriptor)(), descriptor_pool=pool)
    for message in (full, message_class(descriptor)()):
        output = json.loads(codecs.codec(descriptor).dumps(message))
        assert errors(doc, f"{PKG}.Everything", output) == []


@pytest.mark.parametrize(
    "wrong",
    [
        {"int64Field": 5},
        {"int64Field": "1.5"},
        {"uint64Field": "-1"},
        {"doubleField": "nan"},
        {"color": "PURPLE"},
        {"bytesField": 3},
        {"timestamp": "yesterday"},
        {"duration": "5"},
        {"repeatedInt32": 1},
        {"mapInt64String": {"x": "v"}},
        {"mapBoolNested": {"yes": {}}},
        {"nested": {"child": {"value": "one"}}},
        {"anyField": {"name": "no type"}},
        {"recursive": {"recursive": {"boolField": "true"}}},
    ],
    ids=lambda v: next(iter(v)),
)
def test_schemas_reject_what_proto3_json_never_writes(
    document: Document, wrong: dict[str, Any]
) -> None:
    assert errors(document, f"{PKG}.Everything", wrong)


# -- descriptions from comments --------------------------------------------------------


def test_leading_comments_become_descriptions(document: Document) -> None:
    schemas = document["components"]["schemas"]
    assert schemas[f"{PKG}.Everything"]["description"].startswith(
        "Every scalar, repeated, map, oneof, enum and well-known type."
    )
    assert schemas[f"{PKG}.StreamRequest"]["properties"]["count"]["description"] == (
        "How many messages to send; 0 means until cancelled."
    )
    assert schemas[f"{PKG}.Color"]["description"].startswith("A color, to test enums")
    get = operation(document, "Echo_Get")
    assert get["summary"] == "Single-segment string variable, the rest from the query."
    assert f"`/{PKG}.Echo/Get` (unary)" in get["description"]
    stream = parameters(operation(document, "Echo_Stream"), "query")
    assert stream["intervalMs"]["description"] == "Pause between messages, in milliseconds."
    tags = {t["name"]: t.get("description") for t in document["tags"]}
    assert tags[f"{PKG}.Echo"] == "Echoes the request back; each method is one routing shape."


def test_without_source_info_there_are_no_comments(descriptor_set: Path) -> None:
    settings = settings_for(descriptor_set)
    descriptors = load_descriptors(settings.descriptors.files)
    document = openapi_document(build_plan(descriptors), descriptors, settings, comments=Comments())
    validate(document)
    assert operation(document, "Echo_Get")["summary"] == "Get"
    assert "description" not in document["components"]["schemas"][f"{PKG}.StreamRequest"]


def test_multi_paragraph_comment_splits_into_summary_and_description() -> None:
    text = "// First line\n// goes on.\n//\n// More detail.\n"
    file = descriptor_pb2.FileDescriptorProto(name="c.proto", package="c")
    file.service.add(name="S").method.add(name="M")
    location = file.source_code_info.location.add(path=[6, 0, 2, 0])
    location.leading_comments = text.replace("//", "")
    assert Comments.from_files([file]).get("c.S.M") == "First line\ngoes on.\n\nMore detail."


# -- shapes the test protos lack: a handmade descriptor set ------------------------------

STRING = FieldDescriptor.TYPE_STRING


def handmade() -> Descriptors:
    """Anonymous wildcards, an escaped literal, a custom ``*`` method, clashing names."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for package in ("a.v1", "b.v1"):
        file = descriptor_pb2.FileDescriptorProto(
            name=f"{package}.proto",
            package=package,
            syntax="proto3",
            dependency=["google/api/annotations.proto"],
        )
        request = file.message_type.add(name="Req")
        request.field.add(name="name", number=1, type=STRING, json_name="name")
        request.field.add(name="other", number=2, type=STRING, json_name="other")
        service = file.service.add(name="Svc")
        rules = {
            "Wild": ("get", "/v1/*/x/**"),
            "Escaped": ("get", "/v1/a%20b/{name}:do%2Bit"),
            "AnyMethod": ("custom", "/v1/any"),
            "Old": ("get", "/v1/old"),
        }
        for name, (verb, template) in rules.items():
            method = service.method.add(
                name=name, input_type=f".{package}.Req", output_type=f".{package}.Req"
            )
            rule = method.options.Extensions[annotations_pb2.http]
            if verb == "custom":
                rule.custom.kind, rule.custom.path = "*", template
            else:
                setattr(rule, verb, f"/{package}{template}" if package == "b.v1" else template)
            if name == "Old":
                method.options.deprecated = True
        if package == "a.v1":
            # A binding whose OpenAPI path differs from Escaped's only in a parameter name.
            rule = service.method[1].options.Extensions[annotations_pb2.http]
            rule.additional_bindings.add(post="/v1/a%20b/{other}:do%2Bit")
        files[file.name] = file
    files["error.proto"] = descriptor_pb2.FileDescriptorProto(
        name="error.proto",
        syntax="proto3",
        message_type=[descriptor_pb2.DescriptorProto(name="Error")],
    )
    return Descriptors(build_pool(files), tuple(files))


@pytest.fixture(scope="module")
def handmade_document() -> Document:
    descriptors = handmade()
    return openapi_document(build_plan(descriptors), descriptors, Settings())


def test_handmade_document_is_valid(handmade_document: Document) -> None:
    validate(handmade_document)


def test_anonymous_wildcards_become_wildcard_parameters(handmade_document: Document) -> None:
    op = operation(handmade_document, "a_v1_Svc_Wild")
    assert op["path"] == "/v1/{wildcard.1}/x/{wildcard.2}"
    path = parameters(op, "path")
    assert path["wildcard.1"]["schema"] == {"type": "string"}
    assert path["wildcard.2"]["x-transcoder-multi-segment"] is True


def test_literals_and_verbs_stay_escaped(handmade_document: Document) -> None:
    # "+" is a valid path character: the canonical template writes it raw too.
    assert operation(handmade_document, "a_v1_Svc_Escaped")["path"] == "/v1/a%20b/{name}:do+it"


def test_same_service_name_in_two_packages_gets_package_in_operation_id(
    handmade_document: Document,
) -> None:
    ids = {
        op["operationId"] for item in handmade_document["paths"].values() for op in item.values()
    }
    assert {"a_v1_Svc_Wild", "b_v1_Svc_Wild"} <= ids


def test_handmade_omissions(handmade_document: Document) -> None:
    reasons = {
        (o["rpc"], o["path"]): o["reason"] for o in handmade_document["x-transcoder-omitted"]
    }
    assert "HTTP method *" in reasons["a.v1.Svc.AnyMethod", "/v1/any"]
    assert (
        "differs only in parameter names" in reasons["a.v1.Svc.Escaped", "/v1/a%20b/{other}:do+it"]
    )


def test_error_component_steps_aside_for_a_message_named_error(
    handmade_document: Document,
) -> None:
    schemas = handmade_document["components"]["schemas"]
    assert "transcoder.Error" in schemas
    assert "Error" not in schemas  # no service uses the message named Error
    response = handmade_document["components"]["responses"]["Error"]
    assert response["content"]["application/json"]["schema"] == ref("transcoder.Error")


def test_deprecated_method_is_a_deprecated_operation(handmade_document: Document) -> None:
    assert operation(handmade_document, "a_v1_Svc_Old")["deprecated"] is True
    assert "deprecated" not in operation(handmade_document, "a_v1_Svc_Wild")
