"""``create_app()``: the gateway's ASGI application.

A raw ASGI dispatcher sits on top: the gateway's own endpoints (``/healthz``,
``/readyz``, ``/openapi.json``, ``/docs``) go to a small FastAPI app, everything
else to ``gateway.Gateway``, which matches routes in its own trie.  Registering
one FastAPI route per RPC would cost ~3x the CPU per request and cannot express
``**``, ``{x=a/*}`` or ``:verb`` (python-stack §4; STYLE §1).  The lifespan owns
the upstream channel.  CORS (contract §8) is Starlette's pure-ASGI middleware,
which leaves streams and disconnects alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from types import FrameType
from typing import Any, TypeVar

import grpc
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from google.protobuf import descriptor_pb2
from starlette.types import ASGIApp, Receive, Scope, Send

from transcoder.access_log import AccessLog
from transcoder.config import Settings
from transcoder.cors import GatewayCORSMiddleware
from transcoder.descriptors import Descriptors, load_descriptors
from transcoder.docs import ASSETS_PREFIX, DOCS_URL, docs_routes, openapi_route
from transcoder.errors import ConfigError, GatewayError, error_body
from transcoder.gateway import Gateway, GatewayOptions
from transcoder.http_rules import RoutePlan, build_plan
from transcoder.metrics import Metrics
from transcoder.openapi import openapi_document
from transcoder.protojson import Codecs, JsonOptions
from transcoder.query import QueryOptions
from transcoder.reflection import fetch_file_descriptors
from transcoder.request_message import BindOptions
from transcoder.streaming import StreamOptions, StreamRegistry
from transcoder.upstream import Upstream, UpstreamOptions

log = logging.getLogger("transcoder")

_T = TypeVar("_T")

OWN_PATHS = frozenset(("/healthz", "/readyz"))
METRICS_PATH = "/metrics"  # only while metrics.enabled
# Only while docs.enabled; otherwise these paths are the gateway's like any other.
DOCS_PATHS = frozenset(("/openapi.json", DOCS_URL))


def load(settings: Settings) -> Descriptors:
    """The descriptors the settings name: files, plus the upstream's reflection service.

    Called inside a running event loop, reflection runs on a helper thread; use
    ``await load_async(settings)`` there instead when the upstream is served by
    that same loop (a test or an embedding application).
    """
    return _run_sync(load_async(settings))


async def load_async(settings: Settings) -> Descriptors:
    reflected: list[descriptor_pb2.FileDescriptorProto] = []
    if settings.descriptors.reflection:
        address = settings.upstream.address
        if not address:
            raise ConfigError("descriptors.reflection needs upstream.address")
        async with grpc.aio.insecure_channel(address) as channel:
            reflected = await fetch_file_descriptors(channel, target=address)
    if not settings.descriptors.files and not reflected:
        raise ConfigError("descriptors.files: give --descriptor-set FILE or --reflection")
    return load_descriptors(settings.descriptors.files, reflected)


def _run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a startup coroutine whether or not an event loop is already running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class TranscoderApp:
    """The ASGI application ``create_app`` returns (wrapped in CORS when configured)."""

    def __init__(self, settings: Settings, descriptors: Descriptors) -> None:
        self.settings = settings
        self.descriptors = descriptors
        self.plan: RoutePlan = build_plan(
            descriptors,
            services=settings.routes.services,
            unannotated=settings.routes.unannotated,
        )
        j = settings.json
        self.codecs = Codecs(
            descriptors.pool,
            JsonOptions(
                use_proto_names=j.use_proto_names,
                emit_unpopulated=j.emit_unpopulated,
                use_enum_numbers=j.use_enum_numbers,
                ignore_unknown_fields=j.ignore_unknown_fields,
                max_depth=j.max_depth,
            ),
        )
        for route in self.plan.routes:  # build every converter now, not on the first request
            self.codecs.codec(route.method.input_type)
            self.codecs.codec(route.method.output_type)
        u = settings.upstream
        self.upstream = Upstream(
            UpstreamOptions(
                address=u.address or "",
                max_receive_message_bytes=u.max_receive_message_bytes,
                max_reconnect_backoff_seconds=u.max_reconnect_backoff_seconds,
                include_debug_info=settings.errors.include_debug_info,
            ),
            self.codecs,
        )
        self.streams = StreamRegistry(settings.streaming.max_concurrent_streams)
        self.metrics = Metrics() if settings.metrics.enabled else None
        self.gateway = Gateway(
            self.plan,
            self.codecs,
            self.upstream,
            gateway_options(settings),
            self.streams,
            metrics=self.metrics,
            access_log=AccessLog(settings.logging.format) if settings.logging.access_log else None,
        )
        self.document: dict[str, Any] | None = None  # the OpenAPI document, built once
        if settings.docs.enabled:
            self.document = openapi_document(self.plan, descriptors, settings)
        self.own = self._own_endpoints()
        self.handler: ASGIApp = self._dispatch
        if settings.cors.allow_origins:
            self.handler = _cors(self._dispatch, settings, self.plan)

    def _own_endpoints(self) -> FastAPI:
        api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @api.api_route("/healthz", methods=["GET", "HEAD"])
        async def healthz() -> JSONResponse:
            return JSONResponse({"status": "ok"})

        @api.api_route("/readyz", methods=["GET", "HEAD"])
        async def readyz() -> JSONResponse:
            if self.upstream.ready():
                return JSONResponse({"status": "ready"})
            error = GatewayError.unavailable("the upstream channel is not ready")
            return JSONResponse(error_body(error), status_code=error.http_status)

        if self.metrics is not None:
            metrics = self.metrics

            @api.get("/metrics")
            async def prometheus() -> Response:
                body, content_type = metrics.render()
                return Response(body, media_type=content_type)

        if self.document is not None:
            openapi_route(api, self.document)
            docs_routes(api, "/openapi.json")

        return api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.handler(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            root_path = scope.get("root_path")
            if root_path and path.startswith(root_path):
                path = path[len(root_path) :]
            if scope["method"] in ("GET", "HEAD") and (
                path in OWN_PATHS
                or (path == METRICS_PATH and self.metrics is not None)
                or (
                    self.settings.docs.enabled
                    and (path in DOCS_PATHS or path.startswith(ASSETS_PREFIX))
                )
            ):
                await self.own(scope, receive, send)
            else:
                await self.gateway(scope, receive, send)
        # websocket: not served (contract §11 plans bidi over WebSocket); the server refuses it.

    async def _lifespan(
        self,
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        _ = self.upstream.channel  # created inside the running loop, per worker
        self._end_streams_on_sigterm()

    async def shutdown(self) -> None:
        self.streams.shutdown()
        await self.upstream.close()
        if self.gateway.access_log is not None:
            self.gateway.access_log.flush()

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Startup and shutdown for an application that mounts this one.

        Mounted apps get no ASGI lifespan events; enter this in the outer app's
        lifespan (see ``examples/embedding/app.py``).  Without it the channel is
        made on the first request and never closed.
        """
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    def begin_shutdown(self) -> None:
        """SIGTERM: end open streams with an UNAVAILABLE frame before connections drain."""
        self.streams.shutdown()

    def _end_streams_on_sigterm(self) -> None:
        """Run ``begin_shutdown`` on SIGTERM, then whatever the server does on it.

        The server (uvicorn, or each ``--workers`` process) drains connections on
        SIGTERM and would wait for open streams until its grace period ends; contract
        §1 wants them ended at once with a terminal frame.  Chaining the handler the
        server installed works the same in one process and in every worker.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return  # the server has its own way to learn of SIGTERM; leave it alone
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.begin_shutdown)
            previous(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


def gateway_options(settings: Settings) -> GatewayOptions:
    s = settings
    return GatewayOptions(
        max_request_body_bytes=s.http.max_request_body_bytes,
        max_url_bytes=s.http.max_url_bytes,
        max_header_bytes=s.http.max_header_bytes,
        max_headers=s.http.max_headers,
        body_timeout_seconds=s.http.body_timeout_seconds,
        unary_timeout_seconds=s.upstream.timeout_seconds,
        stream_timeout_seconds=s.upstream.stream_timeout_seconds,
        max_timeout_seconds=s.upstream.max_timeout_seconds,
        forward_headers=frozenset(h.lower() for h in s.forward_headers),
        bind=BindOptions(
            query=QueryOptions(
                case_insensitive_enums=s.request.case_insensitive_enums,
                ignore_unknown=s.request.ignore_unknown_query_parameters,
                ignored=frozenset(s.request.ignored_query_parameters),
            ),
            max_depth=s.json.max_depth,
            patch_field_mask=s.request.patch_field_mask,
        ),
        stream=StreamOptions(
            sse_keepalive_seconds=s.streaming.sse_keepalive_seconds,
            ndjson_keepalive_seconds=s.streaming.ndjson_keepalive_seconds,
            sse_error_event=s.streaming.sse_error_event,
            sse_retry_ms=s.streaming.sse_retry_ms,
            ndjson_envelope=s.streaming.ndjson_envelope,
            send_timeout_seconds=s.streaming.send_timeout_seconds,
        ),
    )


def create_app(
    settings: Settings | None = None, descriptors: Descriptors | None = None
) -> TranscoderApp:
    """The gateway as an ASGI app, for uvicorn or for mounting in another app.

    ``descriptors`` defaults to what ``settings.descriptors`` names (files, and
    the upstream's reflection service when enabled).  Raises ``ConfigError``.
    """
    settings = settings or Settings()
    return TranscoderApp(settings, descriptors or load(settings))


def _cors(app: ASGIApp, settings: Settings, plan: RoutePlan) -> ASGIApp:
    cors = settings.cors
    methods = sorted({r.http_method for r in plan.routes if r.http_method != "*"})
    return GatewayCORSMiddleware(
        app,
        allow_origins=cors.allow_origins,
        allow_methods=methods or ["*"],
        allow_headers=cors.allow_headers,
        allow_credentials=cors.allow_credentials,
        expose_headers=[*cors.expose_headers, "x-request-id"],
        max_age=cors.max_age_seconds,
    )
