"""G10: clients that never read a firehose stream (backpressure and the send timeout).

Each client asks for an endless stream of 1 KB messages with no pause
(``/v1/stream/0?payload_size=1000``) on a socket with a 4 KiB receive buffer and
never reads.  The gateway may buffer only so much per stalled stream (RSS
growth ≤ 1 MB each, flat over time: notes E2 measured ~0.4 MB with
``grpc.http2.bdp_probe=0``), and drops each stream after
``streaming.send_timeout_seconds`` without progress, cancelling its upstream call.

CI: 5 clients, send timeout 12 s, RSS at 4 s and 10 s.  Soak: 200 clients for
30 minutes (send timeout 31 min; RSS at 10 s and 30 min).
"""

from __future__ import annotations

import asyncio
import socket

from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    Size,
    http_request,
    raise_fd_limit,
    wait_ready,
)
from tests.upstream import TestUpstream

FIREHOSE = b"GET /v1/stream/0?payload_size=1000 HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_stalled_clients_cost_bounded_memory_and_are_dropped(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure, size: Size
) -> None:
    clients = size(5, 200)
    send_timeout = size(12.0, 1860.0)
    early, late = size((4.0, 10.0), (10.0, 1800.0))
    raise_fd_limit(2 * clients + 256)
    gw = gateway_process(upstream.address, streaming={"send_timeout_seconds": send_timeout})
    await wait_ready(gw.url)
    warm = await http_request(
        gw.url, b"GET /v1/stream/3?payload_size=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert warm.status == 200
    await asyncio.sleep(0.5)
    base_rss, base_fds = gw.rss_kib(), gw.fds()
    loop = asyncio.get_running_loop()
    host, port = gw.address
    first = len(upstream.calls)
    sockets: list[socket.socket] = []
    try:
        opened = loop.time()
        for _ in range(clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, port))
            sock.sendall(FIREHOSE)  # and never read
            sockets.append(sock)
        await upstream.wait_for_calls(first + clients)
        calls = upstream.calls[first:]
        await asyncio.sleep(max(0.0, opened + early - loop.time()))
        rss_early = gw.rss_kib()
        await asyncio.sleep(max(0.0, opened + late - loop.time()))
        rss_late = gw.rss_kib()
        assert upstream.active == clients  # still open: the send timeout has not passed yet

        ended_at: list[float] = []

        async def ended(index: int) -> None:
            await calls[index].done.wait()
            ended_at.append(loop.time() - opened)

        async with asyncio.timeout(send_timeout + 20):
            await asyncio.gather(*(ended(i) for i in range(clients)))
        cancelled = sum(1 for call in calls if call.cancelled)
        await asyncio.sleep(0.5)
        fds = gw.fds()
    finally:
        for sock in sockets:
            sock.close()
    per_stream_mb = (max(rss_early, rss_late) - base_rss) * 1024 / 1e6 / clients
    drift_mb = (rss_late - rss_early) * 1024 / 1e6
    figure(
        "G10",
        stalled_clients=clients,
        rss_per_stalled_stream_mb=round(per_stream_mb, 3),
        rss_drift_mb=round(drift_mb, 2),
        drift_window_s=f"{early:g}-{late:g}",
        send_timeout_s=send_timeout,
        dropped_after_s=round(max(ended_at), 2),
        upstream_cancelled=cancelled,
        fds_after=fds,
        fds_baseline=base_fds,
    )
    assert per_stream_mb <= 1.0
    assert abs(drift_mb) <= 2.0 + 0.1 * clients  # flat: allocator noise only
    assert cancelled == clients
    # Within send timeout + 1 s of the stall (it starts at once: the buffers fill in
    # milliseconds); 2 s more headroom for the shared machine.
    assert max(ended_at) <= send_timeout + 3.0


async def test_dropped_client_connection_is_closed(
    gateway_process: GatewayFactory, upstream: TestUpstream
) -> None:
    """Regression: after the send timeout streaming.Stream returns with the response
    unfinished and uvicorn closes the transport with close(), which first flushes the write
    buffer: a client that never reads keeps its connection (fd and buffered bytes) open for
    good Fixed: the protocol offers transport.abort to the stream (scope extension
    transcoder.abort)."""
    gw = gateway_process(upstream.address, streaming={"send_timeout_seconds": 1})
    await wait_ready(gw.url)
    base_fds = gw.fds()
    sockets = []
    try:
        for _ in range(5):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(gw.address)
            sock.sendall(FIREHOSE)
            sockets.append(sock)
        await upstream.wait_for_calls(5)
        async with asyncio.timeout(15):
            for call in upstream.calls:
                await call.done.wait()
        assert all(call.cancelled for call in upstream.calls)
        await asyncio.sleep(3)
        assert gw.fds() <= base_fds, (gw.fds(), base_fds)  # measured: 4 of 5 stay open
    finally:
        for sock in sockets:
            sock.close()
