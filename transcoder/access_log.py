"""One log line per request: method, route, status, gRPC code, duration, request id.

``logging.format: json`` writes one JSON object per line; ``plain`` a
``key=value`` line.  Values are escaped so a client cannot forge log lines
(control characters become ``\\xNN``), the query string is left out (it may
carry tokens), and no header value other than the request id is ever logged.
"""

from __future__ import annotations

import logging
import re

import orjson

from transcoder.metrics import Exchange

log = logging.getLogger("transcoder.access")

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"\\]")


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class AccessLog:
    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def write(self, exchange: Exchange, path: str, seconds: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, object] = {
            "method": exchange.method,
            "path": path,
            "route": exchange.route,
            "status": exchange.status,
            "grpc_code": exchange.code or None,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": exchange.request_id,
            "bytes_in": exchange.bytes_in,
            "bytes_out": exchange.bytes_out,
        }
        if exchange.messages or exchange.keepalives:
            fields["messages"] = exchange.messages
            fields["keepalives"] = exchange.keepalives
        if self.json:
            log.info("%s", orjson.dumps(fields).decode())
        else:
            log.info(
                "%s",
                " ".join(
                    f'{k}="{_escape(v)}"' if isinstance(v, str) else f"{k}={v}"
                    for k, v in fields.items()
                    if v is not None
                ),
            )


def configure(level: str, fmt: str) -> None:
    """The gateway's log handler: stderr, one line per record, ours only."""
    logger = logging.getLogger("transcoder")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_transcoder", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._transcoder = True  # type: ignore[attr-defined]  # marks our own handler
        if fmt == "json":
            handler.setFormatter(_JsonFormatter())
        else:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
        logger.addHandler(handler)
        logger.propagate = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "transcoder.access" and message.startswith("{"):
            return message
        body: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(body).decode()
