"""The ASGI endpoint that walks one transcoded request through the modules.

::

    match route ─ 404 / 405 + Allow
    read body (≤ http.max_request_body_bytes, 413)
    build the input message (path > body > query; 400 naming the field)
    headers → metadata, deadline (Grpc-Timeout or the default)
    unary: call, then JSON (or HttpBody) with Grpc-Metadata-* / Grpc-Trailer-*
    stream: negotiate NDJSON / SSE from Accept, then streaming.Stream

Errors before the response commits are rendered once by ``errors.render``;
after it, streams end with an error frame.  Any other exception is a bug:
logged with its traceback and answered once as INTERNAL, without its text.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.protobuf.message import Message

from transcoder.access_log import AccessLog
from transcoder.errors import GatewayError, render
from transcoder.http_rules import MethodKind, Route, RoutePlan
from transcoder.metadata import (
    content_type_header,
    deadline,
    outgoing_metadata,
    response_headers,
)
from transcoder.metrics import Exchange, Metrics
from transcoder.negotiation import choose
from transcoder.protocol import ABORT_EXTENSION, DISCONNECT_EXTENSION, Disconnect
from transcoder.protojson import Codecs
from transcoder.request_message import BindOptions, RequestParts, build_request
from transcoder.routing import MethodMismatch, RouteMatch
from transcoder.streaming import Stream, StreamOptions, StreamRegistry
from transcoder.upstream import Upstream

log = logging.getLogger("transcoder")

Scope = MutableMapping[str, Any]
Message_ = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message_]]
Send = Callable[[Message_], Awaitable[None]]

NO_BODY_STATUSES = frozenset((204, 205, 304))


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    max_request_body_bytes: int
    max_url_bytes: int
    max_header_bytes: int
    max_headers: int
    body_timeout_seconds: float
    unary_timeout_seconds: float  # 0 = none
    stream_timeout_seconds: float  # 0 = none
    max_timeout_seconds: float
    forward_headers: frozenset[str]
    bind: BindOptions
    stream: StreamOptions


class Gateway:
    def __init__(
        self,
        plan: RoutePlan,
        codecs: Codecs,
        upstream: Upstream,
        options: GatewayOptions,
        streams: StreamRegistry,
        *,
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.table = plan.table
        self.codecs = codecs
        self.upstream = upstream
        self.options = options
        self.streams = streams
        # Request ids need to be unique, not secret: a generator seeded per app (so per
        # worker) instead of os.urandom, a system call on every request.
        self._ids = random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        exchange = Exchange(
            scope["method"],
            request_id=request_id or f"{self._ids.getrandbits(64):016x}",
            request_id_generated=not request_id,
        )
        send = _observed(send, exchange)
        try:
            await self._handle(scope, receive, send, exchange)
        except GatewayError as error:
            await send_error(send, error)
        except Exception:
            log.exception("unexpected error while handling %s %s", scope["method"], scope["path"])
            await send_error(send, GatewayError.internal())
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.record(exchange, elapsed)
            if self.access_log is not None:
                self.access_log.write(exchange, scope["path"], elapsed)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, exchange: Exchange) -> None:
        options = self.options
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if root_path := scope.get("root_path"):
            # Mounted under a prefix (Starlette's Mount, uvicorn --root-path): the
            # routes start after it; the ASGI scope keeps the full path.
            prefix = root_path.encode()
            if raw_path.startswith(prefix):
                raw_path = raw_path[len(prefix) :] or b"/"
        query: bytes = scope.get("query_string", b"")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        self._check_request_size(raw_path, query, headers)

        match = self.table.match(scope["method"], raw_path.decode("latin-1"))
        if match is None:
            raise GatewayError.not_found("no route matches this path")
        if isinstance(match, MethodMismatch):
            raise GatewayError.method_not_allowed(scope["method"], match.allow)
        route = match.target
        exchange.route = route.label
        exchange.rpc = route.rpc_name

        body = await read_body(receive, headers, options)
        exchange.bytes_in = len(body)
        content_type = content_encoding = None
        accept: list[str] = []
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-encoding":
                content_encoding = value.decode("latin-1")
            elif name == b"accept":
                accept.append(value.decode("latin-1"))
            elif name == b"upgrade" and b"websocket" in value.lower():
                # Contract §11: bidirectional methods over WebSocket are planned, not built.
                raise GatewayError.invalid_argument(
                    "upgrade", "WebSocket is not served yet; use HTTP (contract §11)"
                )
        request = build_request(
            match,
            RequestParts(query, body, content_type, content_encoding),
            self.codecs,
            options.bind,
        )
        client = scope.get("client")
        metadata = outgoing_metadata(
            headers, forward=options.forward_headers, client_host=client[0] if client else None
        )
        if exchange.request_id_generated and "x-request-id" in options.forward_headers:
            metadata = (*metadata, ("x-request-id", exchange.request_id))
        if route.kind is MethodKind.UNARY:
            timeout = deadline(
                headers,
                default_seconds=options.unary_timeout_seconds,
                max_seconds=options.max_timeout_seconds,
            )
            _check_not_expired(timeout)
            disconnect = scope.get("extensions", {}).get(DISCONNECT_EXTENSION)
            await self._unary(
                match, request, metadata, timeout, receive, send, exchange, disconnect
            )
        else:
            timeout = deadline(
                headers,
                default_seconds=options.stream_timeout_seconds,
                max_seconds=options.max_timeout_seconds,
            )
            _check_not_expired(timeout)
            await self._stream(
                route, request, metadata, timeout, accept, receive, send, exchange, scope
            )

    def _check_request_size(
        self, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        options = self.options
        if len(raw_path) + len(query) > options.max_url_bytes:
            raise GatewayError.too_large("the URL", options.max_url_bytes, http_status=414)
        if len(headers) > options.max_headers:
            raise GatewayError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {options.max_headers} request headers",
                http_status=431,
            )
        if sum(len(k) + len(v) for k, v in headers) > options.max_header_bytes:
            raise GatewayError.too_large(
                "the request headers", options.max_header_bytes, http_status=431
            )

    async def _unary(
        self,
        match: RouteMatch[Route],
        request: Message,
        metadata: Any,
        deadline_s: float | None,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        disconnect: Disconnect | None,
    ) -> None:
        route = match.target
        started = time.perf_counter()
        call = self.upstream.unary_call(route)(request, metadata=metadata, timeout=deadline_s)
        # Contract §6: a client that goes away cancels its upstream call, unary calls too.
        watcher = _CancelOnDisconnect(call, receive, disconnect)
        try:
            response = await call
            upstream_headers = await call.initial_metadata()
            trailers = await call.trailing_metadata()
            exchange.code = "OK"
        except asyncio.CancelledError:
            exchange.code = "CANCELLED"
            if not watcher.fired:
                raise  # cancelled from outside (server shutdown), not by the client leaving
            return  # the client left; nobody to answer
        except grpc.aio.AioRpcError as exc:
            exchange.code = exc.code().name
            if watcher.fired:
                return
            raise self.upstream.translate(exc) from None
        finally:
            watcher.close()
            exchange.upstream_seconds = time.perf_counter() - started
        await self._send_reply(route, response, upstream_headers, trailers, send)

    async def _send_reply(
        self, route: Route, response: Message, upstream_headers: Any, trailers: Any, send: Send
    ) -> None:
        status = 200
        for key, value in upstream_headers or ():
            if key == "x-http-code":
                status = _http_code(value)
        if route.response_is_http_body:
            content_type = content_type_header(response.content_type)  # type: ignore[attr-defined]
            body: bytes = response.data  # type: ignore[attr-defined]
        else:
            codec = self.codecs.codec(route.method.output_type)
            content_type = b"application/json"
            if route.response_body_field is not None:
                body = orjson.dumps(codec.encode_field(response, route.response_body_field.name))
            else:
                body = codec.dumps(response)
        headers = [(b"content-type", content_type)]
        if status in NO_BODY_STATUSES:
            body = b""
        else:
            headers.append((b"content-length", str(len(body)).encode()))
        headers.extend(response_headers(upstream_headers or (), "grpc-metadata-"))
        headers.extend(response_headers(trailers or (), "grpc-trailer-"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stream(
        self,
        route: Route,
        request: Message,
        metadata: Any,
        deadline_s: float | None,
        accept: list[str],
        receive: Receive,
        send: Send,
        exchange: Exchange,
        scope: Scope,
    ) -> None:
        self.streams.admit()
        started = time.perf_counter()
        call = self.upstream.stream_call(route)(request, metadata=metadata, timeout=deadline_s)
        stream = Stream(
            send=send,
            receive=receive,
            call=call,
            fmt=None if route.response_is_http_body else choose(accept),
            codec=self.codecs.codec(route.method.output_type),
            response_body_field=route.response_body_field,
            options=self.options.stream,
            translate=self.upstream.translate,
            abort=scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort"),
        )
        self.streams.open.add(stream)
        if self.metrics is not None:
            self.metrics.open_streams.inc()
        try:
            await stream.run()
        finally:
            self.streams.open.discard(stream)
            if self.metrics is not None:
                self.metrics.open_streams.dec()
            exchange.code = stream.final_code
            exchange.upstream_seconds = time.perf_counter() - started
            exchange.messages = stream.messages_sent
            exchange.keepalives = stream.keepalives_sent


def _check_not_expired(timeout: float | None) -> None:
    """``Grpc-Timeout: 0S`` is already over: 504 without calling (grpc rounds 0 up to 1 ms)."""
    if timeout is not None and timeout <= 0:
        raise GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline has already passed")


def _observed(send: Send, exchange: Exchange) -> Send:
    """``send`` that notes the status and bytes, and answers with the request id."""
    request_id = exchange.request_id.encode()

    async def observed(message: Message_) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            message["headers"] = [*message["headers"], (b"x-request-id", request_id)]
        else:
            exchange.bytes_out += len(message.get("body", b""))
        await send(message)

    return observed


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else "" (then one is made)."""
    for name, value in headers:
        if name == b"x-request-id":
            if 0 < len(value) <= 128 and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return ""


