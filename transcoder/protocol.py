"""uvicorn's httptools protocol with the gateway's connection-level limits (contract §9).

uvicorn has no timeout for receiving a request's headers, and its httptools
parser buffers any amount of header data (reliability notes E4: a 1 MB header
and 20,000 headers were accepted; a client sending a header line every 4 s held
its connection indefinitely).  This subclass adds, per connection:

- ``http.header_timeout_seconds``: from the connection's first moment, and from
  the first byte of each later request, the headers must be complete in time,
  else the connection is closed;
- ``http.max_url_bytes`` → 414, ``http.max_header_bytes`` /
  ``http.max_headers`` → 431, answered while parsing, before the headers are
  buffered whole, as the contract's JSON error, then the connection closes.

The app checks the same limits again (``gateway.py``) so they hold under any
ASGI server when the gateway is embedded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from transcoder.errors import GatewayError, render

ABORT_EXTENSION = "transcoder.abort"  # scope["extensions"]: {"abort": transport.abort}
DISCONNECT_EXTENSION = "transcoder.disconnect"  # scope["extensions"]: the connection's Disconnect
_LINGER_SECONDS = 2.0  # after a refusal, how long what the client still sends is dropped
_REQUEST_LINE_SLACK = 1024  # method, version and line ends beside the URL and headers
_REASONS = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class Disconnect:
    """What to run when the client's connection is lost.

    The gateway registers ``call.cancel`` here for a unary call, instead of a task
    per call waiting on ``receive()`` for ``http.disconnect``: creating and
    cancelling that task costs ~7 µs of a ~220 µs request (development machine).
    Other ASGI servers offer no such hook; the gateway then keeps the task.
    """

    __slots__ = ("hooks", "lost")

    def __init__(self) -> None:
        self.hooks: set[Callable[[], None]] = set()
        self.lost = False

    def fire(self) -> None:
        self.lost = True
        hooks = list(self.hooks)
        self.hooks.clear()
        for hook in hooks:
            hook()


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_seconds: float = 10.0
    max_url_bytes: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Reads its limits from ``config.connection_limits`` (see ``server.uvicorn_config``).

    A module-level class with the limits on the config, so that both survive the
    pickling that starts ``--workers`` processes.
    """

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits: ConnectionLimits = getattr(config, "connection_limits", None) or ConnectionLimits()
        self.header_timeout_seconds = limits.header_timeout_seconds
        self.max_url_bytes = limits.max_url_bytes
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = True  # the connection's first bytes are a request's head
        self._head_bytes = 0  # bytes received while the current head is incomplete
        self._heads_done = 0  # heads completed during the current data_received
        self._url_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._refusal: GatewayError | None = None
        self._disconnect = Disconnect()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # answered; what else arrives is read and dropped until the close
        counting = self._in_headers
        self._heads_done = 0
        super().data_received(data)
        # httptools reports a header only once it is complete, so an endless header line
        # never reaches on_header: count what arrives while a head stays unfinished.  A
        # read in which a head completed is not counted: the rest of it is body (and the
        # next request's head starts over), however large.
        if counting and self._in_headers and not self._heads_done and self._refusal is None:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_url_bytes + self.max_header_bytes + _REQUEST_LINE_SLACK:
                self._refuse(
                    GatewayError.too_large(
                        "the request headers", self.max_header_bytes, http_status=431
                    )
                )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disconnect.fire()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._url_bytes = self._header_bytes = self._header_count = 0
        if self._header_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.max_url_bytes:
            self._refuse(GatewayError.too_large("the URL", self.max_url_bytes, http_status=414))
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > self.max_headers:
            self._refuse(
                GatewayError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"more than {self.max_headers} request headers",
                    http_status=431,
                )
            )
            return
        if self._header_bytes > self.max_header_bytes:
            self._refuse(
                GatewayError.too_large(
                    "the request headers", self.max_header_bytes, http_status=431
                )
            )
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # A stream that drops a client which stopped reading must abort the connection:
        # close() would wait forever to flush what the client never reads.
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[ABORT_EXTENSION] = {"abort": self.transport.abort}
        extensions[DISCONNECT_EXTENSION] = self._disconnect
        self._in_headers = False
        self._heads_done += 1
        self._head_bytes = 0
        self._disarm()
        if self._refusal is None:
            super().on_headers_complete()

    # After a refusal the parser still reports the rest of what it was fed.
    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_headers = True  # what follows on this connection is the next request's head
        if self._refusal is None:
            super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """The parser refused the request (bad framing, bad header bytes): JSON, not text."""
        self._refusal = None  # a parse error ends the connection whatever came before
        self._refuse(GatewayError.invalid_argument("request", "malformed HTTP request"))

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and (self._in_headers or self.cycle is None):
            self.transport.close()

    def _refuse(self, error: GatewayError) -> None:
        """Answer before the app, then close gracefully.

        The client is usually still sending (a megabyte of header): closing at once
        would make the kernel answer its next bytes with a reset, which can destroy
        the answer before the client reads it.  So: half-close, drop what still
        arrives, and close for good after a short linger.
        """
        if self._refusal is not None:
            return
        self._refusal = error
        self._disarm()
        status, headers, body = render(error)
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        lines.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(lines) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)
