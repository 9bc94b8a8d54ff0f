"""Server-streaming benchmark: the gateway's NDJSON and SSE beside a grpc.aio floor.

Run from anywhere with the project installed (test extras)::

    python benchmarks/streaming.py                       # full run, ~4 minutes on 2 cores
    python benchmarks/streaming.py --quick               # smoke run, ~1 minute
    python benchmarks/streaming.py --upstream-bin BIN --descriptor-set FILE

Everything runs in one invocation, on 127.0.0.1 only, so that the figures can
be read as ratios (gateway ÷ floor) measured side by side on the same machine:

1. **messages/s to one client.**  The upstream's ``StreamBurst`` (count 0: until
   cancelled, 100-byte payload) read for ``--rate-seconds`` by: a raw-socket
   HTTP reader counting NDJSON lines (``}\\n``) or SSE ``data:`` lines through
   the gateway, and a grpc.aio client (generic ``channel.unary_stream``) reading
   the same RPC from the upstream directly, once deserialising each message into
   the message class (the floor of the ratios) and once taking raw bytes.  The
   window starts at the first message.  CPU: the gateway's process tree from
   ``/proc`` between the reader's start and end lines, the reader's own
   ``process_time``, the upstream's; context switches of the serving process's
   threads per message.  After each run, the upstream's CPU over
   the next second (about 0 when the call was cancelled).
2. **latency, upstream send → client receipt.**  ``StreamTick`` sends one message
   every ``--tick-ms`` with ``sent_unix_nanos`` stamped by the upstream just before
   ``Send``; the reader takes ``time.time_ns()`` right after the ``recv`` (or the
   grpc.aio read) that delivered the message.  Same host, same clock
   (CLOCK_REALTIME).  The first message of the stream is left out of the
   percentiles.  Time to first message is measured apart, after a warm-up
   request: ``--ttfm-samples`` one-message streams, each on a new connection
   (connect → first message read); the floor: call start on a connected channel
   → first message.
3. **memory per idle open SSE stream.**  A fresh gateway per round; its RSS
   (``VmRSS`` of the process tree) before and with ``--idle-streams`` SSE streams
   of ``StreamTick`` (10-minute interval) open, each having received its first
   message, divided by N; beside it the RSS growth of a fresh grpc.aio client
   process holding N such calls.  The upstream's open calls are counted on the
   wire by a small TCP relay in this process that reads the HTTP/2 frame headers
   between the caller and the upstream (a stream is open from the caller's
   HEADERS until a RST_STREAM or the upstream's END_STREAM); after the clients
   close, the count must go back to 0 (the gateway cancels upstream calls when
   clients leave).

Every figure is the median over rounds; the target order rotates between
rounds.  The upstream is the shared peer harness's Go server (``benchupstream``,
built by its ``setup.sh``) with its descriptor set; without it, a Python
grpc.aio upstream in a separate process stands in, and the output says so
(it caps near 10k messages/s and hides the gateway's cost).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE = "benchsvc.v1.BenchService"
BURST_METHOD = f"/{SERVICE}/StreamBurst"
TICK_METHOD = f"/{SERVICE}/StreamTick"
PAYLOAD_SIZE = 100
IDLE_INTERVAL_MS = 600_000  # one message at once, the next in 10 minutes
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SENT_RE = re.compile(rb'"sentUnixNanos":"(\d+)"')
SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
SHARED_BENCH = HERE.parent.parent / "shared" / "bench"  # the peer harness beside the project
HTTP_TARGETS = ("ndjson", "sse")
ACCEPT = {"ndjson": "application/x-ndjson", "sse": "text/event-stream"}


# -- /proc ---------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """pid and its descendants (bounded: a gateway has one process, or a few workers)."""
    pids: list[int] = []
    todo = [pid]
    while todo and len(pids) < 256:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, in seconds."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of the process tree."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                            total += int(line.split()[1])
    return total


def rss_kib(pid: int | str = "self") -> int:
    total = 0
    for p in _tree(pid) if isinstance(pid, int) else [pid]:
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def process_cpu() -> float:
    return time.process_time()


# -- descriptors ---------------------------------------------------------------------


def message_classes(descriptor_set: str) -> dict[str, Any]:
    """StreamRequest, TickRequest and StreamMessage classes from the descriptor set."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_set).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:  # protoc --include_imports writes dependencies first
        pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"benchsvc.v1.{name}"))
        for name in ("StreamRequest", "TickRequest", "StreamMessage")
    }


def compile_descriptor_set(proto: Path, out: Path) -> None:
    """The benchmark proto compiled with grpcio-tools, imports included."""
    import google.api.annotations_pb2 as annotations_pb2
    import grpc_tools
    from grpc_tools import protoc

    root = proto.parents[2]  # proto/benchsvc/v1/bench.proto → proto/
    googleapis = Path(annotations_pb2.__file__).parents[2]
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{googleapis}",
            f"-I{wkt}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            str(proto.relative_to(root)),
        ]
    )
    if rc != 0:
        raise SystemExit(f"protoc failed on {proto} ({rc})")


