"""Server-sent events and CORS in a real browser (contract §6, §8).

Headless Chromium (the system's ``chromium``, Debian's package; never downloaded) is
driven over the DevTools protocol by ``tests/browser.py``: one browser per session,
a fresh browser context per test.  Each test loads a small page (``PAGE``) on the
gateway's own origin (the gateway app wrapped to serve it) or on a second loopback
server (another origin), runs a helper of that page with ``Runtime.evaluate`` and
asserts on what the page recorded: every ``EventSource`` event in order, with its
data, ``lastEventId`` and the source's ``readyState`` at that moment.

Without ``chromium`` on ``PATH`` these tests skip, except under CI (``CI`` set),
where they fail: CI installs the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.browser import Chromium, DevTools, Page
from tests.e2e.conftest import StartGateway
from tests.upstream import TestUpstream

pytestmark = pytest.mark.browser

PAGE_PATH = "/browser-test"
PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>transcoder browser test</title>
<script>
// Record every event an EventSource fires, in order, until one named in stopOn
// (then close it).  readyState is read as the event fires: after an error,
// 0 (CONNECTING) means the browser will reconnect, 2 (CLOSED) that it gave up.
function watchEventSource(url, stopOn) {
  return new Promise((resolve) => {
    const events = [];
    const source = new EventSource(url);
    for (const type of ["open", "message", "end", "stream-error", "error"]) {
      source.addEventListener(type, (event) => {
        events.push({
          type,
          data: event.data ?? null,
          id: event.lastEventId ?? null,
          readyState: source.readyState,
        });
        if (stopOn.includes(type)) {
          source.close();
          resolve(events);
        }
      });
    }
  });
}

// fetch() and read the whole body as text; headers are those the page may read.
async function fetchText(url, headers) {
  const response = await fetch(url, {headers});
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
  };
}
</script>
"""

CONNECTING, OPEN, CLOSED = 0, 1, 2
# How long to keep watching the upstream for a reconnect that must not come.
SETTLE_SECONDS = 0.3
# Bound on one page helper (a stream here lasts at most 3 s).
PAGE_TIMEOUT = 10


@pytest.fixture
async def page(chromium: Chromium) -> AsyncIterator[Page]:
    """A fresh tab; request it after the gateway so it closes (and drops its streams) first."""
    async with DevTools.connect(chromium.endpoint) as devtools, devtools.page() as tab:
        yield tab


def with_page(app: ASGIApp) -> ASGIApp:
    """``app`` that also answers ``GET /browser-test`` with ``PAGE``."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PAGE_PATH:
            headers = [(b"content-type", b"text/html; charset=utf-8")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": PAGE})
            return
        await app(scope, receive, send)

    return serve


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[str]:
    """A second loopback HTTP server serving only ``PAGE``: another origin than the gateway.

    One exchange per connection: ``PAGE`` at ``PAGE_PATH``, 404 elsewhere, then close.
    """
    connections: set[asyncio.StreamWriter] = set()

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            found = target == PAGE_PATH.encode()
            body = PAGE if found else b""
            writer.write(
                (b"HTTP/1.1 200 OK" if found else b"HTTP/1.1 404 Not Found")
                + b"\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # a connection the browser opened and left unused
        finally:
            connections.discard(writer)
            writer.close()

    server = await asyncio.start_server(exchange, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in list(connections):
            writer.close()  # idle preconnects would keep wait_closed() waiting
        with anyio.fail_after(5):
            await server.wait_closed()


async def watch(page: Page, url: str, *stop_on: str) -> list[dict[str, Any]]:
    with anyio.fail_after(PAGE_TIMEOUT):
        events: list[dict[str, Any]] = await page.evaluate(
            f"watchEventSource({json.dumps(url)}, {json.dumps(stop_on)})"
        )
    return events


async def fetch_text(page: Page, url: str, headers: dict[str, str]) -> dict[str, Any]:
    with anyio.fail_after(PAGE_TIMEOUT):
        result: dict[str, Any] = await page.evaluate(
            f"fetchText({json.dumps(url)}, {json.dumps(headers)})"
        )
    return result


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def messages(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``(lastEventId, parsed data)`` of each ``message`` event."""
    return [(e["id"], json.loads(e["data"])) for e in events if e["type"] == "message"]


async def stream_calls(upstream: TestUpstream) -> int:
    """How many times the upstream's Stream method was called, after a short settle.

    A duplicate request or a quick reconnect shows here; a page that closed its source
    (or a source left CLOSED) cannot reconnect later.
    """
    await anyio.sleep(SETTLE_SECONDS)
    return sum(call.method.endswith("/Stream") for call in upstream.calls)


def response_to(page: Page, path: str) -> dict[str, Any]:
    """The one response the browser received for ``path`` (from the Network log)."""
    found = [r for r in page.responses() if r["url"].split("://", 1)[1].partition("/")[2] == path]
    assert len(found) == 1, [r["url"] for r in page.responses()]
    return found[0]


# -- same origin ---------------------------------------------------------------


