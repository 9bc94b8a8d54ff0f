"""The grpc.aio channel to the upstream: generic unary and server-streaming calls.

One channel per worker, created inside the running loop (a channel made before
the loop starts fails with "attached to a different loop"; python-stack §3).
Calls are generic (``channel.unary_unary(path, ...)``) with the pool's message
classes, so no generated code is needed.

Every ``AioRpcError`` becomes a ``GatewayError`` here, once (``translate``):
details from ``grpc-status-details-bin`` as proto3 JSON ``Any`` objects (unknown
types left out and logged, ``DebugInfo`` only with ``errors.include_debug_info``),
the channel's own texts replaced so no upstream address reaches a client, and a
response over ``upstream.max_receive_message_bytes`` answered 502 (contract §5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from transcoder.errors import GatewayError, code_from_number
from transcoder.http_rules import Route
from transcoder.metadata import response_headers
from transcoder.protojson import Codecs

log = logging.getLogger("transcoder")

DEBUG_INFO_TYPE = "type.googleapis.com/google.rpc.DebugInfo"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
OVERSIZED_MARK = "Received message larger than max"


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    address: str
    max_receive_message_bytes: int
    max_reconnect_backoff_seconds: float
    include_debug_info: bool


def channel_options(options: UpstreamOptions) -> list[tuple[str, Any]]:
    backoff_ms = int(options.max_reconnect_backoff_seconds * 1000)
    return [
        ("grpc.max_receive_message_length", options.max_receive_message_bytes),
        ("grpc.max_send_message_length", -1),
        # Contract §9: reconnect within max_reconnect_backoff_seconds of the upstream's return
        # (gRPC's default backoff grows to 120 s; reliability notes E1).
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ("grpc.initial_reconnect_backoff_ms", min(1000, backoff_ms)),
        ("grpc.min_reconnect_backoff_ms", min(1000, backoff_ms)),
        # A fixed flow-control window bounds what a stalled client can make us buffer
        # (reliability notes E2: ~4.5 MB per stalled stream with BDP probing, ~0.4 MB without).
        ("grpc.http2.bdp_probe", 0),
        ("grpc.enable_retries", 0),
    ]


class Upstream:
    """The channel and one cached multicallable per RPC."""

    def __init__(self, options: UpstreamOptions, codecs: Codecs) -> None:
        self.options = options
        self.codecs = codecs
        self._channel: grpc.aio.Channel | None = None
        self._stream_channel: grpc.aio.Channel | None = None
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable[Message, Message]] = {}
        self._stream: dict[str, grpc.aio.UnaryStreamMultiCallable[Message, Message]] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self.options.address, options=channel_options(self.options)
            )
        return self._channel

    @property
    def stream_channel(self) -> grpc.aio.Channel:
        """Streams get their own connection to the upstream.

        One HTTP/2 connection carries at most the upstream's MAX_CONCURRENT_STREAMS
        calls (often 100); long streams filling it would queue every unary call
        behind them (reliability notes E8).  A local subchannel pool makes this
        channel a second TCP connection instead of sharing the first.
        """
        if self._stream_channel is None:
            self._stream_channel = grpc.aio.insecure_channel(
                self.options.address,
                options=[*channel_options(self.options), ("grpc.use_local_subchannel_pool", 1)],
            )
        return self._stream_channel

    async def close(self) -> None:
        for channel in (self._channel, self._stream_channel):
            if channel is not None:
                await channel.close()
        self._channel = self._stream_channel = None
        self._unary.clear()
        self._stream.clear()

    def ready(self) -> bool:
        """True while the channel is READY; asks it to connect otherwise (for /readyz)."""
        state = self.channel.get_state(try_to_connect=True)
        return state == grpc.ChannelConnectivity.READY

    def unary_call(self, route: Route) -> grpc.aio.UnaryUnaryMultiCallable[Message, Message]:
        callable_ = self._unary.get(route.grpc_path)
        if callable_ is None:
            response_class = self.codecs.codec(route.method.output_type).message_class
            callable_ = self.channel.unary_unary(
                route.grpc_path,
                request_serializer=_serialize,
                response_deserializer=response_class.FromString,
            )
            self._unary[route.grpc_path] = callable_
        return callable_

    def stream_call(self, route: Route) -> grpc.aio.UnaryStreamMultiCallable[Message, Message]:
        callable_ = self._stream.get(route.grpc_path)
        if callable_ is None:
            response_class = self.codecs.codec(route.method.output_type).message_class
            callable_ = self.stream_channel.unary_stream(
                route.grpc_path,
                request_serializer=_serialize,
                response_deserializer=response_class.FromString,
            )
            self._stream[route.grpc_path] = callable_
        return callable_

    def translate(self, error: grpc.aio.AioRpcError) -> GatewayError:
        """The one place an upstream failure becomes the contract's error (§5)."""
        code = error.code()
        message = error.details() or ""
        headers = _header_pairs(error.initial_metadata())
        trailers = _header_pairs(error.trailing_metadata())
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and OVERSIZED_MARK in message:
            return GatewayError(
                grpc.StatusCode.INTERNAL,
                "upstream response exceeds upstream.max_receive_message_bytes "
                f"({self.options.max_receive_message_bytes})",
                http_status=502,
            )
        if self._from_channel(message):
            # The client library's own text names the upstream's address; clients never see it.
            message = _CHANNEL_MESSAGES.get(code, "upstream call failed")
        return GatewayError(
            code,
            message,
            details=self._details(trailers, code),
            raw_headers=response_headers(headers, "grpc-metadata-"),
        )

    def _from_channel(self, message: str) -> bool:
        return self.options.address in message or message.startswith(_CHANNEL_PREFIXES)

    def _details(
        self, trailers: Sequence[tuple[str, str | bytes]], code: grpc.StatusCode
    ) -> list[dict[str, Any]]:
        raw = next((v for k, v in trailers if k == STATUS_DETAILS_KEY), None)
        if not isinstance(raw, bytes):
            return []
        try:
            status = status_pb2.Status.FromString(raw)
        except DecodeError:
            log.warning("upstream sent a grpc-status-details-bin that is not a google.rpc.Status")
            return []
        if code_from_number(status.code) != code:
            log.warning(
                "upstream grpc-status-details-bin disagrees with grpc-status; details dropped"
            )
            return []
        details: list[dict[str, Any]] = []
        for any_message in status.details:
            if any_message.type_url == DEBUG_INFO_TYPE and not self.options.include_debug_info:
                continue
            rendered = self.codecs.any_to_json(any_message)
            if rendered is None:
                log.warning("error detail of unknown type %s left out", any_message.type_url)
                continue
            details.append(rendered)
        return details


_CHANNEL_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "upstream unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "deadline exceeded",
    grpc.StatusCode.CANCELLED: "call cancelled",
}
# How grpc core words the errors it makes up itself (nothing came from the upstream).
_CHANNEL_PREFIXES = (
    "failed to connect",
    "Stream removed",
    "Socket closed",
    "Connection reset",
    "DNS resolution failed",
    "connections to all backends failing",
    "Deadline Exceeded",
    "Locally cancelled",
    "Cancelled",
    "GOAWAY",
)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _header_pairs(metadata: Any) -> list[tuple[str, str | bytes]]:
    if not metadata:
        return []
    return [(str(k), v) for k, v in metadata]