# -- child processes: the clients and the fallback upstream ----------------------------


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of the values (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def open_http_stream(
    host: str, port: int, path: str, accept: str, timeout: float
) -> tuple[socket.socket, bytes, int]:
    """A GET whose response headers are read: (socket, body bytes already read, their time)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {accept}\r\n\r\n"
    sock.sendall(request.encode())
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > 65536:
            raise RuntimeError(f"no response headers for {path}")
        data = sock.recv(65536)
        if not data:
            raise RuntimeError(f"connection closed before the headers of {path}")
        buf += data
    now = time.time_ns()
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path}: {head.splitlines()[0].decode(errors='replace')}")
    return sock, rest, now


def child_http_rate(p: dict[str, Any]) -> None:
    """Count message lines on one stream for p['seconds'] from the first message."""
    sse = p["fmt"] == "sse"
    marker = b"data: " if sse else b"}\n"  # a chunk-size line never holds either
    keep = len(marker) - 1
    seconds = float(p["seconds"])
    sock, rest, _ = open_http_stream(
        p["host"], p["port"], f"/v1/stream/0?size={PAYLOAD_SIZE}", ACCEPT[p["fmt"]], 10.0
    )
    count = rest.count(marker)
    tail = rest[-keep:]
    hard_stop = time.monotonic() + seconds + 30.0
    started = False
    t0 = c0 = 0.0
    n0 = recvs = nbytes = 0
    with sock:
        while True:
            if count and not started:
                started = True
                emit({"event": "start"})
                t0, c0, n0, recvs, nbytes = time.perf_counter(), process_cpu(), count, 0, 0
            data = sock.recv(262144)
            if not data:
                raise RuntimeError("the stream ended")
            recvs += 1
            nbytes += len(data)
            count += data.count(marker) + (tail + data[:keep]).count(marker)
            tail = data[-keep:] if len(data) >= keep else (tail + data)[-keep:]
            if started and not recvs & 15:
                now = time.perf_counter()
                if now - t0 >= seconds or time.monotonic() > hard_stop:
                    break
        elapsed = time.perf_counter() - t0
        cpu = process_cpu() - c0
        n = count - n0
        emit(
            {
                "event": "result",
                "messages": n,
                "seconds": elapsed,
                "msgs_per_s": n / elapsed,
                "client_cpu_s": cpu,
                "bytes_per_msg": nbytes / n if n else None,
                "recvs": recvs,
            }
        )


async def _grpc_channel(target: str) -> Any:
    import grpc

    channel = grpc.aio.insecure_channel(target)
    await asyncio.wait_for(channel.channel_ready(), 10.0)
    return channel


async def child_grpc_rate(p: dict[str, Any]) -> None:
    """grpc.aio floor: read StreamBurst for p['seconds'] from the first message."""
    classes = message_classes(p["descriptor_set"])
    seconds = float(p["seconds"])
    channel = await _grpc_channel(p["target"])
    deserialize = None if p["mode"] == "raw" else classes["StreamMessage"].FromString
    method = channel.unary_stream(BURST_METHOD, response_deserializer=deserialize)
    request = classes["StreamRequest"](count=0, size=PAYLOAD_SIZE).SerializeToString()
    call = method(request)
    hard_stop = time.monotonic() + seconds + 30.0
    n = 0
    t0 = c0 = 0.0
    async for _message in call:
        n += 1
        if n == 1:
            emit({"event": "start"})
            t0, c0 = time.perf_counter(), process_cpu()
        elif not n & 255 and (time.perf_counter() - t0 >= seconds or time.monotonic() > hard_stop):
            break
    elapsed = time.perf_counter() - t0
    cpu = process_cpu() - c0
    call.cancel()
    emit(
        {
            "event": "result",
            "messages": n - 1,
            "seconds": elapsed,
            "msgs_per_s": (n - 1) / elapsed,
            "client_cpu_s": cpu,
        }
    )
    await channel.close()


def _http_first_message(host: str, port: int, path: str, accept: str) -> int:
    """ns from connecting to the first message read, on a fresh connection."""
    t0 = time.perf_counter_ns()
    sock, buf, _ = open_http_stream(host, port, path, accept, 10.0)
    deadline = time.monotonic() + 10.0
    with sock:
        while SENT_RE.search(buf) is None and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"{path}: no message")
            buf += data
    return time.perf_counter_ns() - t0


def child_http_latency(p: dict[str, Any]) -> None:
    """Per message: receipt time minus the upstream's sentUnixNanos, on one StreamTick stream.

    First one warm-up request, then ``ttfm_samples`` sequential one-message streams,
    each on a fresh connection (connect → first message), then the measured stream.
    """
    count, tick_ms = int(p["count"]), int(p["tick_ms"])
    host, port, accept = p["host"], p["port"], ACCEPT[p["fmt"]]
    one = f"/v1/tick/{tick_ms}?count=1&size={PAYLOAD_SIZE}"
    _http_first_message(host, port, one, accept)
    ttfm = [_http_first_message(host, port, one, accept) for _ in range(int(p["ttfm_samples"]))]
    path = f"/v1/tick/{tick_ms}?count={count}&size={PAYLOAD_SIZE}"
    sock, buf, received = open_http_stream(host, port, path, accept, 10.0)
    latencies: list[int] = []
    deadline = time.monotonic() + count * tick_ms / 1000 * 1.5 + 10.0
    with sock:
        while True:
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                match = SENT_RE.search(line)
                if match is not None:
                    latencies.append(received - int(match.group(1)))
            if len(latencies) >= count or time.monotonic() > deadline:
                break
            data = sock.recv(65536)
            received = time.time_ns()
            if not data:
                break
            buf += data
    emit({"event": "result", "latencies_ns": latencies, "ttfm_ns": ttfm})


async def child_grpc_latency(p: dict[str, Any]) -> None:
    """The same on a connected grpc.aio channel: TTFM is call start → first message."""
    classes = message_classes(p["descriptor_set"])
    count, tick_ms = int(p["count"]), int(p["tick_ms"])
    channel = await _grpc_channel(p["target"])
    method = channel.unary_stream(
        TICK_METHOD, response_deserializer=classes["StreamMessage"].FromString
    )
    one = classes["TickRequest"](
        interval_ms=tick_ms, count=1, size=PAYLOAD_SIZE
    ).SerializeToString()
    ttfm: list[int] = []
    async with asyncio.timeout(30.0):
        for i in range(int(p["ttfm_samples"]) + 1):  # the first is a warm-up
            t0 = time.perf_counter_ns()
            call = method(one)
            await call.read()
            if i:
                ttfm.append(time.perf_counter_ns() - t0)
            await call.read()  # EOF
    request = classes["TickRequest"](interval_ms=tick_ms, count=count, size=PAYLOAD_SIZE)
    latencies: list[int] = []
    call = method(request.SerializeToString())
    async with asyncio.timeout(count * tick_ms / 1000 * 1.5 + 10.0):
        async for message in call:
            latencies.append(time.time_ns() - message.sent_unix_nanos)
    emit({"event": "result", "latencies_ns": latencies, "ttfm_ns": ttfm})
    await channel.close()


async def child_grpc_idle(p: dict[str, Any]) -> None:
    """Hold N idle StreamTick calls (each has its first message) until told to close."""
    classes = message_classes(p["descriptor_set"])
    n = int(p["streams"])
    channel = await _grpc_channel(p["target"])
    method = channel.unary_stream(
        TICK_METHOD, response_deserializer=classes["StreamMessage"].FromString
    )
    request = classes["TickRequest"](
        interval_ms=IDLE_INTERVAL_MS, count=0, size=PAYLOAD_SIZE
    ).SerializeToString()
    for _ in range(int(p["warmup"])):
        call = method(request)
        await call.read()
        call.cancel()
    await asyncio.sleep(1.0)
    before = rss_kib()
    calls = [method(request) for _ in range(n)]
    async with asyncio.timeout(120.0):
        firsts = await asyncio.gather(*(c.read() for c in calls), return_exceptions=True)
    ready = sum(1 for m in firsts if not isinstance(m, BaseException))
    await asyncio.sleep(float(p["settle_seconds"]))
    emit({"event": "open", "rss_before_kib": before, "rss_open_kib": rss_kib(), "ready": ready})
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(300.0):
        await loop.run_in_executor(None, sys.stdin.readline)
    for c in calls:
        c.cancel()
    await asyncio.sleep(1.0)
    emit({"event": "closed", "rss_after_kib": rss_kib()})
    await channel.close()


async def child_py_upstream(p: dict[str, Any]) -> None:
    """Fallback upstream: StreamBurst and StreamTick as the Go upstream serves them."""
    import grpc

    classes = message_classes(p["descriptor_set"])
    message_class = classes["StreamMessage"]
    lifetime = 600.0

    async def burst(request: Any, context: Any) -> Any:
        payload = "x" * max(0, min(request.size, 1 << 20))
        end = time.monotonic() + lifetime
        i = 1
        while (request.count <= 0 or i <= request.count) and time.monotonic() < end:
            yield message_class(seq=i, sent_unix_nanos=time.time_ns(), payload=payload)
            i += 1

    async def tick(request: Any, context: Any) -> Any:
        payload = "x" * max(0, min(request.size, 1 << 20))
        interval = request.interval_ms / 1000 if request.interval_ms > 0 else 1.0
        end = time.monotonic() + lifetime
        i = 1
        while (request.count <= 0 or i <= request.count) and time.monotonic() < end:
            if i > 1:
                await asyncio.sleep(interval)
            yield message_class(seq=i, sent_unix_nanos=time.time_ns(), payload=payload)
            i += 1

    def handler(fn: Callable[..., Any], request_class: Any) -> Any:
        return grpc.unary_stream_rpc_method_handler(
            fn,
            request_deserializer=request_class.FromString,
            response_serializer=message_class.SerializeToString,
        )

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "StreamBurst": handler(burst, classes["StreamRequest"]),
                    "StreamTick": handler(tick, classes["TickRequest"]),
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"python upstream listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3600.0):
            await stop.wait()
    await server.stop(0.5)


def run_child(kind: str, params: dict[str, Any]) -> None:
    sync_children: dict[str, Callable[[dict[str, Any]], None]] = {
        "http-rate": child_http_rate,
        "http-latency": child_http_latency,
    }
    async_children = {
        "grpc-rate": child_grpc_rate,
        "grpc-latency": child_grpc_latency,
        "grpc-idle": child_grpc_idle,
        "py-upstream": child_py_upstream,
    }
    if kind in sync_children:
        sync_children[kind](params)
    else:
        asyncio.run(async_children[kind](params))


# -- the orchestrator ----------------------------------------------------------------


class Managed:
    """A process this benchmark started; stopped by its own pid only."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_for_log(self, pattern: str, within: float) -> re.Match[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text(errors="replace"))
            if match:
                return match
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def event(self, within: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not line:
            await asyncio.wait_for(self.proc.wait(), 5.0)
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
        event: dict[str, Any] = json.loads(line)
        return event

    async def stop(self, within: float = 10.0) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 5.0)


def _open_log(path: Path) -> Any:
    return open(path, "wb")


class Processes:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[Managed] = []
        self.serial = 0

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        pipe: bool = False,
    ) -> Managed:
        self.serial += 1
        log = self.logdir / f"{self.serial:03d}-{name}.log"
        with _open_log(log) as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipe else err,
                stderr=err,
                env=env,
                cwd=self.logdir,
            )
        managed = Managed(name, proc, log)
        self.started.append(managed)
        return managed

    async def child(self, kind: str, params: dict[str, Any]) -> Managed:
        argv = [sys.executable, str(SCRIPT), "_child", kind, json.dumps(params)]
        return await self.start(kind, argv, pipe=True)

    async def stop_all(self) -> None:
        for managed in reversed(self.started):
            await managed.stop()


