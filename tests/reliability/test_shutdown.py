"""G17: SIGTERM with streams open and a unary call in flight (contract §1, notes S12).

Every open stream must get its terminal error frame (UNAVAILABLE: SSE one
``event: stream-error``, NDJSON the error line) and a clean chunked end; the
unary call in flight finishes with its answer; the process exits 0 within
``http.shutdown_grace_seconds`` + 2 s.

CI: 100 streams, grace 3 s.  Soak: 500 streams at the default grace (10 s).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    RawStream,
    Size,
    close_streams,
    http_request,
    open_stream,
    raise_fd_limit,
    wait_ready,
    wait_until,
)
from tests.upstream import TestUpstream


def stream_request(sse: bool) -> bytes:
    accept = "text/event-stream" if sse else "application/x-ndjson"
    return (
        f"GET /v1/stream/0?interval_ms=500 HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n"
    ).encode()


def ended_unavailable(stream: RawStream, sse: bool) -> bool:
    text = stream.data.decode()
    if not stream.complete:
        return False
    if sse:
        frames = text.split("\n\n")
        last = frames[-2] if len(frames) >= 2 else ""
        return (
            text.count("event: stream-error") == 1
            and last.startswith("event: stream-error\n")
            and json.loads(last.split("\ndata: ", 1)[1])["error"] == "UNAVAILABLE"
        )
    last_line = text.splitlines()[-1] if text.endswith("\n") else ""
    return bool(last_line) and json.loads(last_line).get("error") == "UNAVAILABLE"


async def test_sigterm_ends_every_stream_and_exits_zero(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure, size: Size
) -> None:
    count = size(100, 500)
    grace = size(3.0, 10.0)
    raise_fd_limit(4 * count + 256)
    gw = gateway_process(upstream.address, http={"shutdown_grace_seconds": grace})
    await wait_ready(gw.url)
    streams: list[RawStream] = []
    try:
        for start in range(0, count, 100):
            streams += await asyncio.gather(
                *(
                    open_stream(gw.url, stream_request(i % 2 == 1))
                    for i in range(start, min(count, start + 100))
                )
            )
        await wait_until(lambda: all(s.arrivals for s in streams), 30, step=0.05)
        assert {s.status for s in streams} == {200}
        unary = asyncio.ensure_future(
            http_request(
                gw.url,
                b"GET /v1/everything/inflight HTTP/1.1\r\nHost: x\r\n"
                b"Grpc-Metadata-x-test-delay-ms: 1500\r\n\r\n",
                limit=grace + 10,
            )
        )
        await upstream.wait_for_calls(count + 1)
        signalled = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the unary call is still in flight: no new connections
        try:
            late = await http_request(gw.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            new_connection = f"answered-{late.status}"
        except ConnectionError:
            new_connection = "refused"
        exit_code = await asyncio.to_thread(gw.process.wait, grace + 10)
        exited_after = time.monotonic() - signalled
        unary_status = (await unary).status
        await wait_until(lambda: all(s.complete or s.ended for s in streams), 5)
    finally:
        await close_streams(streams)
    terminal = sum(1 for i, s in enumerate(streams) if ended_unavailable(s, i % 2 == 1))
    figure(
        "G17",
        streams=len(streams),
        terminal_unavailable=terminal,
        unary_in_flight_status=unary_status,
        new_connection_after_sigterm=new_connection,
        exit_code=exit_code,
        exited_after_s=round(exited_after, 2),
        grace_s=grace,
    )
    assert terminal == len(streams), [s.data[-120:] for s in streams][:3]
    assert unary_status == 200
    assert new_connection == "refused"
    assert exit_code == 0
    assert exited_after <= grace + 2.0
