"""The command line, run as users run it: ``python -m transcoder`` in a subprocess (§1)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from tests.upstream import TestUpstream

PKG = "transcoder.testing.v1"


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    return subprocess.run(
        [sys.executable, "-m", "transcoder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **(env or {})},
    )


def rewrite_set(source: Path, target: Path, edit: str) -> Path:
    """A copy of the test descriptor set with one deliberate defect."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(source.read_bytes())
    service_file = next(f for f in fds.file if f.name == "testing/v1/service.proto")
    if edit == "bad-template":
        method = service_file.service[0].method[0]
        method.options.Extensions[annotations_pb2.http].get = "/v1/{unclosed"
    elif edit == "unknown-variable":
        method = service_file.service[0].method[0]
        method.options.Extensions[annotations_pb2.http].get = "/v1/{no_such_field}"
    elif edit == "unknown-body":
        method = service_file.service[0].method[3]
        method.options.Extensions[annotations_pb2.http].body = "nope"
    elif edit == "no-services":
        for file in fds.file:
            del file.service[:]
    elif edit == "missing-import":
        fds = descriptor_pb2.FileDescriptorSet(file=[service_file])
    target.write_bytes(fds.SerializeToString())
    return target


def assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert needle in lines[0], lines[0]


def test_routes_prints_the_table_skipped_and_shadowed(descriptor_set: Path) -> None:
    result = run("routes", "--descriptor-set", str(descriptor_set))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(
        r"GET\s+/v1/everything/\{string_field\}\s+" + re.escape(f"{PKG}.Echo.Get"), out
    )
    assert re.search(r"POST\s+" + re.escape(f"/{PKG}.Echo/Unannotated"), out)
    assert f"{PKG}.Echo.Collect: client-streaming" in out
    assert f"{PKG}.Echo.Chat: bidirectional" in out
    assert "Shadowed" in out
    assert f"{PKG}.Other.Shadowed" in out


def test_openapi_prints_a_document(descriptor_set: Path) -> None:
    result = run("openapi", "--descriptor-set", str(descriptor_set))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["openapi"].startswith("3.1")
    assert "get" in document["paths"]["/v1/everything/{string_field}"]


