"""The gateway's two exceptions and the one place errors become HTTP answers.

``ConfigError`` stops the process before it listens (``cli.py`` prints it as one
line).  ``GatewayError`` is per request: every module raises it, and
``render()`` / ``error_body()`` turn it into the contract's error object
(contract §5)::

    {"code": 5, "error": "NOT_FOUND", "message": "book 7 not found", "details": []}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import grpc
import orjson

JsonObject = dict[str, Any]


class ConfigError(Exception):
    """A startup problem; the message names the key or file, on one line."""


# Contract §5: the code → HTTP status table.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

CODE_NUMBER: dict[grpc.StatusCode, int] = {c: c.value[0] for c in grpc.StatusCode}
CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def code_from_number(number: int) -> grpc.StatusCode:
    """The status code for a wire number; any number outside the table is UNKNOWN (§5)."""
    return CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


class GatewayError(Exception):
    """An error the client receives as the contract's error object."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        details: Sequence[JsonObject] = (),
        http_status: int | None = None,
        headers: Mapping[str, str] | None = None,
        raw_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        if code not in HTTP_STATUS:  # OK or a code outside the table
            code = grpc.StatusCode.UNKNOWN
        self.code = code
        self.message = message
        self.details = tuple(details)  # already proto3 JSON `Any` objects
        self.http_status = (
            http_status or HTTP_STATUS[code]
        )  # overridden for 405, 413, 414, 415, 431
        self.headers = dict(headers or {})  # e.g. Allow
        self.raw_headers = tuple(raw_headers)  # e.g. the upstream's Grpc-Metadata-* (§7)

    @classmethod
    def invalid_argument(cls, field: str, reason: str) -> Self:
        """400 naming the field, query parameter, header or JSON key at fault."""
        return cls(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {reason}")

    @classmethod
    def not_found(cls, message: str) -> Self:
        return cls(grpc.StatusCode.NOT_FOUND, message)

    @classmethod
    def method_not_allowed(cls, method: str, allow: Sequence[str]) -> Self:
        return cls(
            grpc.StatusCode.UNIMPLEMENTED,
            f"method {method} is not allowed for this path",
            http_status=405,
            headers={"Allow": ", ".join(sorted(set(allow)))},
        )

    @classmethod
    def too_large(cls, what: str, limit: int, http_status: int = 413) -> Self:
        return cls(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{what} exceeds the limit of {limit} bytes",
            http_status=http_status,
        )

    @classmethod
    def unsupported_media_type(cls, message: str) -> Self:
        return cls(grpc.StatusCode.INVALID_ARGUMENT, message, http_status=415)

    @classmethod
    def unavailable(cls, message: str) -> Self:
        return cls(grpc.StatusCode.UNAVAILABLE, message)

    @classmethod
    def internal(cls, message: str = "internal error") -> Self:
        return cls(grpc.StatusCode.INTERNAL, message)


def error_body(error: GatewayError) -> JsonObject:
    """The contract's error object, as used in bodies and in stream error frames."""
    return {
        "code": CODE_NUMBER[error.code],
        "error": error.code.name,
        "message": error.message,
        "details": list(error.details),
    }


def error_bytes(error: GatewayError) -> bytes:
    return orjson.dumps(error_body(error))


def render(error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw ASGI headers and body for an error answered before the response commits."""
    body = error_bytes(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    )
    headers.extend(error.raw_headers)
    return error.http_status, headers, body
