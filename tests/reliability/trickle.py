"""``python -m tests.reliability.trickle HOST PORT COUNT``: the slowloris clients of G15.

Opens COUNT connections, each sending a request line and then one header line
every 0.5 s, never finishing its head.  Prints ``open N`` once all are connected,
then ``closed N min=S max=S`` (seconds from each connection's start until the
server closed it) once every one is closed or 60 s have passed.  A process of
its own, so the test's measuring client shares no event loop with the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def main(host: str, port: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    writers: list[asyncio.StreamWriter] = []
    closed: list[float] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        started = loop.time()
        writers.append(writer)
        writer.write(b"GET /v1/everything/slow HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        closed.append(loop.time() - started)

    async def drip() -> None:
        line = 0
        while True:
            await asyncio.sleep(0.5)
            line += 1
            for writer in writers:
                if not writer.is_closing():
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        writer.write(b"X-Slow-%d: v\r\n" % line)

    dripper = asyncio.ensure_future(drip())
    tasks = []
    for start in range(0, count, 250):
        tasks += [asyncio.ensure_future(one()) for _ in range(start, min(count, start + 250))]
        await asyncio.sleep(0.05)
    while len(writers) + len(closed) < count:
        await asyncio.sleep(0.01)
    sys.stdout.write(f"open {len(writers)} closed-already {len(closed)}\n")
    sys.stdout.flush()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            await asyncio.gather(*tasks)
    dripper.cancel()
    for writer in writers:
        writer.transport.abort()
    low, high = min(closed, default=-1), max(closed, default=-1)
    sys.stdout.write(f"closed {len(closed)} min={low:.3f} max={high:.3f}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
