"""The project's benchmark: transcoder beside its peers and floors, in one run.

    python benchmarks/run.py                   # shared harness (all targets) + our SSE figures
    python benchmarks/run.py --quick           # a smoke run (~3 minutes)
    python benchmarks/run.py --results FILE    # re-summarise a harness results file

Part 1 runs the shared peer harness (``../shared/bench/run.sh --all --project .``):
grpc-gateway, a FastAPI + stubs baseline, the HTTP and gRPC floors and transcoder,
against the same Go upstream, targets alternating within rounds.  It measures
NDJSON only, so part 2 measures what it does not, against the same Go upstream
and a transcoder started from this checkout: messages/s over SSE and NDJSON
side by side, and idle SSE streams (memory per stream, and whether every
keepalive came on time).  Part 3 measures the stack floor (``stack_floor.py``:
uvicorn plus the same grpc.aio call, with no gateway work at all) beside a
transcoder with its default settings, alternating, with the harness's wrk load:
the least any gateway on the required stack can cost per unary call.  The table
compares each figure with the issue's targets; ``--plot FILE.png`` draws CPU per
request and messages/s per target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["transcoder", "grpc-gateway", "fastapi", "http-floor", "grpc-floor"]
Medians = dict[tuple[str, str, int | None], dict[str, float]]


# -- part 1: the shared harness ---------------------------------------------------


def run_harness(bench: Path, args: argparse.Namespace) -> Path:
    command = [
        "bash",
        str(bench / "run.sh"),
        "--all",
        "--project",
        str(ROOT),
        "--rounds",
        str(args.rounds),
        "--out",
        str(args.out),
    ]
    if args.quick:
        command.append("--quick")
    print(f"== harness: {' '.join(command)}", flush=True)
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    for line in result.stderr.splitlines():
        if line.startswith("results: "):
            return Path(line.removeprefix("results: ").strip())
    sys.stderr.write(result.stderr[-4000:])
    raise SystemExit(f"the harness did not report a results file (exit {result.returncode})")


def harness_medians(results: Path) -> Medians:
    groups: dict[tuple[str, str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for line in results.read_text().splitlines():
        record = json.loads(line)
        if "target" in record and record.get("scenario") not in (None, "meta", "start", "end"):
            groups[(record["target"], record["scenario"], record.get("conns"))].append(record)
    medians: Medians = {}
    for key, records in groups.items():
        numeric = {k for r in records for k, v in r.items() if isinstance(v, (int, float))}
        medians[key] = {
            k: statistics.median(v for r in records if isinstance(v := r.get(k), (int, float)))
            for k in numeric
        }
    return medians


# -- part 2: SSE rate and idle SSE capacity -----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stack:
    """The Go upstream and a transcoder from this checkout."""

    def __init__(self, build: Path, keepalive: float) -> None:
        self.upstream_port, self.port = free_port(), free_port()
        self.upstream = subprocess.Popen(
            [str(build / "bin" / "benchupstream"), "-listen", f"127.0.0.1:{self.upstream_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
        env.update(
            TRANSCODER_LOGGING__ACCESS_LOG="false",
            TRANSCODER_STREAMING__SSE_KEEPALIVE_SECONDS=str(keepalive),
            TRANSCODER_STREAMING__MAX_CONCURRENT_STREAMS="100000",
        )
        wait_port(self.upstream_port)
        self.gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "transcoder",
                "serve",
                "--descriptor-set",
                str(build / "bench.pb"),
                "--upstream",
                f"127.0.0.1:{self.upstream_port}",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def close(self) -> None:
        for process in (self.gateway, self.upstream):
            process.terminate()
            process.wait(timeout=20)


def stream_rates(build: Path, stack: Stack, rounds: int, seconds: float) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"ndjson": [], "sse": []}
    url = f"http://127.0.0.1:{stack.port}/v1/stream/0?size=100"
    for index in range(rounds):
        order = ["ndjson", "sse"] if index % 2 == 0 else ["sse", "ndjson"]
        for name in order:
            accept = "text/event-stream" if name == "sse" else "application/x-ndjson"
            out = subprocess.run(
                [
                    str(build / "bin" / "benchclient"),
                    "rate",
                    "-url",
                    url,
                    "-seconds",
                    str(seconds),
                    "-accept",
                    accept,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rates[name].append(float(json.loads(out)["msgs_per_s"]))
    return rates


async def idle_sse(port: int, streams: int, hold: float, keepalive: float) -> dict[str, float]:
    """Open ``streams`` idle SSE streams; hold them; every gap between frames is recorded."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    ready = asyncio.Event()
    opened = 0
    failures = 0
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        nonlocal opened, failures
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        except OSError:
            failures += 1
            return
        writers.append(writer)
        writer.write(
            b"GET /v1/tick/600000?count=2&size=100 HTTP/1.1\r\nHost: x\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        try:
            await reader.readuntil(b"\ndata: ")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            failures += 1
            return
        opened += 1
        if opened + failures == streams:
            ready.set()
        last = loop.time()
        while True:
            try:
                chunk = await reader.read(4096)
            except ConnectionError:
                return
            if not chunk:
                return
            now = loop.time()
            if b"keepalive" in chunk:
                gaps.append(now - last)
            last = now

    tasks = [asyncio.create_task(one()) for _ in range(streams)]
    started = loop.time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), timeout=max(60.0, streams / 50))
    open_seconds = loop.time() - started
    await asyncio.sleep(hold)
    for writer in writers:
        writer.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    late = [g for g in gaps if g > keepalive + 1.0]
    return {
        "opened": opened,
        "failed": failures,
        "open_s": open_seconds,
        "keepalives": len(gaps),
        "late_keepalives": len(late),
        "max_gap_s": max(gaps, default=0.0),
    }


