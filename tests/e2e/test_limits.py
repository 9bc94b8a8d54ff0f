"""Connection and request limits (contract §9), with raw sockets where httpx would not go."""

from __future__ import annotations

import asyncio
import json

import anyio
import pytest

from tests.e2e.conftest import StartGateway, raw_request
from tests.upstream import TestUpstream


def status_and_body(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


async def open_connection(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closes the connection (EOF), failing after ``seconds``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with anyio.fail_after(seconds):
        try:
            while await reader.read(1024):
                pass
        except ConnectionError:
            pass  # reset: closed too
    return loop.time() - started


async def test_url_over_the_limit_is_414(
    start_gateway: StartGateway, upstream: TestUpstream
) -> None:
    gw = await start_gateway(http={"max_url_bytes": 200})
    ok = await raw_request(
        gw.url, b"GET /v1/everything/" + b"a" * 150 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert ok.startswith(b"HTTP/1.1 200")
    response = await raw_request(
        gw.url, b"GET /v1/everything/" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, body = status_and_body(response)
    assert status == 414
    assert body["error"] == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize(
    ("headers", "limit"),
    [
        (b"X-Big: " + b"v" * 3000 + b"\r\n", {"max_header_bytes": 2048}),
        (b"".join(b"X-H%d: v\r\n" % i for i in range(30)), {"max_headers": 20}),
    ],
    ids=["bytes", "count"],
)
async def test_headers_over_the_limit_are_431(
    start_gateway: StartGateway, upstream: TestUpstream, headers: bytes, limit: dict[str, int]
) -> None:
    gw = await start_gateway(http=limit)
    response = await raw_request(
        gw.url, b"GET /v1/everything/a HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    )
    status, body = status_and_body(response)
    assert status == 431
    assert body["error"] == "RESOURCE_EXHAUSTED"
    assert upstream.calls == []


async def test_oversized_header_is_refused_before_it_ends(start_gateway: StartGateway) -> None:
    """The 431 comes while the header is still arriving: it is never buffered whole."""
    gw = await start_gateway()
    reader, writer = await open_connection(gw.url)
    try:
        writer.write(b"GET /v1/everything/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 32_768)
        await writer.drain()
        with anyio.fail_after(3):
            head = await reader.readuntil(b"\r\n")
        assert head.startswith(b"HTTP/1.1 431")
    finally:
        writer.close()


async def test_silent_connection_is_closed_after_the_header_timeout(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(http={"header_timeout_seconds": 1})
    reader, writer = await open_connection(gw.url)
    try:
        elapsed = await closed_within(reader, 3)
        assert 0.8 <= elapsed <= 2.0
    finally:
        writer.close()


async def test_trickling_headers_are_cut_at_the_header_timeout(start_gateway: StartGateway) -> None:
    gw = await start_gateway(http={"header_timeout_seconds": 1})
    reader, writer = await open_connection(gw.url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        writer.write(b"GET /v1/everything/a HTTP/1.1\r\n")
        with anyio.fail_after(4):
            for i in range(20):
                writer.write(b"X-Slow-%d: v\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.2)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        elapsed = await closed_within(reader, 4)
        writer.close()
    assert loop.time() - started - elapsed <= 2.0


async def test_keep_alive_connection_serves_a_second_request(start_gateway: StartGateway) -> None:
    gw = await start_gateway(http={"header_timeout_seconds": 1})
    reader, writer = await open_connection(gw.url)
    try:
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(3):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.6)  # idle between requests does not count as header time
    finally:
        writer.close()


async def test_body_that_stops_arriving_is_408(
    start_gateway: StartGateway, upstream: TestUpstream
) -> None:
    gw = await start_gateway(http={"body_timeout_seconds": 1})
    reader, writer = await open_connection(gw.url)
    try:
        writer.write(
            b"POST /v1/everything HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
            b'Content-Type: application/json\r\n\r\n{"a"'
        )
        with anyio.fail_after(4):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert upstream.calls == []
    finally:
        writer.close()


async def test_declared_length_over_the_limit_is_413_before_reading(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(http={"max_request_body_bytes": 1000})
    reader, writer = await open_connection(gw.url)
    try:
        writer.write(b"POST /v1/everything HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
        with anyio.fail_after(3):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
    finally:
        writer.close()
