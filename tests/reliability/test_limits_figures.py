"""G3 body limit, G4 amplification, G5 hostile JSON: figures from a gateway process.

The gateway runs as its own process (RSS, peak RSS and CPU time from /proc are
its own) at its default limits (``http.max_request_body_bytes`` 4 MiB,
``json.max_depth`` 64), in front of the in-process test upstream.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import anyio
import pytest

from tests.reliability.conftest import (
    Figure,
    GatewayFactory,
    RawResponse,
    Size,
    check_error,
    http_request,
    wait_ready,
)
from tests.upstream import TestUpstream

MAX_BODY = 4 * 1024 * 1024
SLACK = 64 * 1024  # G3: a chunked body is refused after at most max + 64 KiB read


def post(path: str, body: bytes, *, chunked: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if chunked:
        return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def string_body(size: int) -> bytes:
    """A valid ``{"stringField": "xxx..."}`` body of exactly ``size`` bytes."""
    frame = b'{"stringField":""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


def int_array_body(size: int, last: bytes = b"0") -> bytes:
    """``{"repeatedInt32":[0,0,...,last]}`` of about ``size`` bytes (notes J31)."""
    count = (size - 20) // 2
    return b'{"repeatedInt32":[' + b"0," * count + last + b"]}"


async def test_body_limit_edges_and_chunked_overrun(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure
) -> None:
    """G3: max-1 → 200, max → 200, max+1 → 413 JSON; chunked over-limit cut early."""
    gw = gateway_process(upstream.address)
    await wait_ready(gw.url)
    statuses = {}
    for size in (MAX_BODY - 1, MAX_BODY, MAX_BODY + 1):
        response = await http_request(gw.url, post("/v1/everything", string_body(size)), limit=30)
        check_error(response)
        statuses[size - MAX_BODY] = response.status
    assert statuses == {-1: 200, 0: 200, 1: 413}
    calls_before = len(upstream.calls)

    # A chunked body with no Content-Length that grows past the limit, 16 KiB at a time;
    # after each chunk, look for the answer: bytes sent bound the bytes the gateway read.
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0
    piece = b"x" * 16384
    answer = b""
    try:
        writer.write(post("/v1/everything", b"", chunked=True))
        writer.write(b'%x\r\n{"stringField":"\r\n' % len(b'{"stringField":"'))
        with anyio.fail_after(60):
            while sent <= 2 * MAX_BODY:
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                try:
                    await writer.drain()
                except ConnectionError:
                    break
                sent += len(piece)
                try:
                    async with asyncio.timeout(0.002):
                        answer += await reader.read(65536)
                except TimeoutError:
                    continue
                if answer:
                    break
            while b"\r\n\r\n" not in answer:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                answer += chunk
            head = answer.partition(b"\r\n\r\n")[0]
            assert head.startswith(b"HTTP/1.1 413"), answer[:300]
            # J29/F6: the connection is closed afterwards; the rest is never parsed.
            while await reader.read(65536):
                pass
    finally:
        writer.close()
    assert len(upstream.calls) == calls_before
    overrun = sent - MAX_BODY
    figure(
        "G3",
        max_minus_1=statuses[-1],
        max=statuses[0],
        max_plus_1=statuses[1],
        chunked_sent_past_limit_kib=round(overrun / 1024, 1),
        bound_kib=SLACK // 1024,
    )
    assert overrun <= SLACK


async def test_amplification_of_concurrent_4mib_bodies(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure, size: Size
) -> None:
    """G4: 10 concurrent 4 MiB bodies: peak RSS growth ≤ 10x the bytes in flight."""
    concurrent = size(10, 10)
    gw = gateway_process(upstream.address)
    await wait_ready(gw.url)
    body = int_array_body(MAX_BODY - 64)
    request = post("/v1/everything", body)
    # Warm up once (converters, channel, allocator), then measure.
    assert (await http_request(gw.url, request, limit=60)).status == 200
    baseline = gw.rss_kib()
    gw.reset_peak_rss()
    responses = await asyncio.gather(
        *(http_request(gw.url, request, limit=120) for _ in range(concurrent))
    )
    assert [r.status for r in responses] == [200] * concurrent
    assert len(responses[0].json()["repeatedInt32"]) == (len(body) - 20) // 2 + 1
    peak = gw.peak_rss_kib()
    in_flight = concurrent * len(body)
    growth = (peak - baseline) * 1024
    amplification = growth / in_flight

    # One body alone: CPU time of the gateway process, accepted (J31) and rejected.
    cpu: dict[str, float] = {}
    for name, one, status in (
        ("accepted", body, 200),
        ("rejected", int_array_body(MAX_BODY - 64, last=b'"x"'), 400),
    ):
        before = gw.cpu_seconds()
        response = await http_request(gw.url, post("/v1/everything", one), limit=60)
        cpu[name] = gw.cpu_seconds() - before
        check_error(response)
        assert response.status == status
    figure(
        "G4",
        bodies=concurrent,
        body_mib=round(len(body) / 2**20, 2),
        rss_baseline_mib=round(baseline / 1024, 1),
        peak_growth_mib=round(growth / 2**20, 1),
        amplification=round(amplification, 2),
        bound=10,
        cpu_accepted_s=round(cpu["accepted"], 2),
        cpu_rejected_s=round(cpu["rejected"], 2),
    )
    assert amplification <= 10
    assert growth <= 400 * 10**6
    assert max(cpu.values()) <= 2.0


def nested_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def nested_any(depth: int) -> bytes:
    inner = b'{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}'
    for _ in range(depth):
        inner = b'{"@type":"type.googleapis.com/google.protobuf.Any","value":' + inner + b"}"
    return b'{"anyField":' + inner + b"}"


HOSTILE = [
    ("J10-5000-digits", b'{"int64Field":' + b"9" * 5000 + b"}"),
    ("J10-5000-digit-string", b'{"int64Field":"' + b"9" * 5000 + b'"}'),
    ("J10-5000-digit-double", b'{"doubleField":' + b"9" * 5000 + b"}"),
    ("J12-fullwidth", '{"int32Field":"\uff11\uff12"}'.encode()),
    ("J12-underscore", b'{"int32Field":"1_000"}'),
    ("J12-space", b'{"int32Field":" 12"}'),
    ("J13-10000-arrays", b"[" * 10_000 + b"]" * 10_000),
    ("J13-4000-objects", b'{"":' * 4_000 + b"1" + b"}" * 4_000),
    ("J13-value-10000", b'{"valueField":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    ("J14-struct-70", b'{"structField":' + nested_object(70) + b"}"),
    ("J14-struct-33-lists", b'{"listValue":' + b"[" * 70 + b"]" * 70 + b"}"),
    ("J15-any-in-any-70", nested_any(70)),
    ("J15-any-unknown-type", b'{"anyField":{"@type":"type.googleapis.com/no.Such"}}'),
    ("J15-any-no-type", b'{"anyField":{"value":"1s"}}'),
]


async def test_hostile_json_is_rejected_quickly(
    gateway_process: GatewayFactory, upstream: TestUpstream, figure: Figure
) -> None:
    """G5: pathological JSON (J10, J12-J15) → 400 within 50 ms each (median of 5)."""
    gw = gateway_process(upstream.address)
    await wait_ready(gw.url)
    medians: dict[str, float] = {}
    for name, body in HOSTILE:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response: RawResponse = await http_request(gw.url, post("/v1/everything", body))
            times.append(time.perf_counter() - started)
            check_error(response)
            assert response.status == 400, (name, response.body[:200])
        medians[name] = statistics.median(times)
    worst = max(medians, key=lambda k: medians[k])
    figure(
        "G5",
        cases=len(HOSTILE),
        rejected=len(HOSTILE),
        worst_case=worst,
        worst_median_ms=round(medians[worst] * 1000, 1),
        bound_ms=50,
    )
    assert upstream.calls == []
    assert medians[worst] <= 0.15, medians  # 50 ms with 3x headroom for the shared machine


@pytest.mark.parametrize("depth", [256, 300, 1000])
async def test_regression_json_nested_256_to_1024_levels_is_400(
    gateway_process: GatewayFactory, upstream: TestUpstream, depth: int
) -> None:
    """J13 band: a body nested 256-1024 levels was a 500 with a traceback.

    Cause: ``protojson.loads`` re-serialised the parsed body with ``orjson.dumps`` to
    count its quotes (the duplicate-key check); ``orjson.loads`` accepts 1024 levels
    but ``orjson.dumps`` stops at 255 with ``TypeError: Recursion limit reached``.
    Found by ``test_fuzz.py``.  Fix: ``loads`` checks the depth before re-serialising, and
    falls back to the strict parser on ``orjson.JSONEncodeError``.
    """
    gw = gateway_process(upstream.address)
    response = await http_request(gw.url, post("/v1/everything", b"[" * depth + b"]" * depth))
    check_error(response)
    assert response.status == 400, response.body


def test_bodies_are_what_they_claim() -> None:
    assert len(string_body(1000)) == 1000
    assert json.loads(string_body(1000))["stringField"] == "x" * 982
    assert json.loads(int_array_body(1000))["repeatedInt32"] == [0] * 491
