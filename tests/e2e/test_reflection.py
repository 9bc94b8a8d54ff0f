"""Descriptors fetched from a real grpc.aio upstream's server reflection service."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import anyio
import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

from transcoder import descriptors
from transcoder.errors import ConfigError
from transcoder.reflection import fetch_file_descriptors

ECHO = "transcoder.testing.v1.Echo"
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

Handler = grpc.GenericRpcHandler
ReflectionInfo = Callable[
    [AsyncIterator[Any], "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Any]
]
MethodHandler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only


class RecordMethods(grpc.aio.ServerInterceptor):
    """Notes the path of every call the server receives."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        self.methods.append(handler_call_details.method)
        return await continuation(handler_call_details)


@asynccontextmanager
async def serve(
    *handlers: Handler,
    reflect: list[str] | None = None,
    pool: descriptor_pool.DescriptorPool | None = None,
    interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (),
) -> AsyncIterator[str]:
    """A grpc.aio upstream on a free loopback port; yields its address."""
    server = grpc.aio.server(interceptors=interceptors)
    # Echo is registered so that it exists; reflection never calls its methods.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO, {}), *handlers))
    if reflect is not None:
        reflection.enable_server_reflection(reflect, server, pool=pool)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def fetch(address: str, deadline: float = 5.0) -> list[descriptor_pb2.FileDescriptorProto]:
    async with grpc.aio.insecure_channel(address) as channel:
        return await fetch_file_descriptors(channel, timeout=deadline, target=address)


def http_rules(pool: descriptor_pool.DescriptorPool) -> dict[str, str]:
    service = pool.FindServiceByName(ECHO)
    return {
        method.name: str(descriptors.method_options(method).Extensions[annotations_pb2.http])
        for method in service.methods
    }


def v1_reflection(info: ReflectionInfo) -> Handler:
    """``info`` served as ``grpc.reflection.v1``'s ``ServerReflectionInfo`` (hand-written)."""
    return grpc.method_handlers_generic_handler(
        "grpc.reflection.v1.ServerReflection",
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                info,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )


