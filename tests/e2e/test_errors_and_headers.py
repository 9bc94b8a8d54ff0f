"""Errors (contract §5), headers and metadata (§7), CORS (§8), health (§1)."""

from __future__ import annotations

import asyncio
import base64

import anyio
import grpc
import httpx
import pytest

from tests.e2e.conftest import Gateway, StartGateway
from tests.upstream import TestUpstream
from transcoder.errors import HTTP_STATUS

CODES = [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]


@pytest.mark.parametrize("code", CODES, ids=[c.name for c in CODES])
async def test_upstream_code_maps_to_http_status_and_name(
    gateway: Gateway, code: grpc.StatusCode
) -> None:
    r = await gateway.client.get(
        "/v1/everything/a",
        headers={
            "grpc-metadata-x-test-code": str(code.value[0]),
            "grpc-metadata-x-test-message": f"failed with {code.name}",
        },
    )
    assert r.status_code == HTTP_STATUS[code]
    assert r.json() == {
        "code": code.value[0],
        "error": code.name,
        "message": f"failed with {code.name}",
        "details": [],
    }


async def test_code_outside_the_table_is_unknown_500(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/everything/a", headers={"grpc-metadata-x-test-code": "99"})
    assert r.status_code == 500
    assert r.json()["code"] == 2
    assert r.json()["error"] == "UNKNOWN"


async def test_status_details_are_rendered_as_any_objects(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/everything/a",
        headers={"grpc-metadata-x-test-code": "3", "grpc-metadata-x-test-details": "mixed"},
    )
    assert r.status_code == 400
    details = r.json()["details"]
    # BadRequest kept; DebugInfo left out by default; the unknown type left out.
    assert [d["@type"] for d in details] == ["type.googleapis.com/google.rpc.BadRequest"]
    assert details[0]["fieldViolations"][0]["field"]


async def test_debug_info_is_included_when_configured(start_gateway: StartGateway) -> None:
    gw = await start_gateway(errors={"include_debug_info": True})
    r = await gw.client.get(
        "/v1/everything/a",
        headers={"grpc-metadata-x-test-code": "13", "grpc-metadata-x-test-details": "debug-info"},
    )
    assert [d["@type"] for d in r.json()["details"]] == ["type.googleapis.com/google.rpc.DebugInfo"]


async def test_garbage_status_details_still_give_the_error(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/everything/a",
        headers={"grpc-metadata-x-test-code": "5", "grpc-metadata-x-test-details": "garbage"},
    )
    assert r.status_code == 404
    assert r.json()["details"] == []


async def test_x_http_code_sets_the_status(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/everything/a", headers={"grpc-metadata-x-test-http-code": "201"}
    )
    assert r.status_code == 201
    assert r.json()["stringField"] == "a"
    r = await gateway.client.delete(
        "/v1/everything/a", headers={"grpc-metadata-x-test-http-code": "204"}
    )
    assert r.status_code == 204
    assert r.content == b""


async def test_upstream_unreachable_is_503_without_its_address(
    start_gateway: StartGateway, dead_upstream: str
) -> None:
    gw = await start_gateway(upstream={"address": dead_upstream})
    with anyio.fail_after(5):
        r = await gw.client.get("/v1/everything/a")
    assert r.status_code == 503
    assert r.json()["error"] == "UNAVAILABLE"
    port = dead_upstream.rsplit(":", 1)[1]
    assert port not in r.text
    assert "127.0.0.1" not in r.text


async def test_oversized_upstream_response_is_502(start_gateway: StartGateway) -> None:
    gw = await start_gateway(upstream={"max_receive_message_bytes": 1000})
    r = await gw.client.get(
        "/v1/everything/a", headers={"grpc-metadata-x-test-response-bytes": "5000"}
    )
    assert r.status_code == 502
    assert r.json()["error"] == "INTERNAL"


async def test_grpc_timeout_header_gives_504_on_time(gateway: Gateway) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await gateway.client.get(
        "/v1/everything/a", headers={"grpc-timeout": "300m", "grpc-metadata-x-test-hang": "1"}
    )
    elapsed = loop.time() - started
    assert r.status_code == 504
    assert r.json()["error"] == "DEADLINE_EXCEEDED"
    assert 0.25 <= elapsed < 3


async def test_default_unary_deadline(start_gateway: StartGateway) -> None:
    gw = await start_gateway(upstream={"timeout_seconds": 0.3})
    r = await gw.client.get("/v1/everything/a", headers={"grpc-metadata-x-test-hang": "1"})
    assert r.status_code == 504


async def test_grpc_timeout_is_capped(start_gateway: StartGateway) -> None:
    gw = await start_gateway(upstream={"max_timeout_seconds": 0.3})
    r = await gw.client.get(
        "/v1/everything/a", headers={"grpc-timeout": "10S", "grpc-metadata-x-test-hang": "1"}
    )
    assert r.status_code == 504


@pytest.mark.parametrize(
    "value",
    ["1", "1s", "-1S", "1.5S", "123456789S", "S"],
    ids=["no-unit", "lower-s", "negative", "fraction", "nine-digits", "no-digits"],
)
async def test_bad_grpc_timeout_is_400(
    gateway: Gateway, upstream: TestUpstream, value: str
) -> None:
    r = await gateway.client.get("/v1/everything/a", headers={"grpc-timeout": value})
    assert r.status_code == 400
    assert "grpc-timeout" in r.json()["message"].lower()
    assert upstream.calls == []


async def test_client_leaving_cancels_the_unary_upstream_call(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as other:
        task = asyncio.create_task(
            other.get("/v1/everything/a", headers={"grpc-metadata-x-test-hang": "1"})
        )
        await upstream.wait_for_calls(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with anyio.fail_after(2):
        while upstream.cancelled < 1:
            await asyncio.sleep(0.02)
    assert upstream.active == 0


# -- headers and metadata (§7) ----------------------------------------------------


async def test_forwarded_headers_and_grpc_metadata_prefix(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    r = await gateway.client.get(
        "/v1/everything/a",
        headers={
            "authorization": "Bearer t0k",
            "x-request-id": "rid-1",
            "Grpc-Metadata-Tenant": "acme",
            "grpc-metadata-trace-bin": base64.b64encode(b"\x00\x01").decode(),
            "cookie": "session=1",
            "x-not-listed": "no",
            "x-forwarded-for": "10.1.2.3",
        },
    )
    assert r.status_code == 200
    md = upstream.last("Get").metadata
    assert md["authorization"] == ["Bearer t0k"]
    assert md["x-request-id"] == ["rid-1"]
    assert md["tenant"] == ["acme"]
    assert md["trace-bin"] == [b"\x00\x01"]
    assert md["x-forwarded-for"] == ["10.1.2.3, 127.0.0.1"]
    assert "cookie" not in md
    assert "x-not-listed" not in md


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("grpc-metadata-trace-bin", "***"),
        ("grpc-metadata-x", "caf\u00e9"),
        ("grpc-metadata-", "empty-key"),
    ],
    ids=["bad-base64", "non-ascii", "empty-key"],
)
async def test_metadata_grpc_cannot_carry_is_400(
    gateway: Gateway, upstream: TestUpstream, name: str, value: str
) -> None:
    r = await gateway.client.get("/v1/everything/a", headers=[(name.encode(), value.encode())])
    assert r.status_code == 400
    assert upstream.calls == []


async def test_response_metadata_and_trailers_become_headers(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/everything/a",
        headers={
            "grpc-metadata-x-test-header-x-total": "7",
            "grpc-metadata-x-test-trailer-x-checksum": "abc",
        },
    )
    assert r.headers["grpc-metadata-x-total"] == "7"
    assert r.headers["grpc-trailer-x-checksum"] == "abc"


async def test_error_responses_carry_response_metadata(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/everything/a",
        headers={"grpc-metadata-x-test-header-x-why": "quota", "grpc-metadata-x-test-code": "8"},
    )
    assert r.status_code == 429
    assert r.headers["grpc-metadata-x-why"] == "quota"


# -- health (§1) and CORS (§8) ----------------------------------------------------


async def test_health_and_readiness(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).status_code == 200
    assert (await gateway.client.head("/healthz")).status_code == 200
    with anyio.fail_after(5):
        while (await gateway.client.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.05)


async def test_readiness_is_503_without_upstream(
    start_gateway: StartGateway, dead_upstream: str
) -> None:
    gw = await start_gateway(upstream={"address": dead_upstream})
    assert (await gw.client.get("/healthz")).status_code == 200
    r = await gw.client.get("/readyz")
    assert r.status_code == 503


async def test_cors_is_off_by_default(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/everything/a", headers={"origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_cors_preflight_and_exposed_headers(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        cors={"allow_origins": ["https://app.example"], "expose_headers": ["Grpc-Metadata-X-Total"]}
    )
    r = await gw.client.options(
        "/v1/everything/a",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "GET" in r.headers["access-control-allow-methods"]
    r = await gw.client.get(
        "/v1/everything/a",
        headers={"origin": "https://app.example", "grpc-metadata-x-test-header-x-total": "1"},
    )
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "grpc-metadata-x-total" in r.headers["access-control-expose-headers"].lower()


async def test_cors_allows_grpc_metadata_headers_by_prefix(start_gateway: StartGateway) -> None:
    gw = await start_gateway(cors={"allow_origins": ["https://app.example"]})
    r = await gw.client.options(
        "/v1/everything/a",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "Grpc-Metadata-Tenant, authorization",
        },
    )
    assert r.status_code == 200
    allowed = {h.strip() for h in r.headers["access-control-allow-headers"].lower().split(",")}
    assert {"grpc-metadata-tenant", "authorization"} <= allowed


async def test_refused_cors_preflight_is_a_json_error(start_gateway: StartGateway) -> None:
    gw = await start_gateway(cors={"allow_origins": ["https://app.example"]})
    r = await gw.client.options(
        "/v1/everything/a",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    assert r.status_code == 403
    assert r.json()["error"] == "PERMISSION_DENIED"
