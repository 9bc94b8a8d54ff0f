"""``create_app`` mounted inside a FastAPI application (examples/embedding/app.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import anyio
import httpx
import pytest
import uvicorn

from tests.upstream import TestUpstream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedding" / "app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("embedding_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def embedded(
    descriptor_set: Path, upstream: TestUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TRANSCODER_UPSTREAM__ADDRESS", upstream.address)
    monkeypatch.setenv("TRANSCODER_DESCRIPTORS__FILES", json.dumps([str(descriptor_set)]))
    example = load_example()
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(example.app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    with anyio.fail_after(5):
        while not server.started:
            await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client
    server.should_exit = True
    await task
    sock.close()


async def test_mounted_gateway_serves_beside_the_apps_own_routes(
    embedded: httpx.AsyncClient, upstream: TestUpstream
) -> None:
    assert (await embedded.get("/hello")).json() == {"hello": "world"}
    r = await embedded.get("/grpc/v1/everything/a%2Fb?int32_field=3")
    assert r.status_code == 200
    assert r.json()["stringField"] == "a/b"
    assert (await embedded.get("/grpc/v1/files/x%2Fy/z")).json()["stringField"] == "x%2Fy/z"
    assert (await embedded.get("/grpc/healthz")).status_code == 200
    stream = await embedded.get("/grpc/v1/stream/2", headers={"accept": "text/event-stream"})
    assert stream.text.count("id: ") == 2
    assert stream.text.endswith('event: end\ndata: {"trailers":{}}\n\n')
    missing = await embedded.get("/grpc/v1/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NOT_FOUND"


async def test_client_leaving_cancels_the_call_under_a_plain_uvicorn(
    embedded: httpx.AsyncClient, upstream: TestUpstream
) -> None:
    """Without our HTTP protocol's disconnect hook the gateway watches receive() itself."""
    first = len(upstream.calls)
    host, port = str(embedded.base_url).removeprefix("http://").rstrip("/").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /grpc/v1/everything/slow HTTP/1.1\r\nHost: x\r\n"
        b"Grpc-Metadata-x-test-delay-ms: 20000\r\n\r\n"
    )
    await upstream.wait_for_calls(first + 1)
    writer.transport.abort()
    call = upstream.calls[first]
    with anyio.fail_after(5):
        await call.done.wait()
    assert call.cancelled
