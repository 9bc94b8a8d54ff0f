"""Metrics (contract §10), the request log and request ids."""

from __future__ import annotations

import json
import logging
import re

import pytest

from tests.e2e.conftest import Gateway, StartGateway, raw_request
from tests.upstream import TestUpstream


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        series, _, label_text = metric.partition("{")
        have = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if series == name and have == wanted:
            return float(value)
    return 0.0


async def test_metrics_count_requests_by_route_and_upstream_calls_by_code(gateway: Gateway) -> None:
    for _ in range(3):
        assert (await gateway.client.get("/v1/everything/a")).status_code == 200
    await gateway.client.get("/v1/everything/a", headers={"grpc-metadata-x-test-code": "5"})
    await gateway.client.get("/v1/nowhere")
    text = (await gateway.client.get("/metrics")).text
    route = "/v1/everything/{string_field}"
    assert (
        sample(text, "transcoder_http_requests_total", route=route, method="GET", status="200") == 3
    )
    assert (
        sample(text, "transcoder_http_requests_total", route=route, method="GET", status="404") == 1
    )
    assert (
        sample(
            text, "transcoder_http_requests_total", route="unmatched", method="GET", status="404"
        )
        == 1
    )
    rpc = "transcoder.testing.v1.Echo.Get"
    assert sample(text, "transcoder_upstream_calls_total", rpc=rpc, code="OK") == 3
    assert sample(text, "transcoder_upstream_calls_total", rpc=rpc, code="NOT_FOUND") == 1
    assert sample(text, "transcoder_upstream_call_duration_seconds_count", rpc=rpc, code="OK") == 3
    assert (
        sample(text, "transcoder_http_request_duration_seconds_count", route=route, method="GET")
        == 4
    )
    assert sample(text, "transcoder_http_response_body_bytes_total") > 0


async def test_metrics_follow_open_streams_messages_and_keepalives(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(streaming={"sse_keepalive_seconds": 0.3})
    async with gw.client.stream(
        "GET", "/v1/stream/2?interval_ms=800", headers={"accept": "text/event-stream"}
    ) as r:
        chunks = r.aiter_raw()
        assert (await chunks.__anext__()).startswith(b"id: 1")
        during = (await gw.client.get("/metrics")).text
        assert sample(during, "transcoder_open_streams") == 1
        async for _ in chunks:
            pass
    after = (await gw.client.get("/metrics")).text
    assert sample(after, "transcoder_open_streams") == 0
    assert sample(after, "transcoder_stream_messages_total", route="/v1/stream/{count}") == 2
    assert sample(after, "transcoder_stream_keepalives_total") >= 1


async def test_metrics_can_be_turned_off(start_gateway: StartGateway) -> None:
    gw = await start_gateway(metrics={"enabled": False})
    r = await gw.client.get("/metrics")
    assert r.status_code == 404


async def test_request_id_is_echoed_or_made_and_reaches_the_upstream(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    given = await gateway.client.get("/v1/everything/a", headers={"x-request-id": "req-42"})
    assert given.headers["x-request-id"] == "req-42"
    assert upstream.last("Get").metadata["x-request-id"] == ["req-42"]
    made = await gateway.client.get("/v1/everything/a")
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["x-request-id"])
    assert upstream.last("Get").metadata["x-request-id"] == [made.headers["x-request-id"]]
    error = await gateway.client.get("/v1/nowhere", headers={"x-request-id": "req-43"})
    assert error.headers["x-request-id"] == "req-43"


async def test_one_access_line_per_request_without_secrets(
    start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start_gateway(request={"ignored_query_parameters": ["api_key"]})
    caplog.set_level(logging.INFO, logger="transcoder.access")
    await gateway.client.get(
        "/v1/everything/a?api_key=s3cret-query",
        headers={"authorization": "Bearer s3cret-token", "x-request-id": "rid-7"},
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "transcoder.access"]
    assert len(lines) == 1
    line = lines[0]
    assert 'route="/v1/everything/{string_field}"' in line
    assert "status=200" in line
    assert 'grpc_code="OK"' in line
    assert 'request_id="rid-7"' in line
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "s3cret" not in text


async def test_access_log_escapes_control_characters(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="transcoder.access")
    await raw_request(gateway.url, b"GET /v1/everything/a%0Aforged%1b HTTP/1.1\r\nHost: x\r\n\r\n")
    line = next(r.getMessage() for r in caplog.records if r.name == "transcoder.access")
    assert "\n" not in line
    assert "\x1b" not in line
    assert "\\x0aforged\\x1b" in line


async def test_access_log_as_json(
    start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await start_gateway(logging={"format": "json"})
    caplog.set_level(logging.INFO, logger="transcoder.access")
    await gw.client.get("/v1/stream/2", headers={"x-request-id": "j-1"})
    record = json.loads(
        next(r.getMessage() for r in caplog.records if r.name == "transcoder.access")
    )
    assert record["route"] == "/v1/stream/{count}"
    assert record["status"] == 200
    assert record["grpc_code"] == "OK"
    assert record["messages"] == 2
    assert record["request_id"] == "j-1"
    assert record["duration_ms"] > 0