def measure_sse(build: Path, args: argparse.Namespace) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    figures: dict[str, Any] = {}
    stack = Stack(build, keepalive=args.keepalive)
    try:
        rates = stream_rates(build, stack, args.rounds, args.stream_seconds)
        figures["ndjson_msgs_per_s"] = statistics.median(rates["ndjson"])
        figures["sse_msgs_per_s"] = statistics.median(rates["sse"])
        figures["rates"] = rates
        before = rss_kib(stack.gateway.pid)
        hold = args.keepalive * 2 + 2
        task = asyncio.run(_with_rss(stack, args.idle_streams, hold, args.keepalive))
        idle, during = task
        figures["idle"] = idle
        figures["idle_rss_before_kib"] = before
        figures["idle_rss_open_kib"] = during
        opened = idle["opened"] or 1
        figures["idle_sse_kib_per_stream"] = (during - before) / opened
    finally:
        stack.close()
    return figures


async def _with_rss(
    stack: Stack, streams: int, hold: float, keepalive: float
) -> tuple[dict[str, float], int]:
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_kib(stack.gateway.pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    idle = await idle_sse(stack.port, streams, hold, keepalive)
    sampler.cancel()
    return idle, peak


# -- part 3: the stack floor beside transcoder -------------------------------------

UNARY_LABELS = (("unary_small", "small GET"), ("unary_medium", "medium POST"))
UNARY = {
    "unary_small": ("GET", "/v1/echo/abc123?name=bench&count=42&flag=true&score=1.5"),
    "unary_medium": ("POST", "/v1/echo"),
}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(bench: Path, port: int, scenario: str, seconds: float) -> int:
    """Requests answered by one ``wrk -t1 -c16`` run (the harness's load)."""
    method, path = UNARY[scenario]
    env = dict(os.environ)
    if method == "POST":
        env["BENCH_BODY_FILE"] = str(bench / "fixtures" / "medium.json")
    out = subprocess.run(
        [
            *("wrk", "-t1", "-c16", f"-d{seconds:g}s", "-s", str(bench / "lua" / "report.lua")),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCHJSON "))
    record = json.loads(line.removeprefix("BENCHJSON "))
    if record["errors_status"] or record["errors_connect"]:
        raise SystemExit(f"wrk saw errors against port {port}: {record}")
    return int(record["requests"])


def measure_stack_floor(build: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """µs CPU per request, median over rounds, for the stack floor and transcoder."""
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [str(build / "bin" / "benchupstream"), "-listen", f"127.0.0.1:{upstream_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(upstream_port)
    address = f"127.0.0.1:{upstream_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    ports = {"stack-floor": free_port(), "stack-floor-json": free_port(), "transcoder": free_port()}
    floor_env = {
        **env,
        "BENCH_UPSTREAM": address,
        "BENCH_DESCRIPTOR_SET": str(build / "bench.pb"),
        "BENCH_MEDIUM": str(args.bench / "fixtures" / "medium.json"),
    }
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    def floor(name: str, convert: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "benchmarks")),
                *("stack_floor:app", "--port", str(ports[name]), "--loop", "uvloop"),
                *("--http", "httptools", "--no-access-log", "--log-level", "warning"),
            ],
            env={**floor_env, "BENCH_CONVERT": convert},
            **quiet,
        )

    processes = {
        "stack-floor": floor("stack-floor", "0"),
        "stack-floor-json": floor("stack-floor-json", "1"),
        "transcoder": subprocess.Popen(
            [
                *(sys.executable, "-m", "transcoder", "serve", "--upstream", address),
                *("--descriptor-set", str(build / "bench.pb"), "--port", str(ports["transcoder"])),
            ],
            env=env,
            **quiet,
        ),
    }
    samples: dict[str, dict[str, list[float]]] = {
        name: {scenario: [] for scenario in UNARY} for name in processes
    }
    try:
        for port in ports.values():
            wait_port(port)
        names = list(processes)
        for index in range(args.rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                for scenario in UNARY:
                    _wrk(args.bench, ports[name], scenario, 2)  # warm-up
                    pid = processes[name].pid
                    before = _cpu_s(pid)
                    requests = _wrk(args.bench, ports[name], scenario, args.unary_seconds)
                    cpu_us = (_cpu_s(pid) - before) / requests * 1e6
                    samples[name][scenario].append(cpu_us)
                    print(f"  round {index + 1} {name} {scenario}: {cpu_us:.0f} µs", flush=True)
    finally:
        for process in [*processes.values(), upstream]:
            process.terminate()
            process.wait(timeout=20)
    return {
        name: {scenario: statistics.median(v) for scenario, v in by.items()}
        for name, by in samples.items()
    }


# -- report -------------------------------------------------------------------------


def cpu_us(m: Medians, target: str, scenario: str, conns: int = 16) -> float | None:
    value = m.get((target, scenario, conns), {}).get("gw_cpu_s_per_10k")
    return None if value is None else value * 100  # s per 10k requests → µs per request


def metric(m: Medians, target: str, scenario: str, name: str) -> float | None:
    return m.get((target, scenario, None), {}).get(name)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def show(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report(
    m: Medians, sse: dict[str, Any] | None, floor: dict[str, dict[str, float]] | None
) -> str:
    rows = [
        ("small GET, µs CPU/request", {t: cpu_us(m, t, "unary_small") for t in TARGETS}, 0),
        ("medium POST, µs CPU/request", {t: cpu_us(m, t, "unary_medium") for t in TARGETS}, 0),
        (
            "stream (NDJSON), msgs/s to one client",
            {t: metric(m, t, "stream_rate", "msgs_per_s") for t in TARGETS},
            0,
        ),
        ("time to first message, ms", {t: metric(m, t, "ttfm", "ttfm_p50_ms") for t in TARGETS}, 2),
        (
            "memory per idle open stream (NDJSON), KiB",
            {t: metric(m, t, "idle_streams", "rss_per_stream_kib") for t in TARGETS},
            1,
        ),
    ]
    lines = ["| | " + " | ".join(TARGETS) + " |", "|---|" + "---:|" * len(TARGETS)]
    for title, values, digits in rows:
        lines.append(f"| {title} | " + " | ".join(show(values[t], digits) for t in TARGETS) + " |")
    t = "transcoder"
    checks = [
        (
            "small GET CPU ÷ grpc-gateway",
            ratio(cpu_us(m, t, "unary_small"), cpu_us(m, "grpc-gateway", "unary_small")),
            "≤ 1.0",
        ),
        (
            "small GET CPU ÷ FastAPI",
            ratio(cpu_us(m, t, "unary_small"), cpu_us(m, "fastapi", "unary_small")),
            "≤ 0.35",
        ),
        (
            "medium POST CPU ÷ grpc-gateway",
            ratio(cpu_us(m, t, "unary_medium"), cpu_us(m, "grpc-gateway", "unary_medium")),
            "≤ 0.6",
        ),
        (
            "NDJSON msgs/s ÷ grpc-gateway",
            ratio(
                metric(m, t, "stream_rate", "msgs_per_s"),
                metric(m, "grpc-gateway", "stream_rate", "msgs_per_s"),
            ),
            "≥ 1.0",
        ),
        (
            "time to first message ÷ grpc-gateway",
            ratio(
                metric(m, t, "ttfm", "ttfm_p50_ms"),
                metric(m, "grpc-gateway", "ttfm", "ttfm_p50_ms"),
            ),
            "≤ 1.0",
        ),
    ]
    for scenario, label in UNARY_LABELS:
        floors = _sum(cpu_us(m, "http-floor", scenario), cpu_us(m, "grpc-floor", scenario))
        checks.append(
            (
                f"{label} CPU ÷ (HTTP floor + gRPC floor)",
                ratio(cpu_us(m, t, scenario), floors),
                "(floor)",
            )
        )
    if floor:
        for scenario, label in UNARY_LABELS:
            least = floor["stack-floor"][scenario]
            checks += [
                (
                    f"{label}: stack floor ÷ grpc-gateway (part 3 ÷ part 1)",
                    ratio(least, cpu_us(m, "grpc-gateway", scenario)),
                    "(floor)",
                ),
                (
                    f"{label}: stack floor ÷ FastAPI (part 3 ÷ part 1)",
                    ratio(least, cpu_us(m, "fastapi", scenario)),
                    "(floor)",
                ),
                (
                    f"{label}: transcoder ÷ stack floor (part 3, side by side)",
                    ratio(floor["transcoder"][scenario], least),
                    "(floor)",
                ),
            ]
            if "stack-floor-json" in floor:
                checks.append(
                    (
                        f"{label}: stack floor + JSON ÷ grpc-gateway (part 3 ÷ part 1)",
                        ratio(
                            floor["stack-floor-json"][scenario], cpu_us(m, "grpc-gateway", scenario)
                        ),
                        "(floor)",
                    )
                )
    if sse:
        gg = metric(m, "grpc-gateway", "stream_rate", "msgs_per_s")
        checks.append(
            ("SSE msgs/s ÷ grpc-gateway (NDJSON)", ratio(sse["sse_msgs_per_s"], gg), "≥ 0.8")
        )
        checks.append(
            (
                "SSE msgs/s ÷ our NDJSON (same run)",
                ratio(sse["sse_msgs_per_s"], sse["ndjson_msgs_per_s"]),
                "—",
            )
        )
        checks.append(("idle SSE KiB per stream", sse["idle_sse_kib_per_stream"], "≤ 39"))
    lines += ["", "| target | measured | goal |", "|---|---:|---|"]
    lines += [f"| {name} | {show(value, 2)} | {goal} |" for name, value, goal in checks]
    if sse:
        idle = sse["idle"]
        lines += [
            "",
            f"SSE, same checkout and Go upstream: {sse['sse_msgs_per_s']:,.0f} msgs/s "
            f"(NDJSON {sse['ndjson_msgs_per_s']:,.0f}); "
            f"idle SSE: {idle['opened']:.0f} streams open "
            f"({idle['failed']:.0f} failed) in {idle['open_s']:.1f} s, "
            f"{sse['idle_sse_kib_per_stream']:.1f} KiB each, {idle['keepalives']:.0f} keepalives, "
            f"{idle['late_keepalives']:.0f} late (gap > keepalive + 1 s), "
            f"max gap {idle['max_gap_s']:.2f} s.",
        ]
    if floor:
        lines += [
            "",
            "Part 3, µs CPU per request (wrk -t1 -c16, medians): "
            + "; ".join(
                f"{name} small GET {by['unary_small']:.0f}, medium POST {by['unary_medium']:.0f}"
                for name, by in floor.items()
            )
            + ".",
        ]
    return "\n".join(lines)


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def plot(
    m: Medians, sse: dict[str, Any] | None, floor: dict[str, dict[str, float]] | None, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    names = [*TARGETS, "stack floor"] if floor else list(TARGETS)
    xs = range(len(names))
    for offset, (scenario, label) in zip((-width / 2, width / 2), UNARY_LABELS, strict=True):
        values = [cpu_us(m, t, scenario) or 0 for t in TARGETS]
        if floor:
            values.append(floor["stack-floor"][scenario])
        left.bar([x + offset for x in xs], values, width, label=label)
    left.set_xticks(list(xs), names, rotation=20)
    left.set_ylabel("µs CPU per request (c=16)")
    left.set_title("CPU per request (lower is better)")
    left.legend()
    names = list(TARGETS)
    rates = [metric(m, t, "stream_rate", "msgs_per_s") or 0 for t in TARGETS]
    if sse:
        names.append("transcoder SSE")
        rates.append(sse["sse_msgs_per_s"])
    right.bar(range(len(names)), rates, color="tab:green")
    right.set_xticks(range(len(names)), names, rotation=20)
    right.set_ylabel("messages/s to one client (100-byte messages)")
    right.set_title("Streaming throughput (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument(
        "--build",
        type=Path,
        default=Path(os.environ.get("BENCH_BUILD", Path(tempfile.gettempdir(), "bench-build"))),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("BENCH_OUT", Path(tempfile.gettempdir(), "bench-results"))),
    )
    parser.add_argument(
        "--results", type=Path, help="summarise this harness results file; run nothing"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-sse", action="store_true")
    parser.add_argument("--idle-streams", type=int, default=10000)
    parser.add_argument("--keepalive", type=float, default=15.0)
    parser.add_argument("--stream-seconds", type=float, default=5.0)
    parser.add_argument("--sse-figures", help="part 2's printed JSON instead of measuring it again")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument(
        "--floor-figures",
        help='part 3\'s printed JSON ({"stack_floor": ...}) instead of measuring it again',
    )
    parser.add_argument("--unary-seconds", type=float, default=10.0)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.idle_streams, args.keepalive, args.stream_seconds = 1, 500, 2.0, 3.0
        args.unary_seconds = 3.0
    results = args.results or run_harness(args.bench, args)
    medians = harness_medians(results)
    sse = json.loads(args.sse_figures) if args.sse_figures else None
    if sse is None and not args.skip_sse:
        print("== SSE rate and idle SSE streams", flush=True)
        sse = measure_sse(args.build, args)
    floor = json.loads(args.floor_figures)["stack_floor"] if args.floor_figures else None
    if floor is None and not args.skip_floor:
        print("== the stack floor beside transcoder", flush=True)
        floor = measure_stack_floor(args.build, args)
    print(f"\nmachine: {os.cpu_count()} cores, load {os.getloadavg()}, {platform.platform()}")
    print(f"harness results: {results}\n")
    print(report(medians, sse, floor))
    if sse:
        print("\n" + json.dumps({k: v for k, v in sse.items() if k != "rates"}, default=str))
    if floor:
        print(json.dumps({"stack_floor": floor}))
    if args.plot:
        plot(medians, sse, floor, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
