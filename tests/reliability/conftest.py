"""Reliability tests (reliability notes part (c), goals G1-G19): shared machinery.

- ``size(ci, soak)``: the CI size by default, the soak size under ``pytest --soak``
  (which also lifts the per-test timeout for this directory).
- ``figure("G6", idle_sse_streams=500, ...)``: prints one greppable line
  ``FIGURE G6 size=ci idle_sse_streams=500 ...`` at once and again in the
  session summary.
- ``gateway_process(upstream_address, **settings)``: the real gateway as a child
  process (``python -m transcoder serve`` through ``tests/reliability/probe.py``,
  which adds a task count on SIGUSR1), so its RSS, CPU, file descriptors and exit
  status are its own.  Its stderr is kept; a "Traceback" there fails the test.
- ``RawResponse``, ``http_request`` / ``sync_request``: a raw-socket HTTP/1.1
  client (bytes exactly as given; chunked bodies decoded) and ``check_error``,
  the contract's error-shape check (goal G2) for its answers.
- ``RawStream`` / ``open_stream``: a raw-socket streaming client that notes when
  each chunk arrived (thousands of them are cheap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import yaml

from tests.e2e.conftest import SPECIAL_STATUSES
from transcoder.errors import CODE_BY_NUMBER, HTTP_STATUS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
_T = TypeVar("_T")
FIGURES = pytest.StashKey[list[str]]()
SOAK_TIMEOUT_SECONDS = 6 * 3600


# -- sizes and figures -------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    soak: bool

    def __call__(self, ci: _T, soak: _T) -> _T:
        return soak if self.soak else ci

    @property
    def name(self) -> str:
        return "soak" if self.soak else "ci"


@pytest.fixture(scope="session")
def size(soak: bool) -> Size:
    return Size(soak)


Figure = Callable[..., str]


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    return str(value)


@pytest.fixture
def figure(request: pytest.FixtureRequest, size: Size) -> Figure:
    """``figure("G6", a=1, b=2.5)`` → ``FIGURE G6 size=ci a=1 b=2.5`` on the terminal."""
    config = request.config

    def record(goal: str, **values: object) -> str:
        parts = [f"{key}={_format(value)}" for key, value in values.items()]
        line = " ".join(["FIGURE", goal, f"size={size.name}", *parts])
        config.stash.setdefault(FIGURES, []).append(line)
        reporter = config.pluginmanager.getplugin("terminalreporter")
        capture = config.pluginmanager.getplugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        return line

    return record


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--soak"):
        return
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.timeout(SOAK_TIMEOUT_SECONDS))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


# -- small helpers -------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


async def wait_until(predicate: Callable[[], bool], limit: float, step: float = 0.02) -> float:
    """Seconds until ``predicate()`` holds; TimeoutError after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with anyio.fail_after(limit):
        while not predicate():
            await asyncio.sleep(step)
    return loop.time() - started


def raise_fd_limit(wanted: int) -> None:
    """Raise this process's open-file limit towards ``wanted`` (up to the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def abort(writer: asyncio.StreamWriter) -> None:
    """Close a client connection with a TCP reset, as a killed client would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


# -- raw HTTP ------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes
    complete: bool = True  # the body ended as framed (length reached, chunked terminator)
    method: str = "GET"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return status, headers


def decode_chunked(data: bytes) -> tuple[bytes, bool, bytes]:
    """(body so far, terminator seen, unparsed rest) of a chunked transfer."""
    body = bytearray()
    rest = data
    while True:
        line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return bytes(body), False, rest
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(body), after.startswith(b"\r\n") or after == b"\r\n", after
        if len(after) < size + 2:
            return bytes(body), False, rest
        body += after[:size]
        rest = after[size + 2 :]


def _framing(headers: list[tuple[str, str]]) -> tuple[int | None, bool]:
    length = None
    chunked = False
    for name, value in headers:
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    return length, chunked


async def read_response(
    reader: asyncio.StreamReader, *, method: str = "GET", limit: float = 10
) -> RawResponse:
    """One response from ``reader``: head, then the body as framed (or to EOF)."""
    with anyio.fail_after(limit):
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = parse_head(head)
        length, chunked = _framing(headers)
        if method == "HEAD" or status in (204, 304):
            return RawResponse(status, headers, b"", True, method)
        if length is not None:
            return RawResponse(status, headers, await reader.readexactly(length), True, method)
        if chunked:
            raw = b""
            while True:
                chunk = await reader.read(65536)
                raw += chunk
                body, done, _ = decode_chunked(raw)
                if done or not chunk:
                    return RawResponse(status, headers, body, done, method)
        return RawResponse(status, headers, await reader.read(), True, method)


