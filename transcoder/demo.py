"""``transcoder demo``: the bundled bookstore upstream and the gateway in one process.

The example lives in ``examples/bookstore`` (shipped inside the wheel as
``transcoder/_examples/bookstore``).  The demo also serves ``/``: a page that
opens an ``EventSource`` on the streaming method and shows events, keepalives,
the terminal error or the end as they arrive.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

from transcoder.access_log import configure as configure_logging
from transcoder.app import TranscoderApp, create_app
from transcoder.config import load_settings
from transcoder.errors import ConfigError
from transcoder.server import GatewayServer, uvicorn_config

DEMO_KEEPALIVE_SECONDS = 3  # short, so the page shows keepalives within seconds


def example_dir() -> Path:
    """The bookstore example: inside the installed wheel, or in the source checkout."""
    shipped = Path(str(files("transcoder"))) / "_examples" / "bookstore"
    if (shipped / "server.py").exists():
        return shipped
    checkout = Path(__file__).resolve().parent.parent / "examples" / "bookstore"
    if (checkout / "server.py").exists():
        return checkout
    raise ConfigError("the bundled example is missing from this installation")


def _load_example_server(directory: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "transcoder_demo_bookstore", directory / "server.py"
    )
    if spec is None or spec.loader is None:
        raise ConfigError(f"{directory / 'server.py'}: cannot load the example server")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DemoApp:
    """The gateway plus the demo page at ``/``."""

    def __init__(self, gateway: TranscoderApp) -> None:
        self.gateway = gateway
        self.page = (files("transcoder") / "static" / "demo.html").read_bytes()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "GET":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-length", str(len(self.page)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self.page})
            return
        await self.gateway(scope, receive, send)


def curl_lines(base: str) -> list[str]:
    return [
        f"curl -s {base}/v1/shelves",
        f"curl -s {base}/v1/shelves/1/books/1",
        f"curl -s {base}/v1/shelves/1/books -H 'Content-Type: application/json' "
        + """-d '{"title": "Dune", "author": "Frank Herbert"}'""",
        f"curl -s -i {base}/v1/shelves/42                 # 404 NOT_FOUND, with details",
        f"curl -s -N '{base}/v1/shelves/1/watch?count=5'   # NDJSON, one line per event",
        f"curl -s -N -H 'Accept: text/event-stream' "
        f"'{base}/v1/shelves/1/watch?count=4&fail_after=2'",
        f"open {base}/                                    # EventSource in a browser",
    ]


async def _run(host: str, port: int) -> None:
    directory = example_dir()
    example = _load_example_server(directory)
    # Bind first, so that --port 0 works and the lines printed name the real port.
    sock = socket.create_server((host, port))
    port = sock.getsockname()[1]
    upstream_server, upstream_address = await example.start_server("127.0.0.1:0")
    try:
        settings = load_settings(
            None,
            {
                "listen": {"host": host, "port": port},
                "upstream": {"address": upstream_address},
                "descriptors": {"files": [str(directory / "bookstore.pb")]},
                "streaming": {"sse_keepalive_seconds": DEMO_KEEPALIVE_SECONDS},
            },
        )
        configure_logging(settings.logging.level, settings.logging.format)
        app = create_app(settings)
        server = GatewayServer(uvicorn_config(DemoApp(app), settings))
        base = f"http://{host}:{port}"
        print(f"transcoder demo: bookstore upstream on {upstream_address}, gateway on {base}")
        print("Try:")
        for line in curl_lines(base):
            print(f"  {line}")
        print("Ctrl-C stops it.", flush=True)
        await server.serve(sockets=[sock])
    finally:
        await upstream_server.stop(None)
        sock.close()


def run_demo(host: str, port: int) -> int:
    try:
        asyncio.run(_run(host, port))
    except OSError as exc:
        raise ConfigError(f"listen: cannot listen on {host}:{port}: {exc.strerror}") from None
    return 0
