"""The stack floor: the least a gateway on our required stack can cost per unary call.

A raw ASGI app under uvicorn (uvloop, httptools) that, for each request, reads
the body, makes the same grpc.aio call a gateway makes (one channel made in the
loop, typed messages, an ``x-forwarded-for`` entry and a 30 s deadline, as the
contract's defaults require), waits for its headers and trailers, and answers
with the JSON bytes of the upstream's reply, computed once at startup.  No
routing, no binding, no JSON work, no metrics, no log: what is left is uvicorn
plus grpc.aio, measured in one process the way the harness measures a gateway.

    BENCH_UPSTREAM=127.0.0.1:P BENCH_DESCRIPTOR_SET=bench.pb BENCH_MEDIUM=medium.json \\
        uvicorn --app-dir benchmarks stack_floor:app --loop uvloop --http httptools

``GET`` calls ``EchoSmall`` with the harness's small message; ``POST`` calls
``EchoMedium`` with its medium fixture.  With ``BENCH_CONVERT=1`` it also does
the JSON work no gateway can skip, with transcoder's own converters: a POST's
body becomes the request message and every reply is encoded as JSON
(``stack floor + JSON``).  ``benchmarks/run.py`` runs both beside transcoder
(part 3).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from transcoder.protojson import Codecs, JsonOptions, MessageCodec, loads

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SERVICE = "/benchsvc.v1.BenchService/"
METADATA = (("x-forwarded-for", "127.0.0.1"),)
DEADLINE_SECONDS = 30.0


class _Call:
    """One prepared call: its multicallable, its request and the reply's JSON bytes."""

    def __init__(self, rpc: Any, request: Any, codecs: tuple[MessageCodec, MessageCodec]) -> None:
        self.rpc = rpc
        self.request = request
        self.decoder, self.encoder = codecs
        self.body = b""
        self.headers: list[tuple[bytes, bytes]] = []

    async def prepare(self) -> None:
        reply = await self.rpc(self.request, timeout=DEADLINE_SECONDS)
        self.body = json_format.MessageToJson(reply, indent=None).encode()
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]


class StackFloor:
    def __init__(self) -> None:
        self.small: _Call | None = None
        self.medium: _Call | None = None
        self.convert = os.environ.get("BENCH_CONVERT") == "1"

    async def startup(self) -> None:
        # Startup only, before any request: blocking reads are fine here.
        files = descriptor_pb2.FileDescriptorSet.FromString(
            Path(os.environ["BENCH_DESCRIPTOR_SET"]).read_bytes()  # noqa: ASYNC240
        )
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            pool.Add(file)

        def message(name: str) -> Any:
            return message_factory.GetMessageClass(
                pool.FindMessageTypeByName(f"benchsvc.v1.{name}")
            )

        small, medium = message("SmallMessage"), message("MediumMessage")
        codecs = Codecs(pool, JsonOptions())
        small_codec = codecs.codec(small.DESCRIPTOR)
        medium_codec = codecs.codec(medium.DESCRIPTOR)
        channel = grpc.aio.insecure_channel(os.environ["BENCH_UPSTREAM"])

        def rpc(method: str, cls: Any) -> Any:
            return channel.unary_unary(
                SERVICE + method,
                request_serializer=cls.SerializeToString,
                response_deserializer=cls.FromString,
            )

        fixture = Path(os.environ["BENCH_MEDIUM"]).read_text()  # noqa: ASYNC240
        medium_request = json_format.Parse(fixture, medium())
        self.small = _Call(
            rpc("EchoSmall", small),
            small(id="abc123", name="bench", count=42, flag=True, score=1.5),
            (small_codec, small_codec),
        )
        self.medium = _Call(rpc("EchoMedium", medium), medium_request, (medium_codec, medium_codec))
        await self.small.prepare()
        await self.medium.prepare()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await self.startup()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        prepared = self.medium if scope["method"] == "POST" else self.small
        assert prepared is not None
        chunks = []
        more = True
        while more:
            event = await receive()
            chunks.append(event.get("body", b""))
            more = event.get("more_body", False)
        request = prepared.request
        if self.convert and scope["method"] == "POST":
            request = prepared.decoder.decode(loads(b"".join(chunks), max_depth=64))
        call = prepared.rpc(request, metadata=METADATA, timeout=DEADLINE_SECONDS)
        reply = await call
        await call.initial_metadata()
        await call.trailing_metadata()
        headers, body = prepared.headers, prepared.body
        if self.convert:
            body = prepared.encoder.dumps(reply)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


app = StackFloor()
