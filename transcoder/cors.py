"""CORS (contract §8): Starlette's pure-ASGI middleware, with two gateway rules.

- Request headers named ``Grpc-Metadata-<key>`` are allowed by prefix: they are
  how a page sends gRPC metadata, and a list could never name them all.
- A refused preflight is answered with the contract's error object (403
  PERMISSION_DENIED) rather than Starlette's plain-text 400.
"""

from __future__ import annotations

import grpc
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from transcoder.errors import GatewayError, render

METADATA_PREFIX = "grpc-metadata-"


class GatewayCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        metadata: list[str] = []
        requested = request_headers.get("access-control-request-headers")
        if requested is not None and not self.allow_all_headers:
            names = [h.strip().lower() for h in requested.split(",") if h.strip()]
            metadata = [h for h in names if h.startswith(METADATA_PREFIX)]
            if metadata:
                others = [h for h in names if not h.startswith(METADATA_PREFIX)]
                headers = request_headers.mutablecopy()
                if others:
                    headers["access-control-request-headers"] = ", ".join(others)
                else:
                    del headers["access-control-request-headers"]
                request_headers = Headers(raw=headers.raw)
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            reason = bytes(response.body).decode("latin-1")
            status, raw_headers, body = render(
                GatewayError(grpc.StatusCode.PERMISSION_DENIED, f"CORS preflight refused: {reason}")
            )
            return Response(
                body,
                status_code=status,
                headers={
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in raw_headers
                    if k != b"content-length"
                },
            )
        if metadata:
            allowed = response.headers.get("access-control-allow-headers", "")
            response.headers["access-control-allow-headers"] = ", ".join(
                filter(None, [allowed, *metadata])
            )
        return response