async def http_request(url: str, request: bytes, *, limit: float = 10) -> RawResponse:
    """Send ``request`` exactly as given on a new connection and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await read_response(reader, method=request.split(b" ", 1)[0].decode(), limit=limit)
    finally:
        writer.close()


def sync_request(
    address: tuple[str, int],
    request: bytes,
    *,
    limit: float = 10,
    max_body: int = 1 << 20,
    stream_seconds: float = 1.0,
) -> RawResponse:
    """Blocking ``http_request`` for hypothesis tests.

    A streaming answer (chunked) is read for at most ``stream_seconds`` or
    ``max_body`` bytes, then the connection is closed (``complete`` is then False).
    """
    method = request.split(b" ", 1)[0].decode("latin-1")
    deadline = time.monotonic() + limit
    with socket.create_connection(address, timeout=limit) as sock:
        # Refused while sending (431, 414, 413): the answer may still be readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before a response head: {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status, headers = parse_head(head)
        length, chunked = _framing(headers)
        if method == "HEAD" or status in (204, 304):
            return RawResponse(status, headers, b"", True, method)
        stop = deadline if not chunked else min(deadline, time.monotonic() + stream_seconds)
        while True:
            if length is not None and len(rest) >= length:
                return RawResponse(status, headers, rest[:length], True, method)
            if chunked:
                body, done, _ = decode_chunked(rest)
                if done or len(rest) > max_body:
                    return RawResponse(status, headers, body, done, method)
            remaining = stop - time.monotonic()
            if remaining <= 0:
                if length is not None:
                    raise TimeoutError(f"body shorter than Content-Length {length}")
                return RawResponse(status, headers, decode_chunked(rest)[0], False, method)
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                if chunked:
                    body, done, _ = decode_chunked(rest)
                    return RawResponse(status, headers, body, done, method)
                return RawResponse(status, headers, rest, length is None, method)
            rest += chunk


def check_error(response: RawResponse) -> None:
    """Goal G2: a non-2xx answer is the contract's JSON error with the table's status."""
    if response.status < 400:
        return
    content_type = response.header("content-type") or ""
    assert content_type.startswith("application/json"), (response.status, response.body[:200])
    if response.method == "HEAD":
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"code", "error", "message", "details"}, body
    code = CODE_BY_NUMBER[body["code"]]
    assert body["error"] == code.name, body
    assert isinstance(body["message"], str), body
    assert isinstance(body["details"], list), body
    if response.status != HTTP_STATUS[code]:
        assert SPECIAL_STATUSES.get(response.status) == code.name, (response.status, body)
    assert "Traceback" not in body["message"], body


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoding; ``done`` once the terminator came."""

    def __init__(self) -> None:
        self.raw = b""
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.raw += data
        out = bytearray()
        while not self.done:
            line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                self.done = rest.startswith(b"\r\n")
                break
            if len(rest) < size + 2:
                break
            out += rest[:size]
            self.raw = rest[size + 2 :]
        return bytes(out)


@dataclass
class RawStream:
    """One raw-socket streaming client: status, chunk arrival times, the body's tail.

    A chunked body is decoded; reading stops at its terminator (``complete``) or
    when the server closes the connection (``ended``).
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int = 0
    arrivals: list[float] = field(default_factory=list)
    data: bytes = b""
    ended: bool = False
    complete: bool = False
    task: asyncio.Task[None] | None = None
    keep: int = 4096  # bytes of the (decoded) body kept: the tail

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.status, headers = parse_head(head)
        decoder = ChunkedDecoder() if _framing(headers)[1] else None
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                self.ended = True
                return
            self.arrivals.append(loop.time())
            self.data += decoder.feed(chunk) if decoder else chunk
            if len(self.data) > self.keep:
                self.data = self.data[-self.keep :]
            if decoder is not None and decoder.done:
                self.complete = True
                return

    def max_gap(self, since: float) -> float:
        times = [t for t in self.arrivals if t >= since]
        gaps = [b - a for a, b in zip([since, *times], times, strict=False)]
        return max(gaps, default=0.0)


async def open_stream(url: str, request: bytes, *, keep: int = 4096) -> RawStream:
    """Connect, send ``request`` and read the answer in a background task."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    stream = RawStream(reader, writer, keep=keep)
    writer.write(request)
    stream.task = asyncio.ensure_future(stream.read())
    return stream