@dataclass
class Upstream:
    kind: str  # "go" or "python"
    address: str
    process: Managed


@dataclass
class Gateway:
    host: str
    port: int
    process: Managed


async def start_upstream(procs: Processes, args: argparse.Namespace) -> Upstream:
    if args.upstream_bin:
        managed = await procs.start("go-upstream", [args.upstream_bin, "-listen", "127.0.0.1:0"])
        match = await managed.wait_for_log(r"listening on (127\.0\.0\.1:\d+)", 15.0)
        return Upstream("go", match.group(1), managed)
    managed = await procs.start(
        "py-upstream",
        [
            sys.executable,
            str(SCRIPT),
            "_child",
            "py-upstream",
            json.dumps({"descriptor_set": args.descriptor_set}),
        ],
    )
    match = await managed.wait_for_log(r"listening on (127\.0\.0\.1:\d+)", 30.0)
    return Upstream("python", match.group(1), managed)


async def start_gateway(procs: Processes, args: argparse.Namespace, upstream: str) -> Gateway:
    env = dict(os.environ)
    env["TRANSCODER_LOGGING__ACCESS_LOG"] = "false"
    argv = [sys.executable, "-m", "transcoder", "serve", "--descriptor-set"]
    argv += [args.descriptor_set, "--upstream", upstream, "--host", "127.0.0.1", "--port", "0"]
    managed = await procs.start("gateway", argv, env=env)
    match = await managed.wait_for_log(r"running on http://([\d.]+):(\d+)", 60.0)
    return Gateway(match.group(1), int(match.group(2)), managed)


