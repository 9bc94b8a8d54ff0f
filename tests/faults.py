"""The fault-injecting upstream: ``tests/upstream.py``'s server, in-process or as its own process.

Everything ``TestUpstream`` does (steered by request metadata: delay, hang, fail
with any code and details, headers and trailers, padded responses; the
``Stream`` method: count, interval, fail after N, payload size, headers then
stall, initial delay; ``count=0`` without interval is a firehose; counts of
``active`` and ``cancelled`` calls; restart on the same port), plus:

- ``x-test-stamp: 1`` on ``Stream``: each item's ``payload`` is the
  ``time.monotonic_ns()`` at which it was handed to grpc, so a client on the
  same machine can measure upstream-yield → client-receive latency
  (``CLOCK_MONOTONIC`` is shared by every process of the machine);
- ``python -m tests.faults --descriptor-set FILE [--port N]
  [--max-concurrent-streams N]``: the same server as a process of its own, to
  kill with SIGKILL mid-stream and to start again on the same port.  It prints
  ``listening on 127.0.0.1:PORT`` once serving; on standard input, ``stats``
  answers ``stats active=A cancelled=C calls=N`` and ``stop`` (or end of
  input: the test went away) stops it.

``FaultProcess`` drives that process from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.upstream import TestUpstream, _Rpc
from transcoder.descriptors import load_pool

LISTENING = "listening on "
ROOT = Path(__file__).resolve().parent.parent  # where ``python -m tests.faults`` resolves


class FaultUpstream(TestUpstream):
    """``TestUpstream`` plus the ``x-test-stamp`` mode of ``Stream``."""

    __test__ = False

    async def _stream(self, rpc: _Rpc, request: Any) -> None:
        if rpc.text("x-test-stamp") != "1":
            await super()._stream(rpc, request)
            return
        interval = request.interval_ms / 1000
        for index in range(request.count):
            if index and interval > 0:
                await asyncio.sleep(interval)
            item = self._item()
            item.index = index
            item.payload = str(time.monotonic_ns())
            await rpc.context.write(item)


@dataclass(frozen=True)
class Stats:
    active: int
    cancelled: int
    calls: int


class FaultProcess:
    """``python -m tests.faults`` as a child process: start, ask for counts, kill, restart."""

    def __init__(
        self, descriptor_set: Path, *, port: int = 0, max_concurrent_streams: int | None = None
    ) -> None:
        self.descriptor_set = descriptor_set
        self.port = port
        self.max_concurrent_streams = max_concurrent_streams
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> str:
        """Start (on the last port once one is known) and wait until it serves."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the fault upstream is already running")
        command = [
            sys.executable,
            "-m",
            "tests.faults",
            "--descriptor-set",
            str(self.descriptor_set),
            "--port",
            str(self.port),
        ]
        if self.max_concurrent_streams is not None:
            command += ["--max-concurrent-streams", str(self.max_concurrent_streams)]
        self._lines = queue.Queue()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")},
        )
        assert self.process.stdout is not None
        threading.Thread(target=_pump, args=(self.process.stdout, self._lines), daemon=True).start()
        line = self._expect(LISTENING, timeout)
        self.port = int(line.rpartition(":")[2])
        return self.address

    def stats(self, timeout: float = 5) -> Stats:
        self._send("stats")
        fields = dict(part.split("=", 1) for part in self._expect("stats ", timeout).split()[1:])
        return Stats(int(fields["active"]), int(fields["cancelled"]), int(fields["calls"]))

    def kill(self) -> None:
        """SIGKILL: no GOAWAY, no RST_STREAM; the kernel just closes its sockets."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self._send("stop")
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipes()

    def _send(self, command: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def _expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the fault upstream did not say {prefix!r} in {timeout}s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line.strip()


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    with stream:
        for line in stream:
            lines.put(line)


async def _serve(args: argparse.Namespace) -> None:
    options: list[tuple[str, Any]] = []
    if args.max_concurrent_streams:
        options.append(("grpc.max_concurrent_streams", args.max_concurrent_streams))
    server = FaultUpstream(load_pool([args.descriptor_set]), options=options)
    address = await server.start(args.port)
    sys.stdout.write(f"{LISTENING}{address}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip() == "stats":
                sys.stdout.write(
                    f"stats active={server.active} cancelled={server.cancelled} "
                    f"calls={len(server.calls)}\n"
                )
                sys.stdout.flush()
            elif line.strip() == "stop":
                break
        loop.call_soon_threadsafe(stopping.set)

    threading.Thread(target=read_commands, daemon=True).start()
    await stopping.wait()
    with contextlib.suppress(TimeoutError):
        await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults")
    parser.add_argument("--descriptor-set", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-concurrent-streams", type=int, default=0)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