async def close_streams(streams: list[RawStream]) -> None:
    for s in streams:
        if s.task is not None:
            s.task.cancel()
        if not s.writer.is_closing():
            s.writer.transport.abort()
    for s in streams:
        if s.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await s.task


# -- the gateway as a process ----------------------------------------------------------

_RUNNING = re.compile(r"running on (http://[0-9.]+:[0-9]+)")


@dataclass
class GatewayProcess:
    """A ``transcoder serve`` child process; see the module docstring."""

    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    _probes: queue.Queue[int] = field(default_factory=queue.Queue)
    _started: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def _pump(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            self._read_lines()
        self._started.set()

    def _read_lines(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("PROBE tasks="):
                self._probes.put(int(line.strip().split("=", 1)[1]))
                continue
            self.lines.append(line)
            if not self.url and (match := _RUNNING.search(line)):
                self.url = match.group(1)
                self._started.set()

    def log(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _status(self) -> dict[str, str]:
        text = Path(f"/proc/{self.pid}/status").read_text()
        return dict(
            (key, value.strip())
            for key, _, value in (line.partition(":") for line in text.splitlines())
        )

    def rss_kib(self) -> int:
        return int(self._status()["VmRSS"].split()[0])

    def peak_rss_kib(self) -> int:
        return int(self._status()["VmHWM"].split()[0])

    def reset_peak_rss(self) -> None:
        """Start a new VmHWM measurement (Linux: writing 5 to clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def tasks(self, limit: float = 5) -> int:
        """The gateway loop's asyncio task count (tests/reliability/probe.py)."""
        while not self._probes.empty():
            self._probes.get_nowait()
        os.kill(self.pid, signal.SIGUSR1)
        return self._probes.get(timeout=limit)

    def terminate(self, limit: float = 15) -> int:
        """SIGTERM, then the exit status (SIGKILL after ``limit`` seconds)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(limit)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def assert_clean_log(self) -> None:
        if not self.alive() and self._reader is not None:
            self._reader.join(5)  # the last lines of a process that ended
        assert "Traceback" not in self.log(), self.log()[-4000:]


GatewayFactory = Callable[..., GatewayProcess]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def spawn_gateway(
    descriptor_set: Path, directory: Path, upstream_address: str, **settings: Any
) -> GatewayProcess:
    """Start ``transcoder serve`` (through the probe) with ``settings`` as its YAML file.

    Defaults: no access log (the log is scanned for tracebacks, not requests).
    """
    config = _merge({"logging": {"access_log": False, "level": "info"}}, settings)
    path = directory / f"gateway-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.probe",
            "serve",
            "--config",
            str(path),
            "--descriptor-set",
            str(descriptor_set),
            "--upstream",
            upstream_address,
            "--port",
            "0",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    gateway = GatewayProcess(process)
    gateway._reader = threading.Thread(target=gateway._pump, daemon=True)
    gateway._reader.start()
    if not gateway._started.wait(30) or not gateway.url:
        process.kill()
        process.wait()
        raise RuntimeError(f"the gateway did not start: {gateway.log()[-2000:]}")
    return gateway


def stop_process(gateway: GatewayProcess) -> None:
    """Kill a gateway still running, then check its log for tracebacks."""
    if gateway.alive():
        gateway.process.kill()
        gateway.process.wait()
    gateway.assert_clean_log()


@pytest.fixture
def gateway_process(descriptor_set: Path, tmp_path: Path) -> Iterator[GatewayFactory]:
    """``gateway_process("127.0.0.1:PORT", streaming={...})`` → a started ``GatewayProcess``.

    At the end the process is stopped and its log must hold no traceback.
    """
    started: list[GatewayProcess] = []

    def start(upstream_address: str, **settings: Any) -> GatewayProcess:
        gateway = spawn_gateway(descriptor_set, tmp_path, upstream_address, **settings)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        stop_process(gateway)


async def wait_ready(url: str, limit: float = 10) -> None:
    """Until ``/readyz`` answers 200 (the gateway's channel to the upstream is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        response = await http_request(url, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        if response.status == 200:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"/readyz still {response.status} after {limit}s")
        await asyncio.sleep(0.05)
