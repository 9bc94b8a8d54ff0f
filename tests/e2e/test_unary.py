"""Unary methods end to end: routing, binding and JSON output (contract §2-§4).

Each test sends real HTTP to the gateway and checks the exact request message the
test upstream received, and what came back.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from tests.e2e.conftest import Gateway, StartGateway, raw_request
from tests.upstream import TestUpstream
from transcoder.descriptors import message_class

PKG = "transcoder.testing.v1"


@pytest.fixture(scope="module")
def Everything(pool: descriptor_pool.DescriptorPool) -> type[Message]:
    return message_class(pool.FindMessageTypeByName(f"{PKG}.Everything"))


def received(upstream: TestUpstream, method: str) -> Any:
    return upstream.last(method).request


# -- routing (§2) ------------------------------------------------------------


async def test_path_and_query_bind_into_the_request(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.get(
        "/v1/everything/abc",
        params=[
            ("int32_field", "5"),
            ("repeatedString", "a"),
            ("repeatedString", "b"),
            ("color", "GREEN"),
            ("nested.value", "7"),
        ],
    )
    assert r.status_code == 200
    assert received(upstream, "Get") == Everything(
        string_field="abc",
        int32_field=5,
        repeated_string=["a", "b"],
        color=2,
        nested={"value": 7},
    )
    body = r.json()
    assert body["stringField"] == "abc"
    assert body["int64Field"] == "0"  # emit_unpopulated, 64-bit as string
    assert body["repeatedString"] == ["a", "b"]
    assert body["color"] == "GREEN"


async def test_integer_path_variables_are_parsed(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.get("/v1/ints/123/-7")
    assert r.status_code == 200
    assert received(upstream, "GetInts") == Everything(int64_field=123, int32_field=-7)


@pytest.mark.parametrize(
    "path",
    ["/v1/ints/abc/1", "/v1/ints/99999999999999999999/1"],
    ids=["not-a-number", "out-of-range"],
)
async def test_bad_integer_path_variable_is_400_naming_the_field(
    gateway: Gateway, upstream: TestUpstream, path: str
) -> None:
    r = await gateway.client.get(path)
    assert r.status_code == 400
    assert "int64_field" in r.json()["message"]
    assert upstream.calls == []


async def test_nested_path_variables(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.get("/v1/nested/n1/value/3")
    assert r.status_code == 200
    assert received(upstream, "GetNested") == Everything(nested={"name": "n1", "value": 3})


@pytest.mark.parametrize(
    ("path", "string_field", "nested_name"),
    [
        ("/v1/shelves/1/books/2", "shelves/1/books/2", ""),
        ("/v1/files/a/b/c.txt", "a/b/c.txt", ""),
        ("/v1/files/a%2Fb/c", "a%2Fb/c", ""),
        ("/v1/files/caf%C3%A9", "café", ""),
        ("/v1/projects/p1/docs/x/y", "projects/p1", "x/y"),
    ],
    ids=[
        "two-wildcards",
        "double-wildcard",
        "double-wildcard-keeps-%2F",
        "decodes-utf8",
        "two-multi-segment-variables",
    ],
)
async def test_multi_segment_variables(
    gateway: Gateway,
    upstream: TestUpstream,
    Everything: type[Message],
    path: str,
    string_field: str,
    nested_name: str,
) -> None:
    r = await gateway.client.get(path)
    assert r.status_code == 200, r.text
    expected = Everything(string_field=string_field)
    if nested_name:
        expected.nested.name = nested_name  # type: ignore[attr-defined]
    assert received(upstream, "GetResource") == expected


@pytest.mark.parametrize(
    ("raw", "value"),
    [("a%2Fb", "a/b"), ("%252F", "%2F"), ("a%20b", "a b"), ("a+b", "a+b"), ("x%3Ay", "x:y")],
    ids=["slash-decoded", "decoded-once", "space", "plus-is-literal-in-path", "encoded-colon"],
)
async def test_single_segment_variable_is_decoded_once(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message], raw: str, value: str
) -> None:
    r = await gateway.client.get(f"/v1/everything/{raw}")
    assert r.status_code == 200
    assert received(upstream, "Get") == Everything(string_field=value)


async def test_trailing_slash_matches_the_same_route(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.get("/v1/everything/abc/")
    assert r.status_code == 200
    assert received(upstream, "Get") == Everything(string_field="abc")


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/precedence/literal", "PrecedenceLiteral"),
        ("/v1/precedence/x", "PrecedenceSingle"),
        ("/v1/precedence/x/y", "PrecedenceDouble"),
    ],
    ids=["literal", "single", "double"],
)
async def test_literal_beats_wildcard_beats_double_wildcard(
    gateway: Gateway, upstream: TestUpstream, path: str, method: str
) -> None:
    r = await gateway.client.get(path)
    assert r.status_code == 200
    assert upstream.calls[-1].method.endswith(f"/{method}")


async def test_custom_verb_routes_to_its_method(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.post("/v1/shelves/1/books/2:publish", json={"int32Field": 4})
    assert r.status_code == 200
    assert received(upstream, "Publish") == Everything(
        string_field="shelves/1/books/2", int32_field=4
    )


async def test_custom_http_method(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.request("SEARCH", "/v1/everything:search", json={"stringField": "q"})
    assert r.status_code == 200
    assert received(upstream, "Search").string_field == "q"


async def test_unknown_path_is_404(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/nowhere")
    assert r.status_code == 404
    assert r.json()["error"] == "NOT_FOUND"


async def test_wrong_method_is_405_with_every_allowed_method(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/everything/abc")
    assert r.status_code == 405
    assert r.json()["error"] == "UNIMPLEMENTED"
    assert r.headers["allow"] == "DELETE, GET, PUT"


async def test_head_is_not_get(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.head("/v1/everything/abc")
    assert r.status_code == 405
    assert upstream.calls == []


@pytest.mark.parametrize(
    ("raw_path", "status"),
    [
        (b"/v1/everything/x/../abc", 404),
        (b"/v1/everything/./abc", 404),
        (b"//v1//everything/abc", 404),
        (b"/v1/precedence/../x", 200),
    ],
    ids=["dot-dot", "dot", "double-slash", "dot-dot-is-a-segment"],
)
async def test_dot_segments_are_not_normalised(
    gateway: Gateway, upstream: TestUpstream, raw_path: bytes, status: int
) -> None:
    response = await raw_request(gateway.url, b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.startswith(f"HTTP/1.1 {status}".encode()), response[:100]
    if status == 200:
        assert received(upstream, "PrecedenceDouble").string_field == "../x"


async def test_unannotated_method_is_served_at_its_grpc_path(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.post(f"/{PKG}.Echo/Unannotated", json={"int32Field": 9})
    assert r.status_code == 200
    assert received(upstream, "Unannotated") == Everything(int32_field=9)


async def test_shadowed_binding_is_never_called(gateway: Gateway, upstream: TestUpstream) -> None:
    await gateway.client.get("/v1/everything/x")
    assert [c.method for c in upstream.calls] == [f"{PKG}.Echo/Get"]
    shadowed = [(s.rpc_name, w.rpc_name) for s, w in gateway.app.plan.shadowed]
    assert shadowed == [(f"{PKG}.Other.Shadowed", f"{PKG}.Echo.Get")]


async def test_client_and_bidi_streaming_methods_are_skipped(gateway: Gateway) -> None:
    skipped = {s.rpc_name: s.reason for s in gateway.app.plan.skipped}
    assert set(skipped) == {f"{PKG}.Echo.Collect", f"{PKG}.Echo.Chat"}
    r = await gateway.client.post("/v1/collect", json={})
    assert r.status_code == 404


async def test_services_setting_limits_what_is_exposed(start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes={"services": [f"{PKG}.Other"]})
    assert (await gw.client.get("/v1/other/ping")).status_code == 200
    assert (await gw.client.get("/v1/ints/1/2")).status_code == 404
    # Without Echo, Other.Shadowed is no longer shadowed and serves the path.
    assert (await gw.client.get("/v1/everything/abc")).status_code == 200


# -- body and precedence (§3) -------------------------------------------------


async def test_whole_body_binds_every_field(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    body = {
        "int64Field": "12",
        "nested": {"name": "n"},
        "mapStringInt32": {"a": 1},
        "timestamp": "2024-01-02T03:04:05Z",
        "bytesField": base64.b64encode(b"hi").decode(),
    }
    r = await gateway.client.post("/v1/everything", json=body)
    assert r.status_code == 200
    expected = Everything(
        int64_field=12, nested={"name": "n"}, map_string_int32={"a": 1}, bytes_field=b"hi"
    )
    expected.timestamp.FromJsonString("2024-01-02T03:04:05Z")  # type: ignore[attr-defined]
    assert received(upstream, "Post") == expected
    assert r.json()["timestamp"] == "2024-01-02T03:04:05Z"


async def test_empty_body_means_empty_object(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.post("/v1/everything", content=b"")
    assert r.status_code == 200
    assert received(upstream, "Post") == Everything()


async def test_body_field_with_path_and_query(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.post("/v1/everything/x/nested?int32_field=3", json={"name": "n"})
    assert r.status_code == 200
    assert received(upstream, "PostNested") == Everything(
        string_field="x", int32_field=3, nested={"name": "n"}
    )


async def test_path_variable_wins_over_the_body(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.put("/v1/everything/fromPath", json={"stringField": "fromBody"})
    assert r.status_code == 200
    assert received(upstream, "Put").string_field == "fromPath"


async def test_query_parameter_naming_a_body_field_is_400(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    r = await gateway.client.post("/v1/everything/x/nested?nested.name=y", json={"name": "n"})
    assert r.status_code == 400
    assert "nested.name" in r.json()["message"]
    assert upstream.calls == []


async def test_query_parameter_naming_a_path_field_is_400(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/everything/abc?string_field=other")
    assert r.status_code == 400
    assert "string_field" in r.json()["message"]


async def test_query_parameters_on_a_whole_body_route_are_400(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/everything?int32_field=1", json={})
    assert r.status_code == 400
    assert "int32_field" in r.json()["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("nope=1", "nope"),
        ("int32_field=1&int32_field=2", "int32_field"),
        ("bool_field=yes", "bool_field"),
        ("int32_field=%2B5", "int32_field"),
        ("color=green", "color"),
        ("repeated_nested.name=x", "repeated_nested"),
    ],
    ids=["unknown", "twice", "bool-yes", "plus-sign-int", "enum-case", "repeated-message"],
)
async def test_bad_query_parameter_is_400_naming_it(
    gateway: Gateway, upstream: TestUpstream, query: str, field: str
) -> None:
    r = await gateway.client.get(f"/v1/everything/abc?{query}")
    assert r.status_code == 400
    assert field in r.json()["message"]
    assert upstream.calls == []


async def test_ignored_and_unknown_query_parameters_settings(
    start_gateway: StartGateway, upstream: TestUpstream
) -> None:
    gw = await start_gateway(request={"ignored_query_parameters": ["api_key"]})
    assert (await gw.client.get("/v1/everything/a?api_key=s3cret")).status_code == 200
    assert (await gw.client.get("/v1/everything/a?other=1")).status_code == 400
    gw2 = await start_gateway(request={"ignore_unknown_query_parameters": True})
    assert (await gw2.client.get("/v1/everything/a?other=1")).status_code == 200


async def test_case_insensitive_enums_setting(
    start_gateway: StartGateway, upstream: TestUpstream
) -> None:
    gw = await start_gateway(request={"case_insensitive_enums": True})
    assert (await gw.client.get("/v1/everything/a?color=green")).status_code == 200
    assert received(upstream, "Get").color == 2


async def test_patch_fills_the_field_mask_from_the_json_keys(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    r = await gateway.client.patch(
        "/v1/items/x", json={"int32Field": 1, "nested": {"name": "a", "value": 2}}
    )
    assert r.status_code == 200
    request = received(upstream, "Patch")
    assert request.item.string_field == "x"
    assert sorted(request.update_mask.paths) == ["int32_field", "nested.name", "nested.value"]


async def test_patch_keeps_a_mask_the_client_sent(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.patch(
        "/v1/items/x?update_mask=int32Field", json={"int32Field": 1, "boolField": True}
    )
    assert r.status_code == 200
    assert list(received(upstream, "Patch").update_mask.paths) == ["int32_field"]


async def test_patch_mask_filling_can_be_turned_off(
    start_gateway: StartGateway, upstream: TestUpstream
) -> None:
    gw = await start_gateway(request={"patch_field_mask": False})
    assert (await gw.client.patch("/v1/items/x", json={"int32Field": 1})).status_code == 200
    assert list(received(upstream, "Patch").update_mask.paths) == []


async def test_form_body_is_read_like_a_query_string(
    gateway: Gateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    r = await gateway.client.post("/v1/everything", data={"int32Field": "4", "string_field": "a b"})
    assert r.status_code == 200
    assert received(upstream, "Post") == Everything(int32_field=4, string_field="a b")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/grpc"}, 415),
        ({"content-type": "application/json", "content-encoding": "gzip"}, 415),
        ({"content-type": "application/json; charset=utf-8"}, 200),
    ],
    ids=["text-plain", "grpc", "gzip", "json-with-charset"],
)
async def test_content_types(gateway: Gateway, headers: dict[str, str], status: int) -> None:
    r = await gateway.client.post("/v1/everything", content=b"{}", headers=headers)
    assert r.status_code == status


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"int32Field": 1, "int32Field": 2}', "int32Field"),
        (b'{"doubleField": NaN}', "JSON"),
        (b"\xef\xbb\xbf{}", "JSON"),
        (b'{"nope": 1}', "nope"),
        (b'{"int32Field": 1, "int32_field": 2}', "int32"),
        (b"[" * 100 + b"]" * 100, "deep"),
        (b'{"a":', "JSON"),
        (b'{"int32Field": "x"}', "int32Field"),
    ],
    ids=[
        "duplicate-key",
        "nan-literal",
        "bom",
        "unknown-field",
        "json-and-proto-name",
        "too-deep",
        "truncated",
        "wrong-type",
    ],
)
async def test_strict_json_is_400_naming_the_key(
    gateway: Gateway, upstream: TestUpstream, body: bytes, needle: str
) -> None:
    r = await gateway.client.post(
        "/v1/everything", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert needle.lower() in r.json()["message"].lower(), r.json()
    assert upstream.calls == []


async def test_ignore_unknown_fields_setting(start_gateway: StartGateway) -> None:
    gw = await start_gateway(json={"ignore_unknown_fields": True})
    assert (await gw.client.post("/v1/everything", json={"nope": 1})).status_code == 200


async def test_body_limit_counts_bytes(start_gateway: StartGateway) -> None:
    gw = await start_gateway(http={"max_request_body_bytes": 100})
    fits = b'{"stringField": "' + b"x" * (100 - 19) + b'"}'
    assert len(fits) == 100
    assert (await gw.client.post("/v1/everything", content=fits)).status_code == 200
    over = fits[:-2] + b'x"}'
    r = await gw.client.post("/v1/everything", content=over)
    assert r.status_code == 413
    assert r.json()["error"] == "RESOURCE_EXHAUSTED"

    async def chunks() -> Any:
        for _ in range(3):
            yield b" " * 50

    r = await gw.client.post("/v1/everything", content=chunks())
    assert r.status_code == 413


async def test_body_on_a_route_without_body_is_400(gateway: Gateway) -> None:
    r = await gateway.client.request("GET", "/v1/everything/abc", content=b'{"a":1}')
    assert r.status_code == 400


# -- output (§4) ----------------------------------------------------------------


async def test_delete_returns_empty_object(gateway: Gateway) -> None:
    r = await gateway.client.delete("/v1/everything/abc")
    assert r.status_code == 200
    assert r.json() == {}


async def test_response_body_field(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/response-body/x?nested.name=n")
    assert r.status_code == 200
    assert r.json() == {"name": "n", "value": 0, "tags": []}


async def test_json_output_options(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        json={"use_proto_names": True, "emit_unpopulated": False, "use_enum_numbers": True}
    )
    r = await gw.client.get("/v1/everything/abc?color=BLUE&int64_field=5")
    assert r.json() == {"string_field": "abc", "color": 3, "int64_field": "5"}


async def test_http_body_response_is_raw(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/download/hello")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.content == b"hello"


async def test_http_body_request_field_takes_raw_bytes(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    r = await gateway.client.post(
        "/v1/upload/pic", content=b"\x89PNG\x00\xff", headers={"content-type": "image/png"}
    )
    assert r.status_code == 200
    request = received(upstream, "Upload")
    assert request.name == "pic"
    assert request.body.content_type == "image/png"
    assert request.body.data == b"\x89PNG\x00\xff"


async def test_http_body_as_whole_request(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.post(
        "/v1/raw", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv"
    assert r.content == b"a,b\n1,2\n"


async def test_json_sent_as_a_form_gets_a_415_that_says_so(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/everything",
        content=b'{"int32Field": 1}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert "Content-Type: application/json" in r.json()["message"]


async def test_descriptors_from_server_reflection(
    start_gateway: StartGateway, upstream: TestUpstream, Everything: type[Message]
) -> None:
    gw = await start_gateway(descriptors={"files": [], "reflection": True})
    r = await gw.client.get("/v1/everything/reflected?int32_field=2")
    assert r.status_code == 200
    assert received(upstream, "Get") == Everything(string_field="reflected", int32_field=2)
