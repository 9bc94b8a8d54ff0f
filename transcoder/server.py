"""Run a ``TranscoderApp`` under uvicorn, with the gateway's shutdown order.

On SIGTERM uvicorn stops accepting and waits for open connections; open streams
would hold it until ``timeout_graceful_shutdown``.  ``GatewayServer`` first ends
every open stream with an ``UNAVAILABLE`` terminal frame (contract §1), so
in-flight unary calls are what the grace period waits for.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn

from transcoder.app import TranscoderApp
from transcoder.config import Settings
from transcoder.protocol import guarded_protocol


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: TranscoderApp) -> None:
        super().__init__(config)
        self.transcoder = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.transcoder.begin_shutdown()
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            # uvicorn re-raises captured signals after a graceful stop, which would end
            # the process by SIGTERM; contract §1 wants exit status 0 after a clean stop.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list) and sig in captured:
                captured.remove(sig)


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for the gateway: our HTTP protocol, no proxy-header trust."""
    http = settings.http
    options: dict[str, Any] = dict(
        host=settings.listen.host,
        port=settings.listen.port,
        lifespan="on",
        log_level=settings.logging.level,
        access_log=settings.logging.access_log,
        # The client address must be the peer's: X-Forwarded-For is appended to, not trusted.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(http.shutdown_grace_seconds),
        http=guarded_protocol(
            header_timeout_seconds=http.header_timeout_seconds,
            max_url_bytes=http.max_url_bytes,
            max_header_bytes=http.max_header_bytes,
            max_headers=http.max_headers,
        ),
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(
    app: TranscoderApp, settings: Settings, sockets: list[socket.socket] | None = None
) -> None:
    """Listen and serve until SIGINT/SIGTERM; the process exits 0 after a clean stop."""
    logging.getLogger("transcoder").setLevel(settings.logging.level.upper())
    server = GatewayServer(uvicorn_config(app, settings), app)
    server.run(sockets=sockets)
