"""G12: the upstream process is killed, stays down, and comes back on the same port.

The fault upstream runs as its own process (``python -m tests.faults``) and is
killed with SIGKILL; the gateway process keeps running.  A prober asks the
gateway for a unary call and for ``/readyz`` every 100 ms throughout:

- during the outage every call answers 503 UNAVAILABLE within 100 ms;
- ``/readyz`` turns 503 within 2 s of the kill and 200 again within
  ``upstream.max_reconnect_backoff_seconds`` + 1 s of the upstream's return;
- the first 2xx comes within backoff + 1 s of the return; the gateway process
  is the same one throughout.

CI: 5 s outage, backoff capped at 1 s (notes d.2).  Soak: 30 s outage at the
default backoff cap (5 s).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from tests.faults import FaultProcess
from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    Size,
    check_error,
    http_request,
    wait_ready,
)

UNARY = b"GET /v1/everything/probe HTTP/1.1\r\nHost: x\r\n\r\n"
READYZ = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass
class Probe:
    at: float  # time.monotonic() when sent
    what: str
    status: int
    seconds: float


async def prober(url: str, probes: list[Probe], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for what, request in (("unary", UNARY), ("readyz", READYZ)):
            started = time.monotonic()
            response = await http_request(url, request)
            check_error(response)
            probes.append(Probe(started, what, response.status, time.monotonic() - started))
        with anyio.move_on_after(0.1):
            await stop.wait()


async def test_upstream_outage_and_return(
    gateway_process: GatewayFactory, descriptor_set: Path, figure: Figure, size: Size
) -> None:
    outage = size(5.0, 30.0)
    backoff = size(1.0, 5.0)
    fault = FaultProcess(descriptor_set)
    fault.start()
    try:
        gw = gateway_process(fault.address, upstream={"max_reconnect_backoff_seconds": backoff})
        await wait_ready(gw.url)
        pid = gw.pid
        probes: list[Probe] = []
        stop = asyncio.Event()
        task = asyncio.ensure_future(prober(gw.url, probes, stop))
        await asyncio.sleep(1.0)
        killed = time.monotonic()
        fault.kill()
        await asyncio.sleep(outage)
        await asyncio.to_thread(fault.start)  # same port: FaultProcess keeps it
        back = time.monotonic()
        await asyncio.sleep(backoff + 3.0)
        stop.set()
        await task
    finally:
        fault.stop()

    before = [p for p in probes if p.at < killed]
    during = [p for p in probes if killed + 0.3 <= p.at < back and p.what == "unary"]
    after_ok = [p for p in probes if p.at >= back and p.status == 200]
    assert before
    assert all(p.status == 200 for p in before)
    first_ok = min((p.at + p.seconds for p in after_ok if p.what == "unary"), default=None)
    ready_again = min((p.at + p.seconds for p in after_ok if p.what == "readyz"), default=None)
    not_ready = min(
        (
            p.at + p.seconds
            for p in probes
            if p.at >= killed and p.what == "readyz" and p.status == 503
        ),
        default=None,
    )
    slowest_503 = max((p.seconds for p in during), default=0.0)
    figure(
        "G12",
        outage_s=outage,
        backoff_cap_s=backoff,
        calls_during_outage=len(during),
        calls_503=sum(1 for p in during if p.status == 503),
        slowest_503_ms=round(slowest_503 * 1000, 1),
        readyz_503_after_kill_s=-1 if not_ready is None else round(not_ready - killed, 2),
        first_2xx_after_return_s=-1 if first_ok is None else round(first_ok - back, 2),
        readyz_200_after_return_s=-1 if ready_again is None else round(ready_again - back, 2),
        gateway_restarted=int(gw.pid != pid or not gw.alive()),
    )
    assert during, "no call was made during the outage"
    assert {p.status for p in during} == {503}
    assert slowest_503 <= 0.3  # 100 ms in the goal; 3x headroom
    assert not_ready is not None
    assert not_ready - killed <= 2.0 + 1.0
    assert first_ok is not None
    assert ready_again is not None
    # backoff + 1 s in the goal; 1 s more for the shared machine.
    assert first_ok - back <= backoff + 2.0
    assert ready_again - back <= backoff + 2.0
    assert gw.alive()
    assert gw.pid == pid
