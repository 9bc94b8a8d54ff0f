"""How fast can Python read one gRPC server stream?  Every reader grpcio offers.

Issue 4 asks NDJSON messages/s at or above grpc-gateway's.  Before a gateway
writes anything it must read the upstream's messages; this measures, in one
run and against the same Go upstream (``benchupstream``, ``StreamBurst``, 100-byte
payloads, sent as fast as flow control allows), each way grpcio can read them:

- ``aio-read``: ``await call.read()`` per message, typed (what the gateway does);
- ``aio-raw``: the same with no deserializer (bytes);
- ``aio-iter``: ``async for message in call``;
- ``sync-iter``: the synchronous grpcio iterator, alone in the main thread (no
  event loop at all: the cheapest consumer there is);
- ``sync-thread``: the synchronous iterator on a thread handing batches of
  whatever has arrived to the event loop (``call_soon_threadsafe``);

beside two HTTP clients reading the same stream through ``grpc-gateway``
(Go) and through ``transcoder`` (NDJSON), with the harness's ``benchclient``.
Each reader runs in a fresh process; rounds rotate the order; medians are printed.

    python benchmarks/stream_readers.py [--rounds 3] [--seconds 4] [--build DIR]

``--build`` is the shared harness's build directory (``bin/benchupstream``,
``bin/benchgateway``, ``bin/benchclient``, ``bench.pb``; default
``$BENCH_BUILD`` or ``<tmp>/bench-build``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from run import free_port, wait_port  # this directory's run.py (scripts run from here)

METHOD = "/benchsvc.v1.BenchService/StreamBurst"
READERS = ("aio-read", "aio-raw", "aio-iter", "sync-iter", "sync-thread")
HTTP_READERS = ("grpc-gateway", "transcoder")


def _classes(descriptor_set: str) -> tuple[Any, Any]:
    files = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_set).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("benchsvc.v1.StreamRequest")
    )
    response = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("benchsvc.v1.StreamMessage")
    )
    return request, response


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


class _Count:
    """Messages counted between the first and the deadline; CPU of this process."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.n = 0
        self.started = self.cpu0 = self.stop_at = 0.0

    def start(self) -> None:
        self.started, self.cpu0 = time.perf_counter(), _cpu()
        self.stop_at = self.started + self.seconds

    def add(self) -> bool:
        """Count one message; True once the time is up (the clock is read every 256)."""
        self.n += 1
        return not self.n & 255 and time.perf_counter() > self.stop_at

    def result(self) -> dict[str, float]:
        elapsed, cpu = time.perf_counter() - self.started, _cpu() - self.cpu0
        return {"msgs_per_s": self.n / elapsed, "cpu_us_per_msg": cpu / self.n * 1e6}


async def _aio(
    address: str, reader: str, seconds: float, classes: tuple[Any, Any]
) -> dict[str, float]:
    request, response = classes
    async with grpc.aio.insecure_channel(address) as channel:
        rpc = channel.unary_stream(
            METHOD,
            request_serializer=request.SerializeToString,
            response_deserializer=None if reader == "aio-raw" else response.FromString,
        )
        call = rpc(request(count=0, size=100))
        count = _Count(seconds)
        if reader == "aio-iter":
            messages = call.__aiter__()
            await messages.__anext__()  # connected and streaming before the clock starts
            count.start()
            async for _ in messages:
                if count.add():
                    break
        else:
            await call.read()
            count.start()
            while True:
                await call.read()
                if count.add():
                    break
        result = count.result()
        call.cancel()
        return result