@pytest.mark.parametrize(
    "edit",
    ["bad-template", "unknown-variable", "unknown-body", "no-services", "missing-import"],
)
def test_bad_descriptor_set_stops_with_one_line(
    descriptor_set: Path, tmp_path: Path, edit: str
) -> None:
    bad = rewrite_set(descriptor_set, tmp_path / f"{edit}.pb", edit)
    result = run("serve", "--descriptor-set", str(bad), "--upstream", "127.0.0.1:1")
    needle = {
        "bad-template": f"{PKG}.Echo.Get",
        "unknown-variable": "no_such_field",
        "unknown-body": "nope",
        "no-services": "no routes",
        "missing-import": "testing/v1/everything.proto",
    }[edit]
    assert_one_line_error(result, needle)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "no files"),
        (b"\x00\x01garbage\xff", "FileDescriptorSet"),
        (b"syntax = 'proto3';", "FileDescriptorSet"),
    ],
    ids=["empty", "garbage", "text-proto"],
)
def test_unreadable_descriptor_file_is_named(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad.pb"
    path.write_bytes(content)
    assert_one_line_error(
        run("serve", "--descriptor-set", str(path), "--upstream", "x:1"), "bad.pb"
    )


def test_missing_descriptor_file_is_named(tmp_path: Path) -> None:
    result = run("serve", "--descriptor-set", str(tmp_path / "nope.pb"), "--upstream", "x:1")
    assert_one_line_error(result, "nope.pb")


def test_conflicting_copies_of_one_file_are_an_error(descriptor_set: Path, tmp_path: Path) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    for file in fds.file:
        if file.name == "testing/v1/everything.proto":
            file.message_type[0].field[0].json_name = "changed"
    other = tmp_path / "other.pb"
    other.write_bytes(fds.SerializeToString())
    result = run(
        "serve",
        "--descriptor-set",
        str(descriptor_set),
        "--descriptor-set",
        str(other),
        "--upstream",
        "x:1",
    )
    assert_one_line_error(result, "testing/v1/everything.proto")


def test_identical_copies_and_any_file_order_merge(descriptor_set: Path, tmp_path: Path) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    reversed_set = descriptor_pb2.FileDescriptorSet(file=list(reversed(fds.file)))
    path = tmp_path / "reversed.pb"
    path.write_bytes(reversed_set.SerializeToString())
    result = run("routes", "--descriptor-set", str(descriptor_set), "--descriptor-set", str(path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (
            [],
            {"TRANSCODER_STREAMING__SSE_KEEPALIVE_SECONDS": "0"},
            "streaming.sse_keepalive_seconds",
        ),
        ([], {"TRANSCODER_NOPE": "1"}, "TRANSCODER_NOPE"),
        (["--port", "abc"], {}, "--port"),
        (["--no-such-flag"], {}, "--no-such-flag"),
    ],
    ids=["keepalive-zero", "unknown-env", "bad-port", "unknown-flag"],
)
def test_bad_configuration_stops_with_one_line(
    descriptor_set: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    result = run(
        "serve", "--descriptor-set", str(descriptor_set), "--upstream", "x:1", *args, env=env
    )
    assert_one_line_error(result, needle)


def test_unknown_key_in_config_file(descriptor_set: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("streaming:\n  sse_keepalive_secs: 5\n")
    result = run(
        "serve",
        "--config",
        str(config),
        "--descriptor-set",
        str(descriptor_set),
        "--upstream",
        "x:1",
    )
    assert_one_line_error(result, "streaming.sse_keepalive_secs")


def test_serve_needs_an_upstream(descriptor_set: Path) -> None:
    assert_one_line_error(run("serve", "--descriptor-set", str(descriptor_set)), "upstream")


def start_serve(
    descriptor_set: Path, upstream: str, *extra: str
) -> tuple[subprocess.Popen[str], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transcoder",
            "serve",
            "--descriptor-set",
            str(descriptor_set),
            "--upstream",
            upstream,
            "--port",
            "0",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if match := re.search(r"running on (http://[0-9.]+:[0-9]+)", line):
            return process, match.group(1)
        if not line:
            break
    process.kill()
    raise AssertionError("the gateway did not report its address")


async def wait_healthy(client: httpx.AsyncClient, limit: float = 15) -> None:
    """With workers the supervisor reports the address before any worker listens."""
    deadline = time.monotonic() + limit
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.ConnectError:
            pass
        assert time.monotonic() < deadline, "no worker started"
        await asyncio.sleep(0.1)


@pytest.fixture
def serve_process(
    descriptor_set: Path, upstream: TestUpstream
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process, url = start_serve(descriptor_set, upstream.address)
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()
    assert process.stderr is not None
    process.stderr.close()


async def test_serve_answers_and_stops_cleanly_on_sigterm(
    serve_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = serve_process
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).status_code == 200
        r = await client.get("/v1/everything/from-cli")
        assert r.status_code == 200
        assert r.json()["stringField"] == "from-cli"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=12) == 0


async def test_serve_writes_access_lines_soon_and_the_last_ones_at_shutdown(
    serve_process: tuple[subprocess.Popen[str], str],
) -> None:
    """``serve`` batches access lines (access_log.py): late by a fraction of a second
    while running, and none lost when the process stops."""
    process, url = serve_process
    stderr = process.stderr
    assert stderr is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()

    def access_lines_until(request_id: str, limit: float) -> list[str]:
        found: list[str] = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if " INFO transcoder.access " in line:
                found.append(line)
                if f'request_id="{request_id}"' in line:
                    return found
        raise AssertionError(f"no access line for {request_id} within {limit}s: {found}")

    async with httpx.AsyncClient(base_url=url) as client:
        for n in range(3):
            r = await client.get("/v1/everything/a", headers={"x-request-id": f"live-{n}"})
            assert r.status_code == 200
        started = time.monotonic()
        found = access_lines_until("live-2", 5.0)
        assert time.monotonic() - started < 2.0
        assert [re.search(r'request_id="([^"]+)"', x).group(1) for x in found] == [  # type: ignore[union-attr]
            "live-0",
            "live-1",
            "live-2",
        ]
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO transcoder\.access ", found[0])
        assert 'route="/v1/everything/{string_field}" status=200 grpc_code="OK"' in found[0]
        r = await client.get("/v1/everything/b", headers={"x-request-id": "last-one"})
        assert r.status_code == 200
    process.send_signal(signal.SIGTERM)  # at once: the line is still in the batch
    assert process.wait(timeout=12) == 0
    access_lines_until("last-one", 5.0)


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
async def test_sigterm_ends_open_streams_with_unavailable_and_exits_0(
    descriptor_set: Path, upstream: TestUpstream, workers: int
) -> None:
    process, url = start_serve(descriptor_set, upstream.address, "--workers", str(workers))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await wait_healthy(client)
            assert (await client.get("/v1/everything/w")).status_code == 200
            async with client.stream(
                "GET", "/v1/stream/0?interval_ms=300", headers={"accept": "text/event-stream"}
            ) as r:
                text = b""
                async for chunk in r.aiter_raw():
                    text += chunk
                    if b"id: 1\n" in text and process.poll() is None:
                        process.send_signal(signal.SIGTERM)
        frames = text.decode().split("\n\n")
        assert frames[-2].startswith("event: stream-error\n"), frames[-3:]
        assert '"error":"UNAVAILABLE"' in frames[-2]
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


async def test_workers_share_the_port_and_metrics_sum_over_them(
    descriptor_set: Path, upstream: TestUpstream
) -> None:
    process, url = start_serve(descriptor_set, upstream.address, "--workers", "2")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await wait_healthy(client)
        for _ in range(12):  # a new connection each time, so both workers take requests
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                assert (await client.get("/v1/everything/w")).status_code == 200
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            text = (await client.get("/metrics")).text
        total = sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("transcoder_http_requests_total{")
            and 'status="200"' in line
            and "/v1/everything/{string_field}" in line
        )
        assert total == 12
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stderr is not None
        process.stderr.close()