async def test_event_source_receives_every_message_then_end_and_closes(
    start_gateway: StartGateway, upstream: TestUpstream, page: Page
) -> None:
    gateway = await start_gateway(wrap=with_page)
    await page.goto(gateway.url + PAGE_PATH)

    events = await watch(page, "/v1/stream/3?interval_ms=50", "end", "error")

    assert types(events) == ["open", "message", "message", "message", "end"], events
    assert messages(events) == [(str(i + 1), {"index": i, "payload": ""}) for i in range(3)]
    assert json.loads(events[-1]["data"]) == {"trailers": {}}
    response = response_to(page, "v1/stream/3?interval_ms=50")
    assert response["status"] == 200
    assert response["mimeType"] == "text/event-stream"
    assert await stream_calls(upstream) == 1  # no reconnect


async def test_mid_stream_failure_arrives_as_one_stream_error_event(
    start_gateway: StartGateway, upstream: TestUpstream, page: Page
) -> None:
    gateway = await start_gateway(wrap=with_page)
    await page.goto(gateway.url + PAGE_PATH)

    # Watch until the connection ends, so anything sent after the error frame shows too.
    url = "/v1/stream/5?fail_after=2&fail_code=14&fail_message=gone"
    events = await watch(page, url, "error")

    assert types(events) == ["open", "message", "message", "stream-error", "error"], events
    assert messages(events) == [
        ("1", {"index": 0, "payload": ""}),
        ("2", {"index": 1, "payload": ""}),
    ]
    error = json.loads(events[3]["data"])
    assert error == {"code": 14, "error": "UNAVAILABLE", "message": "gone", "details": []}
    assert await stream_calls(upstream) == 1


async def test_failure_before_the_first_message_stops_event_source_for_good(
    start_gateway: StartGateway, upstream: TestUpstream, page: Page
) -> None:
    gateway = await start_gateway(wrap=with_page)
    await page.goto(gateway.url + PAGE_PATH)

    events = await watch(page, "/v1/stream/3?fail_after=0&fail_code=5", "open", "error")

    # A plain 404 makes EventSource fail the connection: CLOSED, so no reconnect.
    assert events == [{"type": "error", "data": None, "id": None, "readyState": CLOSED}]
    response = response_to(page, "v1/stream/3?fail_after=0&fail_code=5")
    assert response["status"] == 404
    assert response["mimeType"] == "application/json"
    assert await stream_calls(upstream) == 1


async def test_keepalive_comments_are_invisible_to_event_source(
    start_gateway: StartGateway, upstream: TestUpstream, page: Page
) -> None:
    gateway = await start_gateway(wrap=with_page, streaming={"sse_keepalive_seconds": 1})
    await page.goto(gateway.url + PAGE_PATH)
    url = "/v1/stream/2?interval_ms=2500"

    # The same stream twice at once: as EventSource sees it, and as raw text via fetch().
    with anyio.fail_after(15):
        events, raw = await page.evaluate(
            f"Promise.all([watchEventSource({json.dumps(url)}, ['end', 'error']),"
            f" fetchText({json.dumps(url)}, {{Accept: 'text/event-stream'}})])"
        )

    assert types(events) == ["open", "message", "message", "end"], events
    assert messages(events) == [
        ("1", {"index": 0, "payload": ""}),
        ("2", {"index": 1, "payload": ""}),
    ]
    assert raw["status"] == 200
    lines = raw["body"].split("\n")
    assert lines.count(": keepalive") >= 2, raw["body"]
    # The keepalives fill the 2.5 s gap between the two messages.
    first, second = lines.index("id: 1"), lines.index("id: 2")
    assert lines[first:second].count(": keepalive") >= 2, raw["body"]
    assert await stream_calls(upstream) == 2


# -- cross origin --------------------------------------------------------------


async def test_cross_origin_page_streams_and_reads_exposed_metadata_with_cors(
    start_gateway: StartGateway, upstream: TestUpstream, page: Page
) -> None:
    async with page_server() as origin:
        gateway = await start_gateway(
            cors={
                "allow_origins": [origin],
                # No allow_headers entry: Grpc-Metadata-* request headers are allowed by prefix.
                "expose_headers": ["Grpc-Metadata-X-Total"],
            }
        )
        await page.goto(origin + PAGE_PATH)

        events = await watch(page, gateway.url + "/v1/stream/3?interval_ms=50", "end", "error")
        assert types(events) == ["open", "message", "message", "message", "end"], events
        assert messages(events) == [(str(i + 1), {"index": i, "payload": ""}) for i in range(3)]

        # A custom request header: the browser sends a preflight first.
        result = await fetch_text(
            page,
            gateway.url + "/v1/everything/a",
            {"Grpc-Metadata-x-test-header-x-total": "7"},
        )
        assert result["status"] == 200, result
        assert result["headers"].get("grpc-metadata-x-total") == "7", result["headers"]
        assert json.loads(result["body"])["stringField"] == "a"
        assert upstream.last("Get").metadata["x-test-header-x-total"] == ["7"]


async def test_cross_origin_event_source_fails_without_cors(
    start_gateway: StartGateway, page: Page
) -> None:
    async with page_server() as origin:
        gateway = await start_gateway()
        await page.goto(origin + PAGE_PATH)

        events = await watch(page, gateway.url + "/v1/stream/3?interval_ms=50", "end", "error")

        assert events == [{"type": "error", "data": None, "id": None, "readyState": CLOSED}]
