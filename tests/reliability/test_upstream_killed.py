"""G14: the upstream process dies (SIGKILL) while streams are open (notes U3, S6).

Every open stream must end within 2 s with exactly one terminal error carrying
UNAVAILABLE: SSE one ``event: stream-error`` and no ``event: end``; NDJSON the
error object as its last line; and the chunked body must end with its
terminator, so ``curl`` exits 0 (checked with curl itself when it is installed).

CI: 50 streams.  Soak: 1,000.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from tests.faults import FaultProcess
from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    RawStream,
    Size,
    close_streams,
    open_stream,
    raise_fd_limit,
    wait_ready,
    wait_until,
)

PATH = "/v1/stream/0?interval_ms=100"


def request(sse: bool) -> bytes:
    accept = "text/event-stream" if sse else "application/x-ndjson"
    return f"GET {PATH} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n".encode()


def terminal_error(stream: RawStream, sse: bool) -> dict[str, object] | None:
    """The stream's one terminal error object, or None if it does not end so."""
    text = stream.data.decode()
    if sse:
        if text.count("event: stream-error\n") != 1 or "event: end" in text:
            return None
        frames = text.split("\n\n")
        if frames[-1] != "" or not frames[-2].startswith("event: stream-error\n"):
            return None
        data = frames[-2].split("\ndata: ", 1)[1]
    else:
        if not text.endswith("\n"):
            return None
        data = text.splitlines()[-1]
    value = json.loads(data)
    return value if isinstance(value, dict) and "error" in value else None


async def test_open_streams_end_with_one_error_when_the_upstream_dies(
    gateway_process: GatewayFactory, descriptor_set: Path, figure: Figure, size: Size
) -> None:
    count = size(50, 1000)
    raise_fd_limit(4 * count + 256)
    fault = FaultProcess(descriptor_set)
    fault.start()
    curls: list[asyncio.subprocess.Process] = []
    streams: list[RawStream] = []
    try:
        gw = gateway_process(fault.address)
        await wait_ready(gw.url)
        for start in range(0, count, 100):
            streams += await asyncio.gather(
                *(
                    open_stream(gw.url, request(i % 2 == 1))
                    for i in range(start, min(count, start + 100))
                )
            )
        curl = shutil.which("curl")
        if curl is not None:
            for accept in ("text/event-stream", "application/x-ndjson"):
                curls.append(
                    await asyncio.create_subprocess_exec(
                        curl,
                        "-sSN",
                        "--max-time",
                        "30",
                        "-H",
                        f"Accept: {accept}",
                        gw.url + PATH,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
        await wait_until(lambda: all(len(s.arrivals) >= 2 for s in streams), 30, step=0.05)
        await asyncio.sleep(0.3)  # curl's streams are flowing too
        assert {s.status for s in streams} == {200}
        loop = asyncio.get_running_loop()
        killed = loop.time()
        fault.kill()
        await wait_until(lambda: all(s.complete or s.ended for s in streams), 20, step=0.02)
        ended_after = max(s.arrivals[-1] for s in streams) - killed
        curl_codes = []
        for process in curls:
            async with asyncio.timeout(10):
                curl_codes.append(await process.wait())
    finally:
        await close_streams(streams)
        for process in curls:
            if process.returncode is None:
                process.kill()
                await process.wait()
        fault.stop()
    errors = [terminal_error(s, i % 2 == 1) for i, s in enumerate(streams)]
    good = sum(
        1
        for s, e in zip(streams, errors, strict=True)
        if s.complete and e is not None and e["error"] == "UNAVAILABLE"
    )
    figure(
        "G14",
        streams=len(streams),
        ended_with_one_unavailable_error=good,
        chunked_terminated=sum(1 for s in streams if s.complete),
        last_end_after_kill_s=round(ended_after, 2),
        curl_exit_codes=",".join(map(str, curl_codes)) or "no-curl",
    )
    assert good == len(streams), [
        s.data[-200:] for s, e in zip(streams, errors, strict=True) if e is None
    ][:3]
    assert ended_after <= 2.0 * 2  # 2 s in the goal; 2x headroom
    assert all(code == 0 for code in curl_codes)
