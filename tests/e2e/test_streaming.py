"""Server streaming end to end: NDJSON and SSE, exactly as contract §6 says."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.conftest import Gateway, StartGateway
from tests.upstream import TestUpstream

SSE = {"accept": "text/event-stream"}


def ndjson(text: str) -> list[Any]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def item(index: int, payload: str = "") -> str:
    return json.dumps({"index": index, "payload": payload}, separators=(",", ":"))


async def timed_chunks(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: float = 10
) -> list[tuple[float, bytes]]:
    """Every body chunk as it arrived, with its time since the request was sent."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks: list[tuple[float, bytes]] = []
    with anyio.fail_after(limit):
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                chunks.append((loop.time() - started, chunk))
    return chunks


# -- formats and framing -------------------------------------------------------


async def test_ndjson_is_the_default(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/stream/3?payload_size=4")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.text == "".join(item(i, "xxxx") + "\n" for i in range(3))


async def test_sse_frames_byte_for_byte(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/stream/2?payload_size=2", headers=SSE)
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text == (
        f"id: 1\ndata: {item(0, 'xx')}\n\n"
        f"id: 2\ndata: {item(1, 'xx')}\n\n"
        'event: end\ndata: {"trailers":{}}\n\n'
    )


async def test_end_event_carries_the_upstream_trailers(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/stream/1", headers={**SSE, "grpc-metadata-x-test-trailer-x-rows": "1"}
    )
    last = r.text.split("\n\n")[-2]
    assert last == 'event: end\ndata: {"trailers":{"x-rows":"1"}}'


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/x-ndjson"),
        ("*/*", "application/x-ndjson"),
        ("text/event-stream", "text/event-stream"),
        ("text/*", "text/event-stream"),
        ("application/x-ndjson;q=0.5, text/event-stream;q=0.9", "text/event-stream"),
        ("text/event-stream;q=0.5, application/x-ndjson", "application/x-ndjson"),
        ("text/event-stream;q=0, */*", "application/x-ndjson"),
        ("application/x-ndjson;q=0, */*;q=0.1", "text/event-stream"),
        ("text/html", "application/x-ndjson"),
    ],
    ids=[
        "none",
        "any",
        "sse",
        "text-wildcard",
        "q-prefers-sse",
        "q-prefers-ndjson",
        "sse-excluded",
        "ndjson-excluded",
        "no-match",
    ],
)
async def test_accept_negotiation(gateway: Gateway, accept: str | None, expected: str) -> None:
    headers = {"accept": accept} if accept else {}
    r = await gateway.client.get("/v1/stream/1", headers=headers)
    assert r.headers["content-type"] == expected


async def test_every_accept_line_is_read(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/stream/1", headers=[("accept", "application/json"), ("accept", "text/event-stream")]
    )
    assert r.headers["content-type"] == "text/event-stream"


@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/event-stream"])
async def test_stream_headers_tell_proxies_not_to_buffer(gateway: Gateway, accept: str) -> None:
    raw = await raw_stream_head(gateway.url, "/v1/stream/1", accept)
    head = raw.lower()
    assert b"cache-control: no-cache, no-transform\r\n" in head
    assert b"x-accel-buffering: no\r\n" in head
    assert b"\r\nconnection:" not in head
    assert b"content-encoding" not in head