class _CancelOnDisconnect:
    """Cancels a call when its client goes away.

    Through the connection's ``Disconnect`` hook when our protocol serves the
    request; under another ASGI server, by a task waiting for ``http.disconnect``.
    """

    __slots__ = ("_call", "_disconnect", "_task", "fired")

    def __init__(
        self, call: grpc.aio.Call, receive: Receive, disconnect: Disconnect | None
    ) -> None:
        self._call = call
        self._disconnect = disconnect
        self._task: asyncio.Future[None] | None = None
        self.fired = False
        if disconnect is None:
            self._task = asyncio.ensure_future(self._watch(receive))
        elif disconnect.lost:
            self()
        else:
            disconnect.hooks.add(self)

    def __call__(self) -> None:
        self.fired = True
        self._call.cancel()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self()

    def close(self) -> None:
        if self._disconnect is not None:
            self._disconnect.hooks.discard(self)
        if self._task is not None:
            self._task.cancel()


def _http_code(value: str | bytes) -> int:
    """Contract §5: ``x-http-code: NNN`` (200-599) on a successful unary call sets the status."""
    try:
        code = int(value)
    except (TypeError, ValueError):
        return 200
    return code if 200 <= code <= 599 else 200


async def read_body(
    receive: Receive, headers: list[tuple[bytes, bytes]], options: GatewayOptions
) -> bytes:
    """The request body, refusing more than ``http.max_request_body_bytes`` actually read.

    ``Content-Length`` over the limit fails at once; otherwise the bytes received are
    counted (chunked bodies too).  A body that does not arrive within
    ``http.body_timeout_seconds`` is 408.
    """
    limit = options.max_request_body_bytes
    expects_body = False
    for name, value in headers:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise GatewayError.invalid_argument("content-length", "not a number") from None
            if declared > limit:
                raise GatewayError.too_large("the request body", limit)
            expects_body = declared > 0
        elif name == b"transfer-encoding":
            expects_body = True
    if not expects_body:
        message = await receive()  # no body: uvicorn answers at once
        return bytes(message.get("body", b""))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(options.body_timeout_seconds):
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise GatewayError(grpc.StatusCode.CANCELLED, "the client went away")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise GatewayError.too_large("the request body", limit)
                chunks.append(chunk)
                more = message.get("more_body", False)
    except TimeoutError:
        raise GatewayError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the request body did not arrive within {options.body_timeout_seconds}s",
            http_status=408,
        ) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_error(send: Send, error: GatewayError) -> None:
    status, headers, body = render(error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
