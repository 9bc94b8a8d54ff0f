"""The upstream's file descriptors, fetched over gRPC server reflection at startup.

One ``ServerReflectionInfo`` stream, one request at a time::

    list_services                                  → transcoder.testing.v1.Echo, grpc.reflection…
    file_containing_symbol: transcoder.testing.v1.Echo → testing/v1/service.proto (+ imports)
    file_by_filename: <each import still missing>  → until the set is closed

``grpc.reflection.v1`` is asked first; on UNIMPLEMENTED the same conversation
runs again on ``grpc.reflection.v1alpha`` (the only version grpcio-reflection's
server speaks). Both use the same messages, so grpcio-reflection's v1alpha
classes serve for both. ``ProtoReflectionDescriptorDatabase`` is not used: it
needs a sync channel (python-stack notes §1).

Decisions beyond the brief:

- Services named ``grpc.reflection.*`` and ``grpc.health.*`` are skipped.
- An import the server answers NOT_FOUND for is left out: ``descriptors.build_pool``
  borrows well-known and googleapis files from the protobuf runtime, or names the
  missing import in its own ``ConfigError``. Any other error, and any error for a
  listed service, is a ``ConfigError``.
- ``timeout`` bounds the whole exchange, both versions included.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection_pb2

from transcoder.errors import ConfigError

_SKIPPED_SERVICE_PREFIXES = ("grpc.reflection.", "grpc.health.")
_Request = reflection_pb2.ServerReflectionRequest
_Response = reflection_pb2.ServerReflectionResponse


class _Failure(Exception):
    """A reflection answer the gateway cannot use; the message says which and why."""


class _NotFound(_Failure):
    """The server's error_response said NOT_FOUND."""


async def fetch_file_descriptors(
    channel: grpc.aio.Channel,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109  a gRPC deadline: the server learns of it too
    target: str = "upstream",
) -> list[descriptor_pb2.FileDescriptorProto]:
    """Every file describing the upstream's services, with their imports when the server has them.

    ``target`` names the upstream in the ``ConfigError`` (one line) raised on any failure.
    """
    give_up_at = time.monotonic() + timeout
    try:
        try:
            return await _fetch(channel, "v1", give_up_at)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        return await _fetch(channel, "v1alpha", give_up_at)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            cause = "not enabled (neither grpc.reflection.v1 nor v1alpha is served)"
        else:
            cause = f"failed: {_describe(exc)}"
        raise ConfigError(f"{target}: server reflection {cause}") from None
    except _Failure as failure:
        raise ConfigError(f"{target}: server reflection failed: {failure}") from None


async def _fetch(
    channel: grpc.aio.Channel, version: str, give_up_at: float
) -> list[descriptor_pb2.FileDescriptorProto]:
    method = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    call: grpc.aio.StreamStreamCall[Any, Any] = channel.stream_stream(
        method,
        request_serializer=_Request.SerializeToString,
        response_deserializer=_Response.FromString,
    )(timeout=max(give_up_at - time.monotonic(), 0.0))
    try:
        listed = await _ask(call, _Request(list_services=""), "list_services")
        _expect(listed, "list_services_response", "list_services")
        services = [
            service.name
            for service in listed.list_services_response.service
            if not service.name.startswith(_SKIPPED_SERVICE_PREFIXES)
        ]
        files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for service in services:
            what = f"file_containing_symbol {service}"
            _take(await _ask(call, _Request(file_containing_symbol=service), what), files, what)
        tried: set[str] = set()
        while missing := sorted(_imports(files) - files.keys() - tried):
            name = missing[0]
            tried.add(name)
            what = f"file_by_filename {name}"
            try:
                _take(await _ask(call, _Request(file_by_filename=name), what), files, what)
            except _NotFound:
                continue  # build_pool borrows it from the runtime or names it
        await call.done_writing()
        return list(files.values())
    finally:
        call.cancel()


async def _ask(call: grpc.aio.StreamStreamCall[Any, Any], request: Any, what: str) -> Any:
    await call.write(request)
    response: Any = await call.read()
    if response is grpc.aio.EOF:  # a failed call raises AioRpcError instead
        raise _Failure(f"{what}: the server closed the stream without an answer")
    if response.WhichOneof("message_response") == "error_response":
        error = response.error_response
        if error.error_code == grpc.StatusCode.NOT_FOUND.value[0]:
            raise _NotFound(f"{what}: not found")
        raise _Failure(f"{what}: error {error.error_code}: {_one_line(error.error_message)}")
    return response


def _take(response: Any, files: dict[str, descriptor_pb2.FileDescriptorProto], what: str) -> None:
    _expect(response, "file_descriptor_response", what)
    for serialized in response.file_descriptor_response.file_descriptor_proto:
        try:
            proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        except DecodeError:
            raise _Failure(f"{what}: an answer is not a FileDescriptorProto") from None
        if not proto.name:
            raise _Failure(f"{what}: an answer holds a file without a name")
        files.setdefault(proto.name, proto)


def _expect(response: Any, kind: str, what: str) -> None:
    answered = response.WhichOneof("message_response")
    if answered != kind:
        raise _Failure(f"{what}: expected {kind}, got {answered}")


def _imports(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> set[str]:
    return {name for proto in files.values() for name in proto.dependency}


def _describe(exc: grpc.aio.AioRpcError) -> str:
    details = exc.details()
    return f"{exc.code().name}: {_one_line(details)}" if details else exc.code().name


def _one_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""