async def test_post_binding_of_a_streaming_method(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.post("/v1/stream", json={"count": 2, "payloadSize": 1})
    assert ndjson(r.text) == [{"index": 0, "payload": "x"}, {"index": 1, "payload": "x"}]
    request: Any = upstream.last("Stream").request
    assert request.count == 2


# -- errors -------------------------------------------------------------------


async def test_mid_stream_failure_ends_ndjson_with_the_error_line(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/stream/5?fail_after=2&fail_code=13&fail_message=boom")
    assert r.status_code == 200
    assert ndjson(r.text) == [
        {"index": 0, "payload": ""},
        {"index": 1, "payload": ""},
        {"code": 13, "error": "INTERNAL", "message": "boom", "details": []},
    ]


async def test_mid_stream_failure_ends_sse_with_one_stream_error_event(gateway: Gateway) -> None:
    r = await gateway.client.get(
        "/v1/stream/5?fail_after=1&fail_code=14&fail_message=gone&fail_with_details=true",
        headers=SSE,
    )
    frames = r.text.split("\n\n")
    assert frames[0] == f"id: 1\ndata: {item(0)}"
    event, data = frames[1].split("\n")
    assert event == "event: stream-error"
    error = json.loads(data.removeprefix("data: "))
    assert (error["code"], error["error"], error["message"]) == (14, "UNAVAILABLE", "gone")
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert frames[2:] == [""]  # nothing after it: no end event
    assert "event: end" not in r.text


async def test_error_event_name_is_configurable(start_gateway: StartGateway) -> None:
    gw = await start_gateway(streaming={"sse_error_event": "grpc-error"})
    r = await gw.client.get("/v1/stream/3?fail_after=1&fail_code=2", headers=SSE)
    assert "\nevent: grpc-error\ndata: " in r.text


@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/event-stream"])
async def test_failure_before_the_stream_begins_is_a_plain_error(
    gateway: Gateway, accept: str
) -> None:
    r = await gateway.client.get(
        "/v1/stream/5?fail_after=0&fail_code=16&fail_message=who", headers={"accept": accept}
    )
    assert r.status_code == 401
    assert r.json() == {"code": 16, "error": "UNAUTHENTICATED", "message": "who", "details": []}


async def test_ndjson_envelope(start_gateway: StartGateway) -> None:
    gw = await start_gateway(streaming={"ndjson_envelope": True})
    r = await gw.client.get("/v1/stream/3?fail_after=1&fail_code=10&fail_message=x")
    assert ndjson(r.text) == [
        {"result": {"index": 0, "payload": ""}},
        {"error": {"code": 10, "error": "ABORTED", "message": "x", "details": []}},
    ]


# -- timing: keepalive, commit, immediacy ----------------------------------------


async def test_sse_keepalive_after_idleness_only(start_gateway: StartGateway) -> None:
    gw = await start_gateway(streaming={"sse_keepalive_seconds": 1})
    chunks = await timed_chunks(gw.client, "/v1/stream/2?interval_ms=2600", SSE)
    keepalives = [t for t, c in chunks if c == b": keepalive\n\n"]
    assert len(keepalives) == 2
    first_message = chunks[0][0]
    # Measured from the last frame written: ~1 s and ~2 s after the first message.
    assert 0.8 <= keepalives[0] - first_message <= 1.5
    assert 1.8 <= keepalives[1] - first_message <= 2.5
    busy = await timed_chunks(gw.client, "/v1/stream/6?interval_ms=300", SSE)
    assert not [c for _, c in busy if c.startswith(b":")]


async def test_ndjson_keepalive_is_off_by_default_and_configurable(
    start_gateway: StartGateway, gateway: Gateway
) -> None:
    plain = await timed_chunks(gateway.client, "/v1/stream/2?interval_ms=1300", {})
    assert b"\n" not in [c for _, c in plain]
    gw = await start_gateway(streaming={"ndjson_keepalive_seconds": 0.5})
    chunks = await timed_chunks(gw.client, "/v1/stream/2?interval_ms=1300", {})
    assert [c for _, c in chunks].count(b"\n") == 2


async def test_first_message_of_a_stalled_stream_arrives_at_once(gateway: Gateway) -> None:
    chunks = await timed_chunks(gateway.client, "/v1/stream/2?interval_ms=1500", SSE)
    assert chunks[0][1].startswith(b"id: 1\n")
    assert chunks[0][0] < 1.0


async def test_response_commits_at_the_first_keepalive_when_upstream_is_silent(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(streaming={"sse_keepalive_seconds": 1})
    chunks = await timed_chunks(gw.client, "/v1/stream/1?initial_delay_ms=1800", SSE)
    assert chunks[0][1] == b": keepalive\n\n"
    assert 0.8 <= chunks[0][0] <= 1.6
    assert chunks[1][1].startswith(b"id: 1\n")


async def test_response_commits_when_the_upstream_sends_headers(gateway: Gateway) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with anyio.fail_after(5):
        async with gateway.client.stream(
            "GET",
            "/v1/stream/1?headers_then_stall=true",
            headers={**SSE, "grpc-metadata-x-test-header-x-shard": "7"},
        ) as response:
            committed = loop.time() - started
            assert response.status_code == 200
            assert response.headers["grpc-metadata-x-shard"] == "7"
    assert committed < 1.0  # well before the 15 s keepalive


async def test_retry_is_sent_first(start_gateway: StartGateway) -> None:
    gw = await start_gateway(streaming={"sse_retry_ms": 2500})
    r = await gw.client.get("/v1/stream/1", headers=SSE)
    assert r.text.startswith("retry: 2500\n\nid: 1\n")


async def test_last_event_id_reaches_the_upstream(gateway: Gateway, upstream: TestUpstream) -> None:
    r = await gateway.client.get("/v1/stream/1", headers={**SSE, "last-event-id": "41"})
    assert r.text.startswith("id: 1\n")  # the gateway never resumes itself
    assert upstream.last("Stream").metadata["last-event-id"] == ["41"]


# -- flow, limits, cancellation ------------------------------------------------


async def wait_until(predicate: Any, limit: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with anyio.fail_after(limit):
        while not predicate():
            await asyncio.sleep(0.02)
    return loop.time() - started


async def test_client_leaving_cancels_the_upstream_stream(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    async with gateway.client.stream("GET", "/v1/stream/0?interval_ms=50", headers=SSE) as r:
        lines = 0
        async for _ in r.aiter_lines():
            lines += 1
            if lines >= 6:
                break
    elapsed = await wait_until(lambda: upstream.cancelled >= 1, 2)
    assert elapsed < 2
    assert upstream.active == 0


async def test_concurrent_stream_cap(start_gateway: StartGateway, upstream: TestUpstream) -> None:
    gw = await start_gateway(streaming={"max_concurrent_streams": 1})
    async with gw.client.stream("GET", "/v1/stream/0?interval_ms=200") as first:
        assert first.status_code == 200
        second = await gw.client.get("/v1/stream/1")
        assert second.status_code == 503
        assert second.json()["error"] == "UNAVAILABLE"
    await wait_until(lambda: upstream.active == 0, 2)
    assert (await gw.client.get("/v1/stream/1")).status_code == 200


async def test_streams_are_not_cut_by_the_unary_deadline(start_gateway: StartGateway) -> None:
    gw = await start_gateway(upstream={"timeout_seconds": 0.3})
    r = await gw.client.get("/v1/stream/3?interval_ms=300")
    assert len(ndjson(r.text)) == 3


async def test_stream_timeout_ends_with_deadline_exceeded(start_gateway: StartGateway) -> None:
    gw = await start_gateway(upstream={"stream_timeout_seconds": 0.5})
    r = await gw.client.get("/v1/stream/5?interval_ms=400", headers=SSE)
    assert "event: stream-error" in r.text
    assert '"error":"DEADLINE_EXCEEDED"' in r.text


async def test_client_that_reads_nothing_is_dropped_and_upstream_cancelled(
    start_gateway: StartGateway, upstream: TestUpstream
) -> None:
    gw = await start_gateway(streaming={"send_timeout_seconds": 1})
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    try:
        sock.sendall(b"GET /v1/stream/0?payload_size=4000 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Never read: the gateway's writes stall once the socket buffers are full.
        elapsed = await wait_until(lambda: upstream.cancelled >= 1, 8)
        assert elapsed < 6
        assert upstream.active == 0
    finally:
        sock.close()


async def test_shutdown_ends_open_streams_with_unavailable(gateway: Gateway) -> None:
    async with gateway.client.stream("GET", "/v1/stream/0?interval_ms=200", headers=SSE) as r:
        text = b""
        async for chunk in r.aiter_raw():
            text += chunk
            if b"id: 1\n" in text and not gateway.app.streams.closing:
                gateway.app.begin_shutdown()
    frames = text.decode().split("\n\n")
    assert frames[-2].startswith("event: stream-error\n")
    assert '"error":"UNAVAILABLE"' in frames[-2]
    assert frames[-1] == ""


async def raw_stream_head(url: str, path: str, accept: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n".encode())
        with anyio.fail_after(5):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


async def test_regression_trailers_only_error_is_never_committed_as_200(gateway: Gateway) -> None:
    """An error before the first message must always be a plain HTTP error.

    Cause: grpc.aio resolves the (empty) initial metadata of a trailers-only answer a
    moment before the call's status, and the stream committed a 200 on those headers
    (14 of 600 requests in a browser-test run).  Fix: empty headers alone never commit.
    """

    async def one(i: int) -> int:
        accept = "text/event-stream" if i % 2 else "application/x-ndjson"
        r = await gateway.client.get(
            "/v1/stream/5?fail_after=0&fail_code=5", headers={"accept": accept}
        )
        return r.status_code

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert set(statuses) == {404}


@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/event-stream"])
async def test_message_json_cannot_show_ends_the_stream_with_internal(
    gateway: Gateway, accept: str
) -> None:
    r = await gateway.client.get(
        "/v1/stream-echo/3?string_field=bad-time", headers={"accept": accept}
    )
    assert r.status_code == 200
    assert r.text.count('"stringField":"bad-time"') == 1  # the first copy went out
    assert '"error":"INTERNAL"' in r.text
    assert r.text.endswith("\n")
    assert "event: end" not in r.text
