"""The test upstream itself, through a plain grpc.aio client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.upstream import GARBAGE_DETAILS, UNKNOWN_TYPE_URL, TestUpstream
from transcoder.descriptors import message_class

PACKAGE = "transcoder.testing.v1"
Metadata = tuple[tuple[str, str | bytes], ...]


class Client:
    """Generic calls by method name, message classes from the pool."""

    def __init__(self, channel: grpc.aio.Channel, pool: DescriptorPool) -> None:
        self.channel = channel
        self.pool = pool

    def cls(self, name: str) -> Any:
        return message_class(self.pool.FindMessageTypeByName(name))

    def method(self, name: str) -> tuple[str, Any, Any]:
        service, _, method = name.partition("/")
        descriptor = self.pool.FindServiceByName(f"{PACKAGE}.{service}").FindMethodByName(method)
        return (
            f"/{PACKAGE}.{service}/{method}",
            message_class(descriptor.input_type),
            message_class(descriptor.output_type),
        )

    def unary(self, name: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        path, _, response = self.method(name)
        return self.channel.unary_unary(
            path, request_serializer=_serialize, response_deserializer=response.FromString
        )

    def stream(self, name: str) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        path, _, response = self.method(name)
        return self.channel.unary_stream(
            path, request_serializer=_serialize, response_deserializer=response.FromString
        )

    def everything(self, **fields: Any) -> Any:
        return self.cls(f"{PACKAGE}.Everything")(**fields)

    def stream_request(self, **fields: Any) -> Any:
        return self.cls(f"{PACKAGE}.StreamRequest")(**fields)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


@pytest.fixture
async def client(upstream: TestUpstream, pool: DescriptorPool) -> AsyncIterator[Client]:
    async with grpc.aio.insecure_channel(upstream.address) as channel:
        yield Client(channel, pool)


async def fail(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def read_all(call: Any) -> tuple[list[Any], grpc.aio.AioRpcError]:
    """Read a stream that must fail: the messages before the failure, and the failure."""
    items: list[Any] = []
    with anyio.fail_after(5):
        try:
            async for item in call:
                items.append(item)
        except grpc.aio.AioRpcError as error:
            return items, error
    raise AssertionError(f"the stream ended without an error after {len(items)} messages")


def details_of(error: grpc.aio.AioRpcError) -> bytes:
    values = [v for k, v in error.trailing_metadata() or () if k == "grpc-status-details-bin"]
    assert len(values) == 1
    value = values[0]
    assert isinstance(value, bytes)
    return value


# -- echo ------------------------------------------------------------------


async def test_get_echoes_the_request_and_records_it(
    client: Client, upstream: TestUpstream
) -> None:
    request = client.everything(string_field="hello", int64_field=7, repeated_string=["a", "b"])
    response = await client.unary("Echo/Get")(request, metadata=(("x-request-id", "r1"),))
    assert response == request
    call = upstream.last("Get")
    assert call.method == f"{PACKAGE}.Echo/Get"
    assert call.request == request
    assert call.metadata["x-request-id"] == ["r1"]
    assert call.done.is_set()
    assert not call.cancelled
    assert upstream.last() is call
    assert upstream.last("Echo/Get") is call
    assert upstream.last(f"{PACKAGE}.Echo/Get") is call
    assert upstream.active == 0


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("Echo/Delete", "google.protobuf.Empty"),
        ("Other/Ping", "google.protobuf.Empty"),
        ("Echo/Patch", f"{PACKAGE}.UpdateRequest"),
        ("Echo/Upload", f"{PACKAGE}.UploadRequest"),
        ("Echo/UploadRaw", "google.api.HttpBody"),
        ("Other/Shadowed", f"{PACKAGE}.Everything"),
    ],
    ids=["delete-empty", "ping-empty", "patch-echo", "upload-echo", "upload-raw-echo", "other"],
)
async def test_methods_answer_their_output_type(client: Client, method: str, kind: str) -> None:
    _, request_class, _ = client.method(method)
    request = request_class()
    response = await client.unary(method)(request)
    assert response.DESCRIPTOR.full_name == kind
    if kind != "google.protobuf.Empty":
        assert response == request


async def test_download_answers_http_body(client: Client) -> None:
    download = client.unary("Echo/Download")
    text = await download(client.everything(string_field="héllo"))
    assert (text.content_type, text.data) == ("text/plain; charset=utf-8", "héllo".encode())
    raw = await download(client.everything(bytes_field=b"\x00{}", optional_string="x/json"))
    assert (raw.content_type, raw.data) == ("x/json", b"\x00{}")


async def test_collect_and_chat(client: Client, upstream: TestUpstream) -> None:
    path, _, response = client.method("Echo/Collect")
    collect = client.channel.stream_unary(
        path, request_serializer=_serialize, response_deserializer=response.FromString
    )
    parts = [client.everything(string_field="a"), client.everything(int32_field=2)]
    merged = await collect(iter(parts))
    assert (merged.string_field, merged.int32_field) == ("a", 2)
    assert upstream.last("Collect").request == merged

    path, _, response = client.method("Echo/Chat")
    chat = client.channel.stream_stream(
        path, request_serializer=_serialize, response_deserializer=response.FromString
    )
    with anyio.fail_after(5):
        answers = [message async for message in chat(iter(parts))]
    assert answers == parts


async def test_reflection_lists_the_services(upstream: TestUpstream) -> None:
    async with grpc.aio.insecure_channel(upstream.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with anyio.fail_after(5):
            responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {f"{PACKAGE}.Echo", f"{PACKAGE}.Other"} <= names


# -- steering ----------------------------------------------------------------


async def test_code_and_message(client: Client) -> None:
    metadata = (("x-test-code", "5"), ("x-test-message", "book 7 not found"))
    error = await fail(client.unary("Echo/Get")(client.everything(), metadata=metadata))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "book 7 not found")
    assert not [k for k, _ in error.trailing_metadata() or () if k == "grpc-status-details-bin"]


async def test_code_out_of_range_is_unknown(client: Client) -> None:
    error = await fail(
        client.unary("Echo/Get")(client.everything(), metadata=(("x-test-code", "99"),))
    )
    assert error.code() == grpc.StatusCode.UNKNOWN


async def test_bad_steering_value_is_invalid_argument(client: Client) -> None:
    call = client.unary("Echo/Get")(client.everything(), metadata=(("x-test-delay-ms", "soon"),))
    error = await fail(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x-test-delay-ms" in (error.details() or "")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("bad-request", ["type.googleapis.com/google.rpc.BadRequest"]),
        ("debug-info", ["type.googleapis.com/google.rpc.DebugInfo"]),
        ("unknown-type", [UNKNOWN_TYPE_URL]),
        (
            "mixed",
            [
                "type.googleapis.com/google.rpc.BadRequest",
                "type.googleapis.com/google.rpc.DebugInfo",
                UNKNOWN_TYPE_URL,
            ],
        ),
    ],
    ids=["bad-request", "debug-info", "unknown-type", "mixed"],
)
async def test_details(client: Client, kind: str, expected: list[str]) -> None:
    metadata = (("x-test-code", "3"), ("x-test-message", "bad"), ("x-test-details", kind))
    error = await fail(client.unary("Echo/Get")(client.everything(), metadata=metadata))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_pb2.Status.FromString(details_of(error))
    assert (status.code, status.message) == (3, "bad")
    assert [d.type_url for d in status.details] == expected
    if kind == "bad-request":
        bad_request = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad_request)
        assert bad_request.field_violations[0].field == "string_field"


async def test_garbage_details(client: Client) -> None:
    metadata = (("x-test-code", "13"), ("x-test-details", "garbage"))
    error = await fail(client.unary("Echo/Get")(client.everything(), metadata=metadata))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert details_of(error) == GARBAGE_DETAILS
    with pytest.raises(DecodeError):
        status_pb2.Status.FromString(GARBAGE_DETAILS)


async def test_details_alone_imply_invalid_argument(client: Client) -> None:
    metadata = (("x-test-details", "bad-request"),)
    error = await fail(client.unary("Echo/Get")(client.everything(), metadata=metadata))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status_pb2.Status.FromString(details_of(error)).code == 3


async def test_headers_trailers_and_http_code(client: Client) -> None:
    metadata = (
        ("x-test-header-x-color", "blue"),
        ("x-test-header-x-blob-bin", b"\x00\xff"),
        ("x-test-trailer-x-checksum", "abc"),
        ("x-test-http-code", "201"),
    )
    call = client.unary("Echo/Get")(client.everything(), metadata=metadata)
    await call
    headers = list(await call.initial_metadata() or ())
    assert ("x-color", "blue") in headers
    assert ("x-blob-bin", b"\x00\xff") in headers
    assert ("x-http-code", "201") in headers
    assert ("x-checksum", "abc") in list(await call.trailing_metadata() or ())


async def test_headers_and_trailers_on_failure(client: Client) -> None:
    metadata = (
        ("x-test-header-x-color", "blue"),
        ("x-test-trailer-x-checksum", "abc"),
        ("x-test-code", "7"),
        ("x-test-details", "bad-request"),
    )
    call = client.unary("Echo/Get")(client.everything(), metadata=metadata)
    error = await fail(call)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ("x-color", "blue") in list(error.initial_metadata() or ())
    assert ("x-checksum", "abc") in list(error.trailing_metadata() or ())
    assert status_pb2.Status.FromString(details_of(error)).code == 7


async def test_echo_metadata(client: Client) -> None:
    metadata = (("x-test-echo-metadata", "1"), ("authorization", "Bearer t"), ("k-bin", b"\x01"))
    call = client.unary("Echo/Get")(client.everything(), metadata=metadata)
    await call
    headers = list(await call.initial_metadata() or ())
    assert ("x-echo-authorization", "Bearer t") in headers
    assert ("x-echo-k-bin", b"\x01") in headers
    assert ("x-echo-x-test-echo-metadata", "1") in headers


async def test_response_bytes(client: Client, upstream: TestUpstream) -> None:
    metadata = (("x-test-response-bytes", "5000"),)
    response = await client.unary("Echo/Get")(
        client.everything(string_field="ab"), metadata=metadata
    )
    assert response.string_field == "ab" + "x" * 4998
    recorded: Any = upstream.last().request
    assert recorded.string_field == "ab"
    body = await client.unary("Echo/Download")(client.everything(), metadata=metadata)
    assert len(body.data) == 5000

    options = [("grpc.max_receive_message_length", 1000)]
    async with grpc.aio.insecure_channel(upstream.address, options=options) as channel:
        small = Client(channel, client.pool).unary("Echo/Get")
        error = await fail(small(client.everything(), metadata=metadata))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_delay(client: Client, upstream: TestUpstream) -> None:
    call = client.unary("Echo/Get")(
        client.everything(), metadata=(("x-test-delay-ms", "5000"),), timeout=0.05
    )
    error = await fail(call)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    with anyio.fail_after(1):
        await upstream.last().done.wait()


async def test_hang_then_cancel_is_recorded_within_a_second(
    client: Client, upstream: TestUpstream
) -> None:
    call = client.unary("Echo/Post")(client.everything(), metadata=(("x-test-hang", "1"),))
    await upstream.wait_for_calls(1)
    assert upstream.active == 1
    call.cancel()
    with anyio.fail_after(1):
        await upstream.last("Post").done.wait()
    assert upstream.last("Post").cancelled
    assert (upstream.active, upstream.cancelled) == (0, 1)


async def test_stop_cancels_calls_in_progress(client: Client, upstream: TestUpstream) -> None:
    call = client.unary("Echo/Get")(client.everything(), metadata=(("x-test-hang", "1"),))
    await upstream.wait_for_calls(1)
    await upstream.stop()
    assert upstream.last().cancelled
    assert upstream.active == 0
    error = await fail(call)
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


async def test_wait_for_calls_times_out(upstream: TestUpstream) -> None:
    with pytest.raises(TimeoutError, match="0 calls"):
        await upstream.wait_for_calls(1, timeout=0.01)


async def test_restart_on_the_same_port(pool: DescriptorPool, upstream: TestUpstream) -> None:
    address = upstream.address
    await upstream.stop()
    assert await upstream.start(upstream.port) == address
    async with grpc.aio.insecure_channel(address) as channel:
        client = Client(channel, pool)
        request = client.everything(string_field="again")
        assert await client.unary("Echo/Get")(request) == request


# -- streaming ---------------------------------------------------------------


async def test_stream_count(client: Client, upstream: TestUpstream) -> None:
    call = client.stream("Echo/Stream")(client.stream_request(count=3, payload_size=4))
    with anyio.fail_after(5):
        items = [item async for item in call]
    assert [(i.index, i.payload) for i in items] == [(n, "xxxx") for n in range(3)]
    assert await call.code() == grpc.StatusCode.OK
    recorded: Any = upstream.last("Stream").request
    assert recorded.count == 3


async def test_stream_fails_after(client: Client) -> None:
    request = client.stream_request(
        count=10, fail_after=2, fail_code=14, fail_message="gone", interval_ms=1
    )
    call = client.stream("Echo/Stream")(request)
    items, error = await read_all(call)
    assert [item.index for item in items] == [0, 1]
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAVAILABLE, "gone")
    assert not [k for k, _ in error.trailing_metadata() or () if k.endswith("details-bin")]


async def test_stream_fails_with_details(client: Client) -> None:
    request = client.stream_request(fail_code=9, fail_message="nope", fail_with_details=True)
    call = client.stream("Echo/Stream")(request, metadata=(("x-test-trailer-x-t", "1"),))
    items, error = await read_all(call)
    assert items == []
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_pb2.Status.FromString(details_of(error))
    assert (status.code, status.message) == (9, "nope")
    assert status.details[0].type_url == "type.googleapis.com/google.rpc.BadRequest"
    assert ("x-t", "1") in list(error.trailing_metadata() or ())


async def test_stream_steered_by_metadata(client: Client) -> None:
    metadata = (("x-test-code", "16"), ("x-test-header-x-a", "b"))
    call = client.stream("Echo/Stream")(client.stream_request(count=3), metadata=metadata)
    items, error = await read_all(call)
    assert items == []
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ("x-a", "b") in list(error.initial_metadata() or ())


async def test_stream_headers_then_stall(client: Client, upstream: TestUpstream) -> None:
    call = client.stream("Echo/Stream")(client.stream_request(headers_then_stall=True))
    with anyio.fail_after(5):
        await call.initial_metadata()
    assert not call.done()
    assert upstream.active == 1
    call.cancel()
    with anyio.fail_after(1):
        await upstream.last("Stream").done.wait()
    assert upstream.last("Stream").cancelled


async def test_endless_stream_cancelled_within_a_second(
    client: Client, upstream: TestUpstream
) -> None:
    call = client.stream("Echo/Stream")(client.stream_request(count=0, interval_ms=1))
    seen = 0
    with anyio.fail_after(5):
        async for _ in call:
            seen += 1
            if seen == 5:
                break
    call.cancel()
    with anyio.fail_after(1):
        await upstream.last("Stream").done.wait()
    assert upstream.last("Stream").cancelled
    assert upstream.cancelled == 1


async def test_stream_initial_delay(client: Client) -> None:
    request = client.stream_request(count=1, initial_delay_ms=5000)
    call = client.stream("Echo/Stream")(request, timeout=0.05)
    items, error = await read_all(call)
    assert items == []
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_dead_upstream_refuses_connections(dead_upstream: str, pool: DescriptorPool) -> None:
    async with grpc.aio.insecure_channel(dead_upstream) as channel:
        client = Client(channel, pool)
        error = await fail(client.unary("Echo/Get")(client.everything(), timeout=5))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
