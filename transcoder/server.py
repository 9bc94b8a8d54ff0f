"""Run a ``TranscoderApp`` under uvicorn, with the gateway's shutdown order.

On SIGTERM uvicorn stops accepting and waits for open connections; open streams
would hold it until ``timeout_graceful_shutdown``.  ``GatewayServer`` first ends
every open stream with an ``UNAVAILABLE`` terminal frame (contract §1), so
in-flight unary calls are what the grace period waits for.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import tempfile
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from transcoder.access_log import configure as configure_logging
from transcoder.app import TranscoderApp, create_app
from transcoder.config import Settings
from transcoder.errors import ConfigError
from transcoder.metrics import MULTIPROCESS_DIR
from transcoder.protocol import ConnectionLimits, GuardedHttpToolsProtocol

log = logging.getLogger("transcoder")


class GatewayServer(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful stop on SIGTERM (contract §1).

    uvicorn re-raises the signals it captured once it has stopped, which would end
    the process by SIGTERM.  (Open streams are ended by the app itself on SIGTERM:
    ``TranscoderApp._end_streams_on_sigterm``.)
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
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
        access_log=False,  # the gateway writes its own access line (access_log.py)
        # The client address must be the peer's: X-Forwarded-For is appended to, not trusted.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(http.shutdown_grace_seconds),
        http=GuardedHttpToolsProtocol,  # httptools, with the connection limits
        loop="uvloop",  # ~20-25% less CPU per gRPC call than asyncio's loop (python-stack §3)
        ws="none",  # no WebSocket yet (contract §11): an upgrade is answered as HTTP, 400
    )
    options.update(overrides)
    config = uvicorn.Config(app, **options)
    config.connection_limits = ConnectionLimits(  # type: ignore[attr-defined]  # read by the protocol
        header_timeout_seconds=http.header_timeout_seconds,
        max_url_bytes=http.max_url_bytes,
        max_header_bytes=http.max_header_bytes,
        max_headers=http.max_headers,
    )
    return config


WORKER_SETTINGS = "_TRANSCODER_WORKER_SETTINGS"  # no TRANSCODER_ prefix: not a setting


def bind(settings: Settings) -> socket.socket:
    """The listening socket, bound before uvicorn starts: a failure is one line (§1)."""
    host, port = settings.listen.host, settings.listen.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(f"listen: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)  # --workers processes inherit it
    return sock


def serve(settings: Settings) -> None:
    """Listen and serve until SIGINT/SIGTERM; the process exits 0 after a clean stop.

    The port is bound before the app is built, so a port in use is the one line
    on stderr, before anything else is said.
    """
    configure_logging(settings.logging.level, settings.logging.format)
    sock = bind(settings)
    try:
        app = create_app(settings)
        _announce(sock, settings)
        GatewayServer(uvicorn_config(app, settings)).run(sockets=[sock])
    finally:
        sock.close()


def _announce(sock: socket.socket, settings: Settings) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "transcoder running on http://%s:%d (workers: %d)", shown, port, settings.listen.workers
    )


def serve_workers(settings: Settings) -> None:
    """``--workers N``: N processes share one listening socket, each with its own app.

    Each worker builds its app from the same settings (passed down in the
    environment) and its own gRPC channel; uvicorn's supervisor starts, watches and
    stops them.
    """
    configure_logging(settings.logging.level, settings.logging.format)
    os.environ[WORKER_SETTINGS] = settings.model_dump_json()
    if settings.metrics.enabled and MULTIPROCESS_DIR not in os.environ:
        # Workers write their metrics here; a scrape of any one sums them all.
        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="transcoder-metrics-")
    config = uvicorn_config(
        "transcoder.server:worker_app", settings, factory=True, workers=settings.listen.workers
    )
    sock = bind(settings)
    try:
        _announce(sock, settings)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()


def worker_app() -> TranscoderApp:
    """The app of one ``--workers`` process (uvicorn's factory)."""
    settings = Settings.model_validate_json(os.environ[WORKER_SETTINGS])
    configure_logging(settings.logging.level, settings.logging.format)
    return create_app(settings)