# -- the HTTP/2 relay that counts the upstream's open calls ---------------------------


class H2Counter:
    """Open HTTP/2 streams (gRPC calls) seen through the relay, per connection."""

    def __init__(self) -> None:
        self.open: set[tuple[int, int]] = set()
        self.opened = 0

    def frame(self, conn: int, from_caller: bool, kind: int, flags: int, stream: int) -> None:
        key = (conn, stream)
        if kind == 1 and from_caller and stream:  # HEADERS: a call starts
            if key not in self.open:
                self.open.add(key)
                self.opened += 1
        elif kind == 3 or (not from_caller and kind in (0, 1) and flags & 1):
            self.open.discard(key)  # RST_STREAM, or the upstream's END_STREAM (trailers)

    def connection_closed(self, conn: int) -> None:
        self.open = {key for key in self.open if key[0] != conn}


class FrameScanner:
    """Reads frame headers out of one direction of an HTTP/2 connection; payloads skipped."""

    def __init__(self, on_frame: Callable[[int, int, int], None], preface: int) -> None:
        self.on_frame = on_frame
        self.preface = preface  # the client's 24-byte connection preface
        self.skip = 0
        self.head = bytearray()

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self.preface:
                take = min(self.preface, n - i)
                self.preface -= take
            elif self.skip:
                take = min(self.skip, n - i)
                self.skip -= take
            else:
                take = min(9 - len(self.head), n - i)
                self.head += data[i : i + take]
                if len(self.head) == 9:
                    h = bytes(self.head)
                    self.head.clear()
                    self.skip = int.from_bytes(h[0:3], "big")
                    stream = int.from_bytes(h[5:9], "big") & 0x7FFFFFFF
                    self.on_frame(h[3], h[4], stream)
            i += take


