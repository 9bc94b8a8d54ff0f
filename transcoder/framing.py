"""NDJSON lines and Server-Sent Events frames, as bytes (contract §6); no I/O here.

Every frame ends with ``\\n`` line ends, one ``data:`` line per line of data::

    sse_event(b'{"a":1}', id=1)            → b'id: 1\\ndata: {"a":1}\\n\\n'
    sse_event(b"{}", event="end")          → b'event: end\\ndata: {}\\n\\n'
    sse_comment("keepalive")               → b": keepalive\\n\\n"
    ndjson_line(b'{"a":1}')                → b'{"a":1}\\n'

``sse_event`` encodes what sse-starlette's ``ServerSentEvent(data=…, id=…,
event=…, sep="\\n").encode()`` encodes for the same text, with these deliberate
differences:

- ``data`` is bytes (the JSON encoder's output) and always gives at least one
  ``data:`` line: ``b""`` is ``data: \\n`` (sse-starlette omits data only for ``None``);
- ``id`` is an ``int`` (the contract counts from 1), so it cannot hold a line break;
- an ``event`` name holding CR or LF raises ``ValueError`` instead of having the
  line breaks silently removed (config validates ``streaming.sse_error_event``);
- ``retry:`` is a frame of its own (``sse_retry``), sent first in a stream.
"""

from __future__ import annotations

import re

KEEPALIVE_SSE: bytes = b": keepalive\n\n"
KEEPALIVE_NDJSON: bytes = b"\n"

# The SSE line ends (WHATWG HTML §9.2.5): CRLF, lone CR, lone LF.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")


def ndjson_line(data: bytes) -> bytes:
    """One NDJSON line: compact JSON holds no raw line break, so the caller's bytes go as-is."""
    return data + b"\n"


def ndjson_envelope(key: str, data: bytes) -> bytes:
    """grpc-gateway's envelope: ``{"result": msg}`` or ``{"error": obj}``, one line."""
    return b'{"' + key.encode() + b'":' + data + b"}\n"


def sse_event(data: bytes, *, id: int | None = None, event: str | None = None) -> bytes:
    """One SSE event: ``id:``, ``event:``, a ``data:`` line per line of ``data``, a blank line."""
    head = b""
    if id is not None:
        head = b"id: %d\n" % id
    if event is not None:
        if "\r" in event or "\n" in event:
            raise ValueError(f"SSE event name {event!r} contains a line break")
        head += b"event: " + event.encode() + b"\n"
    if b"\n" not in data and b"\r" not in data:  # compact JSON: the common case
        return head + b"data: " + data + b"\n\n"
    lines = _LINE_END.split(data)
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def sse_comment(text: str) -> bytes:
    """A comment frame (``: text``), one comment line per line of text; clients ignore it."""
    lines = _TEXT_LINE_END.split(text)
    return "".join(f": {line}\n" for line in lines).encode() + b"\n"


def sse_retry(ms: int) -> bytes:
    """A ``retry:`` frame: the client's reconnection delay in milliseconds."""
    if ms < 0:
        raise ValueError(f"SSE retry must be >= 0 ms, got {ms}")
    return b"retry: %d\n\n" % ms
