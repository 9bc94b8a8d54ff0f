"""The real gateway under uvicorn on a loopback port, in front of the test upstream.

Every response a test receives passes through ``check_error_shape``: a non-2xx
answer must be the contract's JSON error object with a status that agrees with
its code (goal G2).  A gateway log record carrying a traceback fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from tests.browser import Chromium
from tests.upstream import TestUpstream
from transcoder.app import TranscoderApp, create_app, load_async
from transcoder.config import load_settings
from transcoder.errors import CODE_BY_NUMBER, HTTP_STATUS
from transcoder.server import GatewayServer, uvicorn_config

# Statuses the contract gives for gateway-side conditions beyond the code table (§5, §9).
SPECIAL_STATUSES = {
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    414: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    431: "RESOURCE_EXHAUSTED",
    502: "INTERNAL",
}


async def check_error_shape(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    assert response.headers["content-type"].startswith("application/json"), response.text
    if response.request.method == "HEAD":
        return  # no body by definition
    body = response.json()
    assert set(body) == {"code", "error", "message", "details"}, body
    code = CODE_BY_NUMBER[body["code"]]
    assert body["error"] == code.name, body
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], list)
    expected = HTTP_STATUS[code]
    if response.status_code != expected:
        assert SPECIAL_STATUSES.get(response.status_code) == code.name, (response.status_code, body)
    assert "Traceback" not in response.text


async def raw_request(url: str, request: bytes, *, read_timeout: float = 5) -> bytes:
    """Send bytes exactly as given (httpx would normalise the path) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        with anyio.fail_after(read_timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
        return head + body
    finally:
        writer.close()


@dataclass
class Gateway:
    app: TranscoderApp
    url: str
    client: httpx.AsyncClient
    server: uvicorn.Server


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(
    descriptor_set: Path, upstream: TestUpstream, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[StartGateway]:
    """``await start_gateway(streaming={"sse_keepalive_seconds": 1}, ...)`` → a running gateway.

    ``wrap=f`` serves ``f(app)`` instead of the gateway app (e.g. to add a page on its origin).
    """
    caplog.set_level(logging.WARNING)
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            *, wrap: Callable[[ASGIApp], ASGIApp] | None = None, **overrides: Any
        ) -> Gateway:
            overrides.setdefault("upstream", {}).setdefault("address", upstream.address)
            overrides.setdefault("descriptors", {}).setdefault("files", [str(descriptor_set)])
            settings = load_settings(None, overrides)
            app = create_app(settings, await load_async(settings))
            sock = socket.create_server(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            # The production configuration (our HTTP protocol and its limits), quieter.
            config = uvicorn_config(
                app if wrap is None else wrap(app),
                settings,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=2,
            )
            server = GatewayServer(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            with anyio.fail_after(5):
                while not server.started:  # uvicorn offers no event to await
                    await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{port}"
            client = httpx.AsyncClient(
                base_url=url, timeout=10, event_hooks={"response": [check_error_shape]}
            )

            async def stop() -> None:
                await client.aclose()
                app.begin_shutdown()
                server.should_exit = True
                with anyio.fail_after(10):
                    await task
                sock.close()

            stack.push_async_callback(stop)
            return Gateway(app, url, client, server)

        yield start
    tracebacks = [
        r for r in caplog.records if r.exc_info and r.name.startswith(("transcoder", "uvicorn"))
    ]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    """The gateway with default settings."""
    return await start_gateway()


@pytest.fixture
async def client(gateway: Gateway) -> httpx.AsyncClient:
    return gateway.client


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """Debian's chromium, one per session; missing: skip, or fail under CI (which installs it)."""
    executable = shutil.which("chromium")
    if executable is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it", pytrace=False)
        pytest.skip(reason)
    browser = Chromium(executable, tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.close()