def answering(answer: Callable[[Any], Any]) -> ReflectionInfo:
    """A reflection conversation that answers each request with ``answer(request)``."""

    async def info(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for request in requests:
            yield answer(request)

    return info


def single_file_answers(
    pool: descriptor_pool.DescriptorPool, services: list[str], hidden: set[str]
) -> Callable[[Any], Any]:
    """Answers with the one file asked for, never its imports (as some servers do)."""

    def answer(request: Any) -> Any:
        response = reflection_pb2.ServerReflectionResponse(original_request=request)
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            for name in services:
                response.list_services_response.service.add(name=name)
            return response
        if kind == "file_containing_symbol":
            file = pool.FindFileContainingSymbol(request.file_containing_symbol)
        elif request.file_by_filename not in hidden:
            file = pool.FindFileByName(request.file_by_filename)
        else:
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = "not found"
            return response
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        response.file_descriptor_response.file_descriptor_proto.append(proto.SerializeToString())
        return response

    return answer


async def test_v1alpha_server_gives_echo_and_its_http_rules(
    pool: descriptor_pool.DescriptorPool,
) -> None:
    recorder = RecordMethods()
    reflect = [ECHO, reflection.SERVICE_NAME]
    async with serve(reflect=reflect, pool=pool, interceptors=(recorder,)) as address:
        files = await fetch(address)

    assert recorder.methods == [V1, V1ALPHA]  # v1 first, UNIMPLEMENTED, then v1alpha
    assert "testing/v1/service.proto" in {file.name for file in files}
    reflected = descriptors.build_pool(descriptors.merge_files([("reflection", files)]))
    rules = http_rules(reflected)
    assert 'get: "/v1/everything/{string_field}"' in rules["Get"]
    assert rules == http_rules(pool)


async def test_v1_server_is_asked_first_and_imports_are_fetched_by_filename(
    pool: descriptor_pool.DescriptorPool,
) -> None:
    """Only the asked-for file comes back; a hidden well-known import is borrowed later."""
    hidden = {"google/protobuf/empty.proto"}
    answer = single_file_answers(pool, ["grpc.health.v1.Health", ECHO], hidden)
    recorder = RecordMethods()
    async with serve(v1_reflection(answering(answer)), interceptors=(recorder,)) as address:
        files = await fetch(address)

    assert recorder.methods == [V1]
    names = {file.name for file in files}
    assert {"testing/v1/service.proto", "testing/v1/everything.proto"} <= names
    assert "google/api/annotations.proto" in names
    assert names.isdisjoint(hidden)
    reflected = descriptors.build_pool(descriptors.merge_files([("reflection", files)]))
    assert http_rules(reflected) == http_rules(pool)


async def test_service_the_server_cannot_describe_is_a_config_error(
    pool: descriptor_pool.DescriptorPool,
) -> None:
    async with serve(reflect=[ECHO, "no.such.Service"], pool=pool) as address:
        with pytest.raises(ConfigError) as caught:
            await fetch(address)
    message = str(caught.value)
    assert message.startswith(f"{address}: server reflection failed")
    assert "file_containing_symbol no.such.Service: not found" in message
    assert "\n" not in message


async def test_error_response_other_than_not_found_is_a_config_error() -> None:
    def answer(request: Any) -> Any:
        response = reflection_pb2.ServerReflectionResponse(original_request=request)
        response.error_response.error_code = grpc.StatusCode.INTERNAL.value[0]
        response.error_response.error_message = "database down\nsecond line"
        return response

    async with serve(v1_reflection(answering(answer))) as address:
        with pytest.raises(ConfigError, match=r"list_services: error 13: database down$"):
            await fetch(address)


def _unusable(kind: str) -> Callable[[Any], Any]:
    def answer(request: Any) -> Any:
        response = reflection_pb2.ServerReflectionResponse(original_request=request)
        if request.HasField("list_services"):
            if kind != "no-answer-kind":
                response.list_services_response.service.add(name=ECHO)
            return response
        files = response.file_descriptor_response.file_descriptor_proto
        files.append(b"\xff\xff" if kind == "garbage-file" else b"")
        return response

    return answer


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("no-answer-kind", "list_services: expected list_services_response, got None"),
        ("garbage-file", f"file_containing_symbol {ECHO}: an answer is not a FileDescriptorProto"),
        ("nameless-file", f"file_containing_symbol {ECHO}: an answer holds a file without a name"),
    ],
    ids=["no-answer-kind", "garbage-file", "nameless-file"],
)
async def test_unusable_answer_is_a_config_error(kind: str, reason: str) -> None:
    handler = v1_reflection(answering(_unusable(kind)))
    async with serve(handler) as address:
        with pytest.raises(ConfigError) as caught:
            await fetch(address)
    assert str(caught.value) == f"{address}: server reflection failed: {reason}"


async def test_stream_closed_without_an_answer_is_a_config_error() -> None:
    async def hang_up(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        return
        yield  # an async generator that ends at once

    handler = v1_reflection(hang_up)
    async with serve(handler) as address:
        with pytest.raises(ConfigError, match="closed the stream without an answer"):
            await fetch(address)


async def test_upstream_without_reflection_is_a_config_error() -> None:
    async with serve() as address:
        with pytest.raises(ConfigError, match="server reflection not enabled"):
            await fetch(address)


async def test_unreachable_upstream_is_a_config_error_quickly() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    with anyio.fail_after(5), pytest.raises(ConfigError) as caught:
        await fetch(address, deadline=30.0)
    message = str(caught.value)
    assert message.startswith(f"{address}: server reflection failed: UNAVAILABLE")
    assert "\n" not in message


async def test_silent_upstream_is_a_config_error_at_the_timeout() -> None:
    release = asyncio.Event()

    async def never_answers(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await release.wait()
        yield reflection_pb2.ServerReflectionResponse()

    handler = v1_reflection(never_answers)
    async with serve(handler) as address:
        with anyio.fail_after(5), pytest.raises(ConfigError, match="DEADLINE_EXCEEDED"):
            await fetch(address, deadline=0.2)
        release.set()
