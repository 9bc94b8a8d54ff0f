"""The test upstream: a real ``grpc.aio`` server that does what the request asks.

It serves ``transcoder.testing.v1.Echo`` and ``Other`` (``protos/testing/v1``)
with generic handlers over message classes built from the session pool (no
generated stubs), plus server reflection (v1alpha) over the same pool.

Every unary method echoes its request (a method returning ``Empty`` answers
``Empty``), except ``Download``, which answers an ``HttpBody`` whose data is
``bytes_field`` (or ``string_field`` encoded when that is empty) and whose
content type is ``optional_string`` when set, else ``text/plain;
charset=utf-8``.  ``Collect`` answers the merge of the messages it received;
``Chat`` echoes each message.  ``Stream`` follows its ``StreamRequest``: wait
``initial_delay_ms``; with ``headers_then_stall``, send response headers and
wait until cancelled; else send ``count`` items (0: without end), index 0 up,
``payload_size`` x's each, ``interval_ms`` apart.  With ``fail_code`` it sends
``fail_after`` items (fewer if ``count`` is smaller), then, ``interval_ms``
later, fails with ``fail_code`` and ``fail_message`` (plus a ``BadRequest``
detail with ``fail_with_details``).

Request metadata steers every method, in this order:

1. ``x-test-delay-ms: N``: sleep N ms.
2. response headers, sent at once when any is asked for:
   ``x-test-header-<k>: v`` sends ``<k>: v`` (a ``-bin`` key arrives as bytes
   and is sent as those bytes); ``x-test-http-code: NNN`` sends
   ``x-http-code: NNN``; ``x-test-echo-metadata: 1`` sends every received key
   back as ``x-echo-<key>``.
3. ``x-test-trailer-<k>: v``: trailing metadata ``<k>: v`` (on failures too).
4. ``x-test-hang: 1`` (any value but 0): never answer (until cancelled).
5. ``x-test-code: N`` (``x-test-message``: its message) fails with code N (a
   value outside 1-16 fails with UNKNOWN); ``x-test-details: KIND`` attaches
   ``grpc-status-details-bin`` (alone, it implies code 3 INVALID_ARGUMENT):
   ``bad-request``, ``debug-info``, ``unknown-type`` (an ``Any`` of type
   ``type.googleapis.com/nowhere.Unknown``), ``garbage`` (bytes that are not a
   ``google.rpc.Status``) or ``mixed`` (the first three together).
6. the method body; ``x-test-response-bytes: N`` then pads a unary response's
   ``string_field`` (``HttpBody.data`` for ``Download``) to N bytes.

A steering value that is not an integer where one is expected fails the call
with INVALID_ARGUMENT naming the key.  Every call is recorded as a
``RecordedCall`` in ``TestUpstream.calls``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection

from transcoder.descriptors import message_class

PACKAGE = "transcoder.testing.v1"
SERVICES = (f"{PACKAGE}.Echo", f"{PACKAGE}.Other")

HEADER = "x-test-header-"
TRAILER = "x-test-trailer-"
DETAILS_KEY = "grpc-status-details-bin"
UNKNOWN_TYPE_URL = "type.googleapis.com/nowhere.Unknown"
# Not a google.rpc.Status: 0xff opens a varint that never ends.
GARBAGE_DETAILS = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffgarbage"
DETAIL_KINDS = ("bad-request", "debug-info", "unknown-type", "garbage", "mixed")
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"

Context = grpc.aio.ServicerContext[Any, Any]
MetadataValue = str | bytes
MetadataList = list[tuple[str, MetadataValue]]
Body = Callable[["_Rpc"], Awaitable[Any]]


@dataclass(eq=False)
class RecordedCall:
    """One call as the upstream received it.

    ``method``, ``request`` and ``metadata`` are fixed when the call arrives
    (a client-streaming call's ``request`` is the merge of the messages read
    so far); ``cancelled`` is set before ``done`` when the call ends by
    cancellation; ``done`` is set when the call ends, whatever the outcome.
    """

    method: str
    request: Message
    metadata: dict[str, list[MetadataValue]]
    cancelled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class TestUpstream:
    """The steerable test server; see the module docstring."""

    __test__ = False

    def __init__(self, pool: DescriptorPool, *, options: Sequence[tuple[str, Any]] = ()) -> None:
        self.pool = pool
        self.options = list(options)
        self.calls: list[RecordedCall] = []
        self.active = 0
        self.cancelled = 0
        self._server: grpc.aio.Server | None = None
        self._address: str | None = None
        self._arrived = asyncio.Event()
        self._handlers = [self._service_handler(name) for name in SERVICES]
        self._item: Any = message_class(pool.FindMessageTypeByName(f"{PACKAGE}.StreamItem"))
        self._http_body: Any = message_class(pool.FindMessageTypeByName("google.api.HttpBody"))

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the running (or last) server."""
        if self._address is None:
            raise RuntimeError("the test upstream was never started")
        return self._address

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    async def start(self, port: int = 0) -> str:
        """Start serving on 127.0.0.1 (a given port: that port, e.g. to restart)."""
        if self._server is not None:
            raise RuntimeError("the test upstream is already running")
        server = grpc.aio.server(options=self.options)
        server.add_generic_rpc_handlers(self._handlers)
        reflection.enable_server_reflection(
            (*SERVICES, reflection.SERVICE_NAME), server, pool=self.pool
        )
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        if not bound:
            raise RuntimeError(f"cannot bind 127.0.0.1:{port}")
        await server.start()
        self._server = server
        self._address = f"127.0.0.1:{bound}"
        return self._address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls still running are cancelled (after ``grace`` seconds).

        Returns once every call has ended, so a cancelled one is recorded as such.
        """
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        running = [call.done.wait() for call in self.calls if not call.done.is_set()]
        try:
            async with asyncio.timeout(5):
                await asyncio.gather(*running)
        except TimeoutError:
            raise TimeoutError(f"{self.active} calls still running after stop") from None

    def last(self, method: str | None = None) -> RecordedCall:
        """The latest call (of ``method``: ``"Get"``, ``"Echo/Get"`` or the full name)."""
        for call in reversed(self.calls):
            if method is None or method in (call.method, *_short_names(call.method)):
                return call
        seen = [call.method for call in self.calls]
        raise LookupError(f"no call to {method or 'any method'}; calls: {seen}")

    async def wait_for_calls(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once ``n`` calls have arrived in total."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.calls) < n:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise TimeoutError(f"{len(self.calls)} calls after {timeout} s, expected {n}") from None

    # -- handlers ---------------------------------------------------------

    def _service_handler(self, name: str) -> grpc.GenericRpcHandler:
        service = self.pool.FindServiceByName(name)
        handlers = {method.name: self._method_handler(method) for method in service.methods}
        return grpc.method_handlers_generic_handler(name, handlers)

    def _method_handler(self, method: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
        name = f"{method.containing_service.full_name}/{method.name}"
        request_class: Any = message_class(method.input_type)
        response_class: Any = message_class(method.output_type)
        codec: dict[str, Any] = {
            "request_deserializer": request_class.FromString,
            "response_serializer": _serialize,
        }

        if method.client_streaming:

            async def handle_stream_in(requests: AsyncIterator[Message], context: Context) -> Any:
                received = request_class()

                async def body(rpc: _Rpc) -> Any:
                    if method.server_streaming:
                        async for message in requests:
                            received.MergeFrom(message)
                            await context.write(message)
                        return None
                    async for message in requests:
                        received.MergeFrom(message)
                    return _copy(received)

                return await self._serve(name, received, context, body)

            if method.server_streaming:
                return grpc.stream_stream_rpc_method_handler(handle_stream_in, **codec)
            return grpc.stream_unary_rpc_method_handler(handle_stream_in, **codec)

        if method.server_streaming:

            async def handle_stream_out(request: Any, context: Context) -> None:
                if method.name == "StreamEcho":
                    await self._serve(name, request, context, lambda rpc: _echo(rpc, request))
                    return
                await self._serve(name, request, context, lambda rpc: self._stream(rpc, request))

            return grpc.unary_stream_rpc_method_handler(handle_stream_out, **codec)

        async def handle_unary(request: Any, context: Context) -> Any:
            async def body(rpc: _Rpc) -> Any:
                if method.name == "Download":
                    response = self._download(request)
                elif method.input_type.full_name == method.output_type.full_name:
                    response = _copy(request)
                else:
                    response = response_class()
                _pad(response, rpc.response_bytes)
                return response

            return await self._serve(name, request, context, body)

        return grpc.unary_unary_rpc_method_handler(handle_unary, **codec)

    async def _serve(self, name: str, request: Message, context: Context, body: Body) -> Any:
        """Record the call, apply the steering, run the body."""
        metadata = [(key, value) for key, value in context.invocation_metadata() or ()]
        call = RecordedCall(name, request, _by_key(metadata))
        self.calls.append(call)
        self.active += 1
        self._arrived.set()
        # Belt and braces: the CancelledError below is what reliably reports a
        # cancellation (``ctx.cancelled()`` stays False in grpc.aio 1.85).
        context.add_done_callback(
            cast(Any, lambda ctx: self._finish(call, cancelled=ctx.cancelled()))
        )
        rpc = _Rpc(context, metadata)
        try:
            await rpc.steer()
            return await body(rpc)
        except asyncio.CancelledError:
            self._finish(call, cancelled=True)
            raise
        except Exception as exc:
            # A client that cancels while this handler waits on flow control surfaces as
            # grpc core's ExecuteBatchError from the pending write, not as CancelledError.
            if type(exc).__name__ != "ExecuteBatchError":
                raise
            self._finish(call, cancelled=True)
            return None
        finally:
            self._finish(call, cancelled=False)

    def _finish(self, call: RecordedCall, *, cancelled: bool) -> None:
        if cancelled and not call.cancelled:
            call.cancelled = True
            self.cancelled += 1
        if not call.done.is_set():
            self.active -= 1
            call.done.set()

    def _download(self, request: Any) -> Any:
        body = self._http_body()
        body.content_type = (
            request.optional_string if request.HasField("optional_string") else DEFAULT_CONTENT_TYPE
        )
        body.data = request.bytes_field or request.string_field.encode()
        return body

    async def _stream(self, rpc: _Rpc, request: Any) -> None:
        """StreamRequest: delay, then count items interval_ms apart, then maybe fail."""
        if request.initial_delay_ms > 0:
            await asyncio.sleep(request.initial_delay_ms / 1000)
        if request.headers_then_stall:
            await rpc.send_headers([])
            await _forever()
        limit: int | None = request.count if request.count > 0 else None
        if request.fail_code:
            limit = request.fail_after if limit is None else min(limit, request.fail_after)
        index = 0
        while limit is None or index < limit:
            if index and request.interval_ms > 0:
                await asyncio.sleep(request.interval_ms / 1000)
            item = self._item()
            item.index = index
            item.payload = "x" * request.payload_size
            await rpc.context.write(item)
            index += 1
        if request.fail_code:
            if index and request.interval_ms > 0:
                await asyncio.sleep(request.interval_ms / 1000)
            message = request.fail_message or f"stream failed after {index} messages"
            details = (
                status_details("bad-request", request.fail_code, message)
                if request.fail_with_details
                else None
            )
            await rpc.fail(request.fail_code, message, details)


class _Rpc:
    """One call's steering state: its context and the metadata it asked for."""

    def __init__(self, context: Context, metadata: MetadataList) -> None:
        self.context = context
        self.metadata = metadata
        self.trailers: MetadataList = []
        self.headers_sent = False
        self.response_bytes = 0

    def text(self, key: str) -> str | None:
        for k, value in self.metadata:
            if k == key:
                return value.decode() if isinstance(value, bytes) else value
        return None

    def number(self, key: str) -> int:
        value = self.text(key)
        if value is None:
            return 0
        try:
            return int(value)
        except ValueError:
            raise _BadSteeringError(f"{key}: not an integer: {value!r}") from None

    async def steer(self) -> None:
        try:
            await self._steer()
        except _BadSteeringError as exc:
            await self.fail(grpc.StatusCode.INVALID_ARGUMENT.value[0], str(exc))

    async def _steer(self) -> None:
        delay = self.number("x-test-delay-ms")
        self.response_bytes = self.number("x-test-response-bytes")
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        headers = [(k.removeprefix(HEADER), v) for k, v in self.metadata if k.startswith(HEADER)]
        http_code = self.text("x-test-http-code")
        if http_code is not None:
            headers.append(("x-http-code", http_code))
        if self.text("x-test-echo-metadata") == "1":
            headers.extend((f"x-echo-{k}", v) for k, v in self.metadata)
        if headers:
            await self.send_headers(headers)
        self.trailers = [
            (k.removeprefix(TRAILER), v) for k, v in self.metadata if k.startswith(TRAILER)
        ]
        if self.trailers:
            self.context.set_trailing_metadata(tuple(self.trailers))
        if self.text("x-test-hang") not in (None, "", "0"):
            await _forever()
        code = self.number("x-test-code")
        kind = self.text("x-test-details")
        if kind is not None and kind not in DETAIL_KINDS:
            raise _BadSteeringError(f"x-test-details: not one of {', '.join(DETAIL_KINDS)}")
        if code or kind:
            code = code or grpc.StatusCode.INVALID_ARGUMENT.value[0]
            message = self.text("x-test-message") or f"steered failure with code {code}"
            details = status_details(kind, code, message) if kind else None
            await self.fail(code, message, details)

    async def send_headers(self, headers: MetadataList) -> None:
        """Send response headers once (a second call is a no-op)."""
        if not self.headers_sent:
            self.headers_sent = True
            await self.context.send_initial_metadata(tuple(headers))

    async def fail(self, code: int, message: str, details: bytes | None = None) -> NoReturn:
        trailing = list(self.trailers)
        if details is not None:
            trailing.append((DETAILS_KEY, details))
        await self.context.abort(_status_code(code), message, tuple(trailing))


