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

import uvicorn

from transcoder.app import TranscoderApp
from transcoder.config import Settings


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


def uvicorn_config(app: TranscoderApp, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.listen.host,
        port=settings.listen.port,
        lifespan="on",
        log_level=settings.logging.level,
        access_log=settings.logging.access_log,
        # The client address must be the peer's: X-Forwarded-For is appended to, not trusted.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.http.shutdown_grace_seconds),
    )


def serve(
    app: TranscoderApp, settings: Settings, sockets: list[socket.socket] | None = None
) -> None:
    """Listen and serve until SIGINT/SIGTERM; the process exits 0 after a clean stop."""
    logging.getLogger("transcoder").setLevel(settings.logging.level.upper())
    server = GatewayServer(uvicorn_config(app, settings), app)
    server.run(sockets=sockets)
