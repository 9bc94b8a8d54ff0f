"""G9: a client that goes away cancels its upstream call (contract §6, unary calls too).

Clients reset their connections 1 s into a 20 s upstream call (the upstream
sleeps: ``x-test-delay-ms``); the upstream must see each call cancelled within
1 s.  Starlette alone lets such calls run to completion (notes E6).  Also the
stemdeck pattern (notes S2): a client leaving before the response starts, for a
stream whose upstream has not answered yet, and for a request whose body never
finished arriving.

CI: 5 clients.  Soak: 100.
"""

from __future__ import annotations

import asyncio

from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    Size,
    abort,
    wait_ready,
    wait_until,
)
from tests.upstream import TestUpstream

SLOW_UNARY = (
    b"GET /v1/everything/slow HTTP/1.1\r\nHost: x\r\nGrpc-Metadata-x-test-delay-ms: 20000\r\n\r\n"
)
SLOW_STREAM = b"GET /v1/stream/3?initial_delay_ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n"


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def abort_and_time_cancellations(
    upstream: TestUpstream, writers: list[asyncio.StreamWriter], first_call: int
) -> list[float]:
    """Reset every connection; seconds until each upstream call ended cancelled."""
    loop = asyncio.get_running_loop()
    calls = upstream.calls[first_call:]
    aborted = loop.time()
    for writer in writers:
        abort(writer)

    async def ended(index: int) -> float:
        await calls[index].done.wait()
        return loop.time() - aborted

    async with asyncio.timeout(25):
        delays = await asyncio.gather(*(ended(i) for i in range(len(calls))))
    assert all(call.cancelled for call in calls), [c.cancelled for c in calls]
    return list(delays)


async def test_unary_client_leaving_cancels_the_upstream_call(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure, size: Size
) -> None:
    clients = size(5, 100)
    gw = gateway_process(upstream.address)
    await wait_ready(gw.url)

    # 1. Unary: abort 1 s into a 20 s upstream call.
    first = len(upstream.calls)
    connections = [await connect(gw.url) for _ in range(clients)]
    for _, writer in connections:
        writer.write(SLOW_UNARY)
    await upstream.wait_for_calls(first + clients)
    await asyncio.sleep(1.0)
    unary = await abort_and_time_cancellations(upstream, [w for _, w in connections], first)

    # 2. Stream, before the response starts (the upstream has not answered yet).
    first = len(upstream.calls)
    connections = [await connect(gw.url) for _ in range(clients)]
    for _, writer in connections:
        writer.write(SLOW_STREAM)
    await upstream.wait_for_calls(first + clients)
    await asyncio.sleep(0.5)
    stream = await abort_and_time_cancellations(upstream, [w for _, w in connections], first)

    # 3. A body that never finishes arriving: the upstream is never called.
    first = len(upstream.calls)
    connections = [await connect(gw.url) for _ in range(clients)]
    for _, writer in connections:
        writer.write(
            b"POST /v1/everything HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"stringField":'
        )
        await writer.drain()
    await asyncio.sleep(0.5)
    for _, writer in connections:
        abort(writer)
    await asyncio.sleep(0.5)
    body_calls = len(upstream.calls) - first

    await wait_until(lambda: upstream.active == 0, 5)
    figure(
        "G9",
        clients=clients,
        unary_cancelled=len(unary),
        unary_cancel_max_s=round(max(unary), 3),
        stream_before_start_cancel_max_s=round(max(stream), 3),
        unfinished_body_upstream_calls=body_calls,
        bound_s=1,
    )
    assert max(unary) <= 2.5  # 1 s in the goal, 2.5x headroom
    assert max(stream) <= 2.5
    assert body_calls == 0
    assert upstream.active == 0