class _BadSteeringError(Exception):
    pass


def status_details(kind: str, code: int, message: str) -> bytes:
    """The ``grpc-status-details-bin`` value the upstream sends for ``kind``."""
    if kind == "garbage":
        return GARBAGE_DETAILS
    status = status_pb2.Status(code=code, message=message)
    if kind in ("bad-request", "mixed"):
        bad_request = error_details_pb2.BadRequest()
        violation = bad_request.field_violations.add()
        violation.field = "string_field"
        violation.description = "must not be empty"
        status.details.add().Pack(bad_request)
    if kind in ("debug-info", "mixed"):
        debug = error_details_pb2.DebugInfo(stack_entries=["upstream.py:1"], detail="secret")
        status.details.add().Pack(debug)
    if kind in ("unknown-type", "mixed"):
        status.details.append(any_pb2.Any(type_url=UNKNOWN_TYPE_URL, value=b"\x08\x01"))
    data: bytes = status.SerializeToString()
    return data


def _status_code(code: int) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


def _short_names(full: str) -> tuple[str, str]:
    """``"pkg.Echo/Get"`` → ``("Get", "Echo/Get")``."""
    service, _, method = full.partition("/")
    return method, f"{service.rpartition('.')[2]}/{method}"


def _by_key(metadata: MetadataList) -> dict[str, list[MetadataValue]]:
    grouped: dict[str, list[MetadataValue]] = {}
    for key, value in metadata:
        grouped.setdefault(key, []).append(value)
    return grouped


async def _echo(rpc: _Rpc, request: Any) -> None:
    """StreamEcho: the request, int32_field times (see service.proto)."""
    for index in range(request.int32_field):
        item = _copy(request)
        if index == 1 and request.string_field == "bad-time":
            item.timestamp.seconds = 10**12  # past year 9999: no RFC 3339 form
        await rpc.context.write(item)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _copy(message: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _pad(message: Any, size: int) -> None:
    if size <= 0:
        return
    fields = message.DESCRIPTOR.fields_by_name
    if "string_field" in fields:
        message.string_field = message.string_field.ljust(size, "x")
    elif "data" in fields and "content_type" in fields:
        message.data = message.data.ljust(size, b"x")


async def _forever() -> NoReturn:
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable")