def _sync_stream(channel: grpc.Channel, classes: tuple[Any, Any]) -> Any:
    """A started synchronous stream whose first message has arrived."""
    request, response = classes
    rpc = channel.unary_stream(
        METHOD,
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    call = rpc(request(count=0, size=100))
    next(call)
    return call


def _sync_iter(address: str, seconds: float, classes: tuple[Any, Any]) -> dict[str, float]:
    with grpc.insecure_channel(address) as channel:
        call = _sync_stream(channel, classes)
        count = _Count(seconds)
        count.start()
        for _ in call:
            if count.add():
                break
        result = count.result()
        call.cancel()
        return result


async def _sync_thread(address: str, seconds: float, classes: tuple[Any, Any]) -> dict[str, float]:
    """The thread appends to a list and wakes the loop only when the list was empty."""
    loop = asyncio.get_running_loop()
    channel = grpc.insecure_channel(address)
    call = _sync_stream(channel, classes)
    pending: list[Any] = []
    lock = threading.Lock()
    ready = asyncio.Event()

    def pump() -> None:
        try:
            for message in call:
                with lock:
                    pending.append(message)
                    wake = len(pending) == 1
                if wake:
                    loop.call_soon_threadsafe(ready.set)
        except grpc.RpcError:
            pass  # cancelled at the end

    threading.Thread(target=pump, daemon=True).start()
    count = _Count(seconds)
    count.start()
    while time.perf_counter() < count.stop_at:
        await ready.wait()
        ready.clear()
        with lock:
            batch = pending[:]
            pending.clear()
        count.n += len(batch)
    result = count.result()
    call.cancel()
    channel.close()
    return result


def child(reader: str, address: str, seconds: float, descriptor_set: str) -> None:
    classes = _classes(descriptor_set)
    if reader.startswith("aio"):
        result = asyncio.run(_aio(address, reader, seconds, classes))
    elif reader == "sync-iter":
        result = _sync_iter(address, seconds, classes)
    else:
        result = asyncio.run(_sync_thread(address, seconds, classes))
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_build = os.environ.get("BENCH_BUILD", str(Path(tempfile.gettempdir(), "bench-build")))
    parser.add_argument("--build", type=Path, default=Path(default_build))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--child", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    descriptor_set = str(args.build / "bench.pb")
    if args.child:
        child(args.child, args.address, args.seconds, descriptor_set)
        return

    bin_dir = args.build / "bin"
    ports = {name: free_port() for name in ("upstream", "grpc-gateway", "transcoder")}
    upstream = f"127.0.0.1:{ports['upstream']}"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([str(bin_dir / "benchupstream"), "-listen", upstream], **quiet)]
    wait_port(ports["upstream"])
    processes.append(
        subprocess.Popen(
            [
                str(bin_dir / "benchgateway"),
                "-listen",
                f"127.0.0.1:{ports['grpc-gateway']}",
                "-upstream",
                upstream,
            ],
            **quiet,
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    processes.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "transcoder",
                "serve",
                "--descriptor-set",
                descriptor_set,
                "--upstream",
                upstream,
                "--port",
                str(ports["transcoder"]),
            ],
            env={**env, "TRANSCODER_LOGGING__ACCESS_LOG": "false"},
            **quiet,
        )
    )
    wait_port(ports["grpc-gateway"])
    wait_port(ports["transcoder"])
    names = [*READERS, *HTTP_READERS]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    try:
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                if name in HTTP_READERS:
                    url = f"http://127.0.0.1:{ports[name]}/v1/stream/0?size=100"
                    command = [str(bin_dir / "benchclient"), "rate", "-url", url]
                    command += ["-seconds", str(args.seconds)]
                else:
                    command = [sys.executable, __file__, "--child", name, "--address", upstream]
                    command += ["--seconds", str(args.seconds), "--build", str(args.build)]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"round {index + 1}: {name}: {results[name][-1]}", file=sys.stderr)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=20)

    gg = statistics.median(r["msgs_per_s"] for r in results["grpc-gateway"])
    print(f"\n{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, {args.rounds} rounds")
    print("| reader | msgs/s (median) | ÷ grpc-gateway | reader CPU µs/msg |")
    print("|---|---:|---:|---:|")
    for name in names:
        rate = statistics.median(r["msgs_per_s"] for r in results[name])
        cpu = [r["cpu_us_per_msg"] for r in results[name] if "cpu_us_per_msg" in r]
        shown = f"{statistics.median(cpu):.1f}" if cpu else "-"
        print(f"| {name} | {rate:,.0f} | {rate / gg:.2f} | {shown} |")


if __name__ == "__main__":
    main()
