"""The gateway inside an existing FastAPI application.

    TRANSCODER_UPSTREAM__ADDRESS=localhost:50051 \\
    TRANSCODER_DESCRIPTORS__FILES='["api.pb"]' \\
        uvicorn examples.embedding.app:app

``create_app(settings)`` returns a plain ASGI app: mount it under a prefix (here
``/grpc``) beside the application's own routes, or run it alone under any ASGI
server.  Its lifespan owns the gRPC channel, so the outer app must run the
mounted app's lifespan: FastAPI does not do that for mounts, hence the
``lifespan`` below, which enters the gateway's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from transcoder import Settings, create_app

gateway = create_app(Settings())


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with gateway.lifespan():
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello() -> dict[str, str]:
    """The application's own route, beside the gateway's."""
    return {"hello": "world"}


app.mount("/grpc", gateway)
