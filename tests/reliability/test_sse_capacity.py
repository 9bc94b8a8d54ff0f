"""G6 idle SSE capacity and G7 disconnect cleanup, on a gateway process.

N raw-socket SSE clients open ``GET /v1/stream/0?interval_ms=3600000`` (one
message at once, then an hour of silence) and hold their streams; the gateway
must keep each alive with ``: keepalive`` after ``sse_keepalive_seconds`` of
idleness.  Then every client resets its connection at once: the upstream must see
every call end, and the gateway's task and file-descriptor counts must come back
to where they were.

CI: 500 streams, keepalive 1 s, 15 s hold.  Soak: 2,000 streams, keepalive 15 s,
1 h hold (reliability notes d.3).
"""

from __future__ import annotations

import asyncio

import anyio

from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    RawStream,
    Size,
    abort,
    close_streams,
    http_request,
    open_stream,
    raise_fd_limit,
    wait_ready,
    wait_until,
)
from tests.upstream import TestUpstream

IDLE_STREAM = (
    b"GET /v1/stream/0?interval_ms=3600000 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
)


async def test_idle_sse_capacity_then_disconnect_cleanup(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure, size: Size
) -> None:
    streams_wanted = size(500, 2000)
    keepalive = size(1.0, 15.0)
    hold = size(15.0, 3600.0)
    raise_fd_limit(4 * streams_wanted + 256)
    gw = gateway_process(upstream.address, streaming={"sse_keepalive_seconds": keepalive})
    await wait_ready(gw.url)
    warm = await http_request(gw.url, b"GET /v1/stream/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert warm.status == 200
    await asyncio.sleep(0.5)
    base_rss, base_fds, base_tasks = gw.rss_kib(), gw.fds(), gw.tasks()
    loop = asyncio.get_running_loop()

    streams: list[RawStream] = []
    try:
        for start in range(0, streams_wanted, 100):  # batches: stay within the accept backlog
            batch = min(100, streams_wanted - start)
            streams += await asyncio.gather(
                *(open_stream(gw.url, IDLE_STREAM) for _ in range(batch))
            )
        # Every stream answered 200 and delivered its first event.
        await wait_until(lambda: all(s.arrivals for s in streams), 60, step=0.1)
        opened = loop.time()
        assert {s.status for s in streams} == {200}
        await asyncio.sleep(1.0)
        open_rss = gw.rss_kib()
        open_tasks = gw.tasks()

        await asyncio.sleep(hold)
        end_rss = gw.rss_kib()
        gaps = [s.max_gap(opened) for s in streams]
        missed = sum(1 for g in gaps if g > keepalive + 1.0)
        errors = sum(1 for s in streams if s.ended or b"stream-error" in s.data)
        keepalives = min(s.data.count(b": keepalive") for s in streams)
        per_stream_kib = (max(open_rss, end_rss) - base_rss) / len(streams)
        figure(
            "G6",
            idle_sse_streams=len(streams),
            keepalive_s=keepalive,
            hold_s=hold,
            rss_base_mib=round(base_rss / 1024, 1),
            rss_per_stream_kib=round(per_stream_kib, 1),
            max_gap_s=round(max(gaps), 2),
            missed_keepalives=missed,
            errors=errors,
            tasks_per_stream=round((open_tasks - base_tasks) / len(streams), 1),
        )
        assert errors == 0
        assert missed == 0, sorted(gaps)[-5:]
        assert keepalives >= 1
        assert per_stream_kib <= 100

        # G7: every client resets its connection at once.
        cancelled_before = upstream.cancelled
        aborted = loop.time()
        for s in streams:
            abort(s.writer)
        upstream_s = await wait_until(lambda: upstream.active == 0, 20, step=0.05)
        cancelled = upstream.cancelled - cancelled_before
        tasks_s = fds_s = None
        tasks = fds = -1
        with anyio.move_on_after(20):
            while tasks_s is None or fds_s is None:
                tasks, fds = gw.tasks(), gw.fds()
                now = loop.time() - aborted
                if tasks_s is None and tasks <= base_tasks + 5:
                    tasks_s = now
                if fds_s is None and fds <= base_fds + 5:
                    fds_s = now
                await asyncio.sleep(0.1)
        figure(
            "G7",
            aborted_streams=len(streams),
            upstream_cancelled=cancelled,
            upstream_active_zero_s=round(upstream_s, 2),
            gateway_tasks_baseline_s=-1 if tasks_s is None else round(tasks_s, 2),
            tasks_now=tasks,
            tasks_baseline=base_tasks,
            fds_now=fds,
            fds_baseline=base_fds,
        )
        assert cancelled == len(streams)
        assert tasks_s is not None
        assert fds_s is not None
        # 2 s in the goal; 2.5x headroom for the shared machine.
        assert max(upstream_s, tasks_s, fds_s) <= 5.0
        assert gw.alive()
    finally:
        await close_streams(streams)