class CountingRelay:
    def __init__(self, upstream: str, lifetime: float) -> None:
        self.host, port = upstream.rsplit(":", 1)
        self.port = int(port)
        self.counter = H2Counter()
        self.lifetime = lifetime
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.deadline = time.monotonic() + self.lifetime
        return f"127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return

        def scanner(from_caller: bool) -> FrameScanner:
            return FrameScanner(
                lambda kind, flags, stream: self.counter.frame(
                    conn, from_caller, kind, flags, stream
                ),
                24 if from_caller else 0,
            )

        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, scanner(True))),
            asyncio.ensure_future(self._pump(up_reader, writer, scanner(False))),
        ]
        for task in pumps:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            w.close()
        self.counter.connection_closed(conn)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scanner: FrameScanner
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while time.monotonic() < self.deadline:
                data = await reader.read(262144)
                if not data:
                    return
                scanner.feed(data)
                writer.write(data)
                await writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.sleep(0.1)

    async def wait_open(self, want: int, within: float) -> tuple[bool, float]:
        """Wait until exactly ``want`` calls are open: (reached, seconds taken)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < within:
            if len(self.counter.open) == want:
                return True, time.monotonic() - t0
            await asyncio.sleep(0.05)
        return False, time.monotonic() - t0


# -- measurements --------------------------------------------------------------------


@dataclass
class Results:
    rate: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latency: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    idle: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def validate(gw: Gateway) -> dict[str, Any]:
    """3 messages as NDJSON and as SSE, parsed and checked; wire bytes per message."""
    import httpx

    base = f"http://{gw.host}:{gw.port}"
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        r = await client.get(f"/v1/stream/3?size={PAYLOAD_SIZE}")
        lines = [json.loads(line) for line in r.text.splitlines() if line]
        out["ndjson_ok"] = (
            r.status_code == 200
            and r.headers.get("content-type", "").startswith("application/x-ndjson")
            and [m.get("seq") for m in lines] == ["1", "2", "3"]
            and all(len(m.get("payload", "")) == PAYLOAD_SIZE for m in lines)
        )
        out["ndjson_line_bytes"] = len(r.text.splitlines()[0].encode()) + 1
        r = await client.get(f"/v1/stream/3?size={PAYLOAD_SIZE}", headers={"Accept": ACCEPT["sse"]})
        events = [e for e in r.text.split("\n\n") if e.strip()]
        data = [json.loads(e.split("data: ", 1)[1]) for e in events if e.startswith("id: ")]
        out["sse_ok"] = (
            r.status_code == 200
            and r.headers.get("content-type", "").startswith("text/event-stream")
            and [m.get("seq") for m in data] == ["1", "2", "3"]
            and events[-1].startswith("event: end")
        )
        out["sse_event_bytes"] = len(events[0].encode()) + 2
    return out


async def measure_rate(
    procs: Processes,
    target: str,
    args: argparse.Namespace,
    up: Upstream,
    gw: Gateway,
) -> dict[str, Any]:
    if target in HTTP_TARGETS:
        params = {"host": gw.host, "port": gw.port, "fmt": target, "seconds": args.rate_seconds}
        child = await procs.child("http-rate", params)
    else:
        params = {
            "target": up.address,
            "seconds": args.rate_seconds,
            "mode": "raw" if target == "grpc-raw" else "msg",
            "descriptor_set": args.descriptor_set,
        }
        child = await procs.child("grpc-rate", params)
    serving = gw.process.pid if target in HTTP_TARGETS else child.pid
    await child.event(30.0)  # the first message arrived: the window starts
    g0, u0 = cpu_seconds(gw.process.pid), cpu_seconds(up.process.pid)
    s0 = context_switches(serving)
    result = await child.event(args.rate_seconds + 40.0)
    g1, u1 = cpu_seconds(gw.process.pid), cpu_seconds(up.process.pid)
    s1 = context_switches(serving)
    await asyncio.wait_for(child.proc.wait(), 15.0)
    await asyncio.sleep(0.5)  # the cancellation reaches the upstream
    u2 = cpu_seconds(up.process.pid)
    await asyncio.sleep(1.0)
    u3 = cpu_seconds(up.process.pid)
    n = result["messages"]
    result.update(
        {
            "gateway_cpu_us_per_msg": (g1 - g0) / n * 1e6 if target in HTTP_TARGETS else None,
            "gateway_cpu_pct": (g1 - g0) / result["seconds"] * 100,
            "upstream_cpu_us_per_msg": (u1 - u0) / n * 1e6,
            "client_cpu_pct": result["client_cpu_s"] / result["seconds"] * 100,
            "client_cpu_us_per_msg": result["client_cpu_s"] / n * 1e6,
            "upstream_cpu_s_after_close": u3 - u2,
            "serving_switches_per_msg": (s1 - s0) / n,
        }
    )
    return result


async def measure_latency(
    procs: Processes,
    target: str,
    args: argparse.Namespace,
    up: Upstream,
    gw: Gateway,
) -> dict[str, Any]:
    common = {"tick_ms": args.tick_ms, "count": args.tick_count, "ttfm_samples": args.ttfm_samples}
    if target in HTTP_TARGETS:
        child = await procs.child(
            "http-latency", {"host": gw.host, "port": gw.port, "fmt": target, **common}
        )
    else:
        child = await procs.child(
            "grpc-latency",
            {"target": up.address, "descriptor_set": args.descriptor_set, **common},
        )
    result = await child.event(args.tick_count * args.tick_ms / 1000 * 1.5 + 40.0)
    await asyncio.wait_for(child.proc.wait(), 15.0)
    lat = [x / 1e6 for x in result["latencies_ns"][1:]]  # ms; the first message is TTFM
    if len(lat) < args.tick_count - 1:
        raise RuntimeError(f"{target}: {len(lat) + 1} of {args.tick_count} tick messages")
    return {
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "samples": len(lat),
        "ttfm_ms": statistics.median(result["ttfm_ns"]) / 1e6,
    }


async def _open_sse(
    host: str, port: int, path: str, within: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(host, port)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
        writer.write(request.encode())
        buf = b""
        while (i := buf.find(b"data: ")) < 0 or buf.find(b"\n\n", i) < 0:
            data = await reader.read(65536)
            if not data or len(buf) > 65536:
                writer.close()
                raise RuntimeError("the SSE stream ended before its first message")
            buf += data
        if not buf.startswith(b"HTTP/1.1 200"):
            writer.close()
            raise RuntimeError(buf.split(b"\r\n", 1)[0].decode(errors="replace"))
    return reader, writer


async def _close_all(streams: Sequence[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in streams:
        writer.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10.0):
            await asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True)


async def measure_idle_round(
    procs: Processes, args: argparse.Namespace, relay: CountingRelay, relay_address: str
) -> dict[str, Any]:
    n = args.idle_streams
    out: dict[str, Any] = {"n": n}
    gw = await start_gateway(procs, args, relay_address)
    path = f"/v1/tick/{IDLE_INTERVAL_MS}?count=0&size={PAYLOAD_SIZE}"
    try:
        # Warm-up: the code paths of a stream run once before "before" is read.
        warm = [await _open_sse(gw.host, gw.port, path, 10.0) for _ in range(args.idle_warmup)]
        await _close_all(warm)
        await relay.wait_open(0, 10.0)
        await asyncio.sleep(1.0)
        out["gw_rss_before_kib"] = rss_kib(gw.process.pid)
        limit = asyncio.Semaphore(64)

        async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            async with limit:
                return await _open_sse(gw.host, gw.port, path, 60.0)

        t0 = time.monotonic()
        opened = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        streams = [s for s in opened if not isinstance(s, BaseException)]
        out["gw_open_s"] = time.monotonic() - t0
        out["gw_ready"] = len(streams)
        errors = [repr(s) for s in opened if isinstance(s, BaseException)]
        if errors:
            out["gw_errors"] = errors[:3]
        await asyncio.sleep(args.idle_settle)
        out["gw_rss_open_kib"] = rss_kib(gw.process.pid)
        out["gw_upstream_calls_open"] = len(relay.counter.open)
        await _close_all(streams)
        _, took = await relay.wait_open(0, 20.0)
        out["gw_upstream_calls_after_close"] = len(relay.counter.open)
        out["gw_calls_drained_s"] = took
        await asyncio.sleep(1.0)
        out["gw_rss_after_close_kib"] = rss_kib(gw.process.pid)
        # A second cycle on the same gateway: RSS should not grow again (no leak per stream).
        opened = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        streams = [s for s in opened if not isinstance(s, BaseException)]
        await asyncio.sleep(args.idle_settle)
        out["gw_rss_open2_kib"] = rss_kib(gw.process.pid)
        out["gw_ready2"] = len(streams)
        await _close_all(streams)
        await relay.wait_open(0, 20.0)
        out["gw_upstream_calls_after_close2"] = len(relay.counter.open)
        await asyncio.sleep(1.0)
        out["gw_rss_after_close2_kib"] = rss_kib(gw.process.pid)
        out["gw_kib_per_stream"] = (out["gw_rss_open_kib"] - out["gw_rss_before_kib"]) / max(
            1, len(streams)
        )
    finally:
        await gw.process.stop()

    child = await procs.child(
        "grpc-idle",
        {
            "target": relay_address,
            "descriptor_set": args.descriptor_set,
            "streams": n,
            "warmup": args.idle_warmup,
            "settle_seconds": args.idle_settle,
        },
    )
    try:
        opened_event = await child.event(180.0)
        out["floor_upstream_calls_open"] = len(relay.counter.open)
        assert child.proc.stdin is not None
        child.proc.stdin.write(b"close\n")
        await child.proc.stdin.drain()
        closed_event = await child.event(30.0)
        _, took = await relay.wait_open(0, 20.0)
        out["floor_upstream_calls_after_close"] = len(relay.counter.open)
        out["floor_calls_drained_s"] = took
        out["floor_ready"] = opened_event["ready"]
        out["floor_rss_before_kib"] = opened_event["rss_before_kib"]
        out["floor_rss_open_kib"] = opened_event["rss_open_kib"]
        out["floor_rss_after_close_kib"] = closed_event["rss_after_kib"]
        out["floor_kib_per_stream"] = (
            opened_event["rss_open_kib"] - opened_event["rss_before_kib"]
        ) / max(1, opened_event["ready"])
        await asyncio.wait_for(child.proc.wait(), 15.0)
    finally:
        await child.stop()
    return out


# -- report --------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _ratio(a: Sequence[float | None], b: Sequence[float | None]) -> str:
    """Median of the per-round ratios a/b (the two measured back to back in each round)."""
    ratios = [x / y for x, y in zip(a, b, strict=False) if x is not None and y]
    return f"{statistics.median(ratios):.2f}x" if ratios else "—"


def machine_and_versions(up: Upstream | None, args: argparse.Namespace) -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    cpu_model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) / 1048576:.1f} GiB"
    go = "-"
    if up is not None and up.kind == "go" and shutil.which("go"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            go = subprocess.run(
                ["go", "version", args.upstream_bin], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            go = go.split(": ", 1)[-1]
    grpc_go = "-"
    if shutil.which("dpkg-query"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            grpc_go = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", "golang-google-grpc-dev"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
    affinity = len(os.sched_getaffinity(0))
    return [
        f"- machine: nproc {affinity} (cpu_count {os.cpu_count()}), {cpu_model}, {mem} RAM, "
        f"{platform.system()} {platform.release()}",
        f"- versions: Python {platform.python_version()}, transcoder {version('transcoder')}, "
        f"grpcio {version('grpcio')}, protobuf {version('protobuf')}, "
        f"uvicorn {version('uvicorn')}, uvloop {version('uvloop')}, "
        f"httptools {version('httptools')}, orjson {version('orjson')}; upstream: "
        + (
            f"Go benchupstream ({go}, Debian golang-google-grpc-dev {grpc_go or '-'})"
            if up is not None and up.kind == "go"
            else "Python grpc.aio fallback (caps near 10k msgs/s: rates understate the gap)"
        ),
    ]


def report(results: Results, args: argparse.Namespace, header: list[str]) -> str:
    rate, lat, idle = results.rate, results.latency, results.idle

    def col(store: dict[str, list[dict[str, Any]]], target: str, key: str) -> list[Any]:
        return [r.get(key) for r in store.get(target, [])]

    rows: list[tuple[str, list[Any], list[Any], list[Any], bool]] = []
    for label, store, key, ratio in (
        (
            f"messages/s, one client (median of {args.rounds} x {args.rate_seconds:g} s)",
            rate,
            "msgs_per_s",
            True,
        ),
        (
            "serving CPU, µs/msg (gateway process; floor: the grpc.aio client process)",
            rate,
            "_serve_us",
            True,
        ),
        ("serving CPU, % of one core", rate, "_serve_pct", False),
        ("HTTP reader CPU, % of one core (raw socket client)", rate, "_reader_pct", False),
        (
            "serving process context switches per msg (all threads)",
            rate,
            "serving_switches_per_msg",
            True,
        ),
        ("upstream CPU, µs/msg", rate, "upstream_cpu_us_per_msg", True),
        (f"latency upstream send → receipt, p50 ms ({args.tick_ms} ms tick)", lat, "p50_ms", True),
        (f"latency upstream send → receipt, p99 ms ({args.tick_ms} ms tick)", lat, "p99_ms", True),
        (
            f"time to first message, ms (median of {args.ttfm_samples} per round)",
            lat,
            "ttfm_ms",
            True,
        ),
    ):
        rows.append(
            (
                label,
                col(store, "ndjson", key),
                col(store, "sse", key),
                col(store, "grpc-msg", key),
                ratio,
            )
        )
    gw_kib = [r.get("gw_kib_per_stream") for r in idle]
    floor_kib = [r.get("floor_kib_per_stream") for r in idle]
    rows.append(
        (
            f"RSS per idle open stream, KiB (N={args.idle_streams}, {len(idle)} rounds)",
            [None] * len(idle),
            gw_kib,
            floor_kib,
            True,
        )
    )
    out = [
        "| measure | gateway NDJSON | gateway SSE | grpc.aio floor "
        "| NDJSON ÷ floor | SSE ÷ floor |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for label, nd, sse, floor, ratio in rows:
        ratios = f"{_ratio(nd, floor)} | {_ratio(sse, floor)}" if ratio else "— | —"
        out.append(
            f"| {label} | {_fmt(_median(nd))} | {_fmt(_median(sse))} | {_fmt(_median(floor))} "
            f"| {ratios} |"
        )
    raw = col(rate, "grpc-raw", "msgs_per_s")
    raw_us = col(rate, "grpc-raw", "client_cpu_us_per_msg")
    lines = ["## Streaming benchmark (100-byte payload)", "", *header, "", *out, ""]
    lines.append(
        f"- grpc.aio floor with raw bytes (no deserialisation): {_fmt(_median(raw))} msgs/s, "
        f"{_fmt(_median(raw_us))} µs CPU/msg; gateway NDJSON ÷ raw floor "
        f"{_ratio(col(rate, 'ndjson', 'msgs_per_s'), raw)}, SSE ÷ raw floor "
        f"{_ratio(col(rate, 'sse', 'msgs_per_s'), raw)}."
    )
    for target in ("ndjson", "sse", "grpc-msg", "grpc-raw"):
        values = ", ".join(_fmt(x) for x in col(rate, target, "msgs_per_s"))
        lines.append(f"- msgs/s per round, {target}: {values}")
    for target in ("ndjson", "sse", "grpc-msg"):
        p50 = ", ".join(_fmt(x, 3) for x in col(lat, target, "p50_ms"))
        p99 = ", ".join(_fmt(x, 3) for x in col(lat, target, "p99_ms"))
        lines.append(f"- latency per round, {target}: p50 {p50} ms; p99 {p99} ms")
    for target in ("ndjson", "sse"):
        wire = col(rate, target, "bytes_per_msg")
        lines.append(
            f"- {target}: {_fmt(_median(wire))} wire bytes/msg (chunked framing included); "
            f"upstream CPU in the second after the client left: "
            f"{', '.join(_fmt(x, 2) for x in col(rate, target, 'upstream_cpu_s_after_close'))} s."
        )
    lines.append(
        "- floor (grpc.aio, message class): upstream CPU in the second after cancel: "
        + ", ".join(_fmt(x, 2) for x in col(rate, "grpc-msg", "upstream_cpu_s_after_close"))
        + " s."
    )
    for r in idle:
        lines.append(
            f"- idle round: gateway RSS {r['gw_rss_before_kib']} → {r['gw_rss_open_kib']} KiB "
            f"with {r['gw_ready']}/{r['n']} SSE streams (opened in {r['gw_open_s']:.1f} s), "
            f"{r['gw_rss_after_close_kib']} KiB after close, then "
            f"{r['gw_rss_open2_kib']} KiB with {r['gw_ready2']} open again and "
            f"{r['gw_rss_after_close2_kib']} KiB after closing them; upstream calls open "
            f"{r['gw_upstream_calls_open']} → {r['gw_upstream_calls_after_close']} "
            f"{r['gw_calls_drained_s']:.2f} s after the clients closed. grpc.aio client RSS "
            f"{r['floor_rss_before_kib']} → {r['floor_rss_open_kib']} KiB with "
            f"{r['floor_ready']}/{r['n']} calls; upstream calls open "
            f"{r['floor_upstream_calls_open']} → {r['floor_upstream_calls_after_close']}."
            + (f" Errors: {r['gw_errors']}" if r.get("gw_errors") else "")
        )
    lines.append(
        "- ratios: the median over rounds of the per-round ratio (each round runs every "
        "target back to back, order rotated); other cells are medians over rounds."
    )
    lines.extend(f"- note: {note}" for note in results.notes)
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------


def discover(args: argparse.Namespace, logdir: Path) -> None:
    build = Path(os.environ.get("BENCH_BUILD") or Path(tempfile.gettempdir()) / "bench-build")
    setup = SHARED_BENCH / "setup.sh"
    if args.upstream_bin is None and not args.python_upstream:
        candidate = build / "bin" / "benchupstream"
        if not candidate.is_file() and args.setup and setup.is_file():
            print(f"running {setup} (idempotent; may take minutes)", file=sys.stderr)
            subprocess.run([str(setup)], check=False, timeout=1200)
        if candidate.is_file():
            args.upstream_bin = str(candidate)
    if args.descriptor_set is None:
        candidate = build / "bench.pb"
        if candidate.is_file():
            args.descriptor_set = str(candidate)
        else:
            proto = Path(args.proto or SHARED_BENCH / "proto" / "benchsvc" / "v1" / "bench.proto")
            if not proto.is_file():
                raise SystemExit("no descriptor set: give --descriptor-set FILE or --proto FILE")
            out = logdir / "bench.pb"
            compile_descriptor_set(proto.resolve(), out)
            args.descriptor_set = str(out)


def raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def run(args: argparse.Namespace, logdir: Path) -> Results:
    procs = Processes(logdir)
    results = Results()
    up: Upstream | None = None
    relay: CountingRelay | None = None
    started = time.monotonic()
    try:
        up = await start_upstream(procs, args)
        if up.kind == "python":
            results.notes.append(
                "the Go upstream was not found (run the shared harness's setup.sh or give "
                "--upstream-bin): a Python grpc.aio upstream in its own process stood in"
            )
        args.header = machine_and_versions(up, args)
        gw = await start_gateway(procs, args, up.address)
        checks = await validate(gw)
        if not (checks["ndjson_ok"] and checks["sse_ok"]):
            results.notes.append(f"VALIDATION FAILED: {checks}")
        print(f"validated: {checks}", file=sys.stderr)

        targets = ["ndjson", "sse", "grpc-msg", "grpc-raw"]
        warm = argparse.Namespace(**{**vars(args), "rate_seconds": args.warmup_seconds})
        for target in targets:  # not recorded: first runs after start are slower
            await measure_rate(procs, target, warm, up, gw)
        for r in range(args.rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for target in order:
                res = await measure_rate(procs, target, args, up, gw)
                res["_serve_us"] = (
                    res["gateway_cpu_us_per_msg"]
                    if target in HTTP_TARGETS
                    else res["client_cpu_us_per_msg"]
                )
                res["_serve_pct"] = (
                    res["gateway_cpu_pct"] if target in HTTP_TARGETS else res["client_cpu_pct"]
                )
                res["_reader_pct"] = res["client_cpu_pct"] if target in HTTP_TARGETS else None
                results.rate.setdefault(target, []).append(res)
                print(
                    f"rate round {r + 1} {target}: {res['msgs_per_s']:,.0f} msgs/s "
                    f"(serving CPU {res['_serve_pct']:.0f}%, reader {res['client_cpu_pct']:.0f}%)",
                    file=sys.stderr,
                )

        targets = ["ndjson", "sse", "grpc-msg"]
        for r in range(args.rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for target in order:
                res = await measure_latency(procs, target, args, up, gw)
                results.latency.setdefault(target, []).append(res)
                print(
                    f"latency round {r + 1} {target}: p50 {res['p50_ms']:.3f} ms "
                    f"p99 {res['p99_ms']:.3f} ms ttfm {res['ttfm_ms']:.2f} ms",
                    file=sys.stderr,
                )
        await gw.process.stop()

        relay = CountingRelay(up.address, lifetime=3600.0)
        relay_address = await relay.start()
        for r in range(args.idle_rounds):
            res = await measure_idle_round(procs, args, relay, relay_address)
            results.idle.append(res)
            print(
                f"idle round {r + 1}: gateway {res['gw_kib_per_stream']:.1f} KiB/stream, "
                f"floor {res['floor_kib_per_stream']:.1f} KiB/stream",
                file=sys.stderr,
            )
            if (
                res["gw_upstream_calls_after_close"] != 0
                or res["gw_upstream_calls_after_close2"] != 0
                or res["floor_upstream_calls_after_close"] != 0
            ):
                results.notes.append(f"upstream calls left open after close: {res}")
            if res["gw_upstream_calls_open"] != res["n"]:
                results.notes.append(
                    f"upstream calls while {res['n']} SSE streams were open: "
                    f"{res['gw_upstream_calls_open']}"
                )
    finally:
        if relay is not None:
            await relay.close()
        await procs.stop_all()
    results.notes.append(f"total run time {time.monotonic() - started:.0f} s")
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Streaming benchmark: gateway NDJSON/SSE beside a grpc.aio floor."
    )
    parser.add_argument("--upstream-bin", help="the Go benchupstream binary (default: discover)")
    parser.add_argument(
        "--descriptor-set", help="bench.pb of benchsvc.v1 (default: discover or compile)"
    )
    parser.add_argument("--proto", help="bench.proto, compiled when no descriptor set is found")
    parser.add_argument(
        "--python-upstream", action="store_true", help="use the Python grpc.aio upstream"
    )
    parser.add_argument(
        "--setup", action="store_true", help="run the shared harness's setup.sh if needed"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds for rate and latency")
    parser.add_argument("--rate-seconds", type=float, default=4.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="one per target")
    parser.add_argument("--tick-ms", type=int, default=10)
    parser.add_argument("--tick-count", type=int, default=400, help="messages per latency run")
    parser.add_argument("--ttfm-samples", type=int, default=10, help="per latency run")
    parser.add_argument("--idle-streams", type=int, default=500)
    parser.add_argument("--idle-rounds", type=int, default=3)
    parser.add_argument("--idle-warmup", type=int, default=5)
    parser.add_argument("--idle-settle", type=float, default=2.0, help="seconds before RSS")
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.rate_seconds, args.tick_count, args.warmup_seconds = 2, 1.0, 100, 0.3
        args.idle_streams, args.idle_rounds = 50, 1
    if not (1 <= args.rounds <= 50 and 0.2 <= args.rate_seconds <= 60):
        parser.error("--rounds 1..50, --rate-seconds 0.2..60")
    if not (1 <= args.idle_streams <= 20000 and 2 <= args.tick_count <= 100000):
        parser.error("--idle-streams 1..20000, --tick-count 2..100000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        run_child(argv[1], json.loads(argv[2]))
        return 0
    args = parse_args(argv)
    raise_fd_limit(4 * args.idle_streams + 1024)
    logdir = Path(tempfile.mkdtemp(prefix="transcoder-streaming-bench-"))
    try:
        discover(args, logdir)
        load_start = os.getloadavg()
        results = asyncio.run(run(args, logdir))
        load_end = os.getloadavg()
        header = [
            *args.header,
            f"- load average: {' '.join(f'{x:.2f}' for x in load_start)} at start, "
            f"{' '.join(f'{x:.2f}' for x in load_end)} at end",
            f"- command: {Path(sys.argv[0]).name} {' '.join(argv)}",
        ]
        print(report(results, args, header))
    finally:
        if args.keep_logs:
            print(f"logs: {logdir}", file=sys.stderr)
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
