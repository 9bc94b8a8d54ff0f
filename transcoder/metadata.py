"""HTTP headers ↔ gRPC metadata, and the ``Grpc-Timeout`` deadline (contract §7).

To the upstream, from raw ASGI headers::

    Authorization: Bearer t           → ("authorization", "Bearer t")       (listed)
    Grpc-Metadata-Tenant: acme        → ("tenant", "acme")
    Grpc-Metadata-Trace-Bin: AAEC     → ("trace-bin", b"\\x00\\x01\\x02")
    User-Agent: curl/8                → ("x-forwarded-user-agent", "curl/8")  (if listed)
    X-Forwarded-For: 1.2.3.4          → ("x-forwarded-for", "1.2.3.4, <peer>")
    Grpc-Metadata-Grpc-Timeout: 1S    → dropped (never metadata; see ``deadline``)

From the upstream, as response headers::

    ("tenant", "acme")                → Grpc-Metadata-Tenant: acme
    ("trace-bin", b"\\r\\n")            → Grpc-Metadata-Trace-Bin: DQo=

Decisions beyond the contract:

- Blocked names (hop-by-hop, ``host``, ``content-*``, ``cookie``,
  ``proxy-authorization``, ``grpc-*``) are dropped silently, whether listed or
  sent with the prefix. So is ``x-forwarded-for`` sent with the prefix: that key
  is the gateway's, built from the client's ``X-Forwarded-For`` and the peer.
- ``user-agent`` sent with the prefix is renamed like a listed one.
- A text value must be printable ASCII (0x20-0x7E, what gRPC allows); a tab is
  refused too. This applies to listed headers as well as prefixed ones: 400.
- A second ``authorization`` (as ``Authorization`` or ``Grpc-Metadata-Authorization``)
  is a 400 even when ``authorization`` is not forwarded.
- ``deadline``: ``0S`` gives 0.0 (already expired); no header with a default of 0
  gives None and is not capped (streams run without a deadline unless configured).
- Responses skip every ``grpc-*`` key (gRPC reserves the prefix), not only
  ``grpc-status``, ``grpc-message`` and ``grpc-status-details-bin``.
- Response text values are stripped of surrounding spaces and dropped if they hold
  any control character other than tab, or anything outside latin-1: both HTTP
  servers refuse such values, and CR/LF would split the response.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable

from transcoder.errors import GatewayError

log = logging.getLogger("transcoder")

Metadata = tuple[tuple[str, str | bytes], ...]

METADATA_PREFIX = "grpc-metadata-"
TRAILER_PREFIX = "grpc-trailer-"

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NEVER_FORWARDED = _HOP_BY_HOP | {"host", "cookie", "proxy-authorization", "x-forwarded-for"}
_NEVER_FORWARDED_PREFIXES = ("content-", "grpc-")

# Keys the gRPC layer owns in responses (all of ``grpc-*``, ``:*``): never echoed as headers.
_RESERVED_RESPONSE_KEYS = frozenset({"content-type", "te"})

_KEY = re.compile(r"[0-9a-z._-]+")
_ASCII_TEXT = re.compile(r"[\x20-\x7e]*")
_BASE64 = re.compile(r"([A-Za-z0-9+/_-]*)(=*)")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
# Control characters HTTP/1.1 servers refuse in a header value (tab is allowed).
_UNSAFE_RESPONSE_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_GRPC_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def outgoing_metadata(
    headers: Iterable[tuple[bytes, bytes]], *, forward: frozenset[str], client_host: str | None
) -> Metadata:
    """The metadata sent upstream for these raw ASGI request headers."""
    metadata: list[tuple[str, str | bytes]] = []
    forwarded_for: list[str] = []
    authorization_seen = False
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "x-forwarded-for":
            _check_text(name, value)
            if value.strip(" \t"):
                forwarded_for.append(value.strip(" \t"))
            continue
        prefixed = name.startswith(METADATA_PREFIX)
        key = name[len(METADATA_PREFIX) :] if prefixed else name
        if key == "authorization":  # layers disagree on which copy wins
            if authorization_seen:
                raise GatewayError.invalid_argument(name, "authorization sent more than once")
            authorization_seen = True
        if not (prefixed or name in forward) or _blocked(key):
            continue
        if not key:
            raise GatewayError.invalid_argument(name, "empty metadata key")
        if not _KEY.fullmatch(key):
            raise GatewayError.invalid_argument(
                name, "metadata keys may hold only 0-9, a-z, '.', '_' and '-'"
            )
        if key == "user-agent":  # gRPC owns user-agent
            key = "x-forwarded-user-agent"
        if key.endswith("-bin"):
            metadata.append((key, _decode_base64(name, value)))
        else:
            _check_text(name, value)
            metadata.append((key, value))
    if client_host is not None:
        forwarded_for.append(client_host)
    if forwarded_for:
        metadata.append(("x-forwarded-for", ", ".join(forwarded_for)))
    return tuple(metadata)


def _blocked(key: str) -> bool:
    return key in _NEVER_FORWARDED or key.startswith(_NEVER_FORWARDED_PREFIXES)


def _check_text(header: str, value: str) -> None:
    if not _ASCII_TEXT.fullmatch(value):
        raise GatewayError.invalid_argument(
            header, "value must be printable ASCII (no control characters or non-ASCII)"
        )


def _decode_base64(header: str, value: str) -> bytes:
    """Standard or URL-safe base64, padding optional (gRPC accepts unpadded)."""
    match = _BASE64.fullmatch(value)
    if match is not None and _padding_fits(*match.groups()):
        data = match.group(1).translate(_URLSAFE_TO_STANDARD)
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    raise GatewayError.invalid_argument(header, "value of a -bin key must be base64")


def _padding_fits(data: str, padding: str) -> bool:
    if len(data) % 4 == 1:
        return False
    return not padding or (len(data) % 4 != 0 and (len(data) + len(padding)) % 4 == 0)


def parse_grpc_timeout(value: str) -> float:
    """``Grpc-Timeout`` (1-8 digits and a unit: H, M, S, m, u, n) → seconds."""
    match = _GRPC_TIMEOUT.fullmatch(value)
    if match is None:
        raise GatewayError.invalid_argument(
            "grpc-timeout", "expected 1 to 8 digits followed by one of H, M, S, m, u, n"
        )
    digits, unit = match.groups()
    return int(digits) * _TIMEOUT_UNITS[unit]


def deadline(
    headers: Iterable[tuple[bytes, bytes]], *, default_seconds: float, max_seconds: float
) -> float | None:
    """Seconds the upstream call may take, or None for no deadline."""
    values = [value for name, value in headers if name.lower() == b"grpc-timeout"]
    if len(values) > 1:
        raise GatewayError.invalid_argument("grpc-timeout", "sent more than once")
    if values:
        seconds = parse_grpc_timeout(values[0].decode("latin-1"))
    elif default_seconds > 0:
        seconds = default_seconds
    else:
        return None
    return min(seconds, max_seconds) if max_seconds > 0 else seconds


def response_headers(
    metadata: Iterable[tuple[str, str | bytes]], prefix: str
) -> list[tuple[bytes, bytes]]:
    """Upstream metadata → raw ASGI headers ``prefix + key`` (prefix from this module)."""
    headers: list[tuple[bytes, bytes]] = []
    for raw_key, value in metadata:
        key = raw_key.lower()
        reserved = key in _RESERVED_RESPONSE_KEYS or key.startswith("grpc-")
        if reserved or not _KEY.fullmatch(key):  # the pattern also refuses ":status"
            continue
        if isinstance(value, bytes) or key.endswith("-bin"):
            data = value if isinstance(value, bytes) else value.encode()
            encoded = base64.b64encode(data)
        else:
            text = value.strip(" \t")
            if _UNSAFE_RESPONSE_TEXT.search(text):
                continue
            try:
                encoded = text.encode("latin-1")
            except UnicodeEncodeError:
                continue
        headers.append(((prefix + key).encode("ascii"), encoded))
    return headers


_MEDIA_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]*")


def content_type_header(text: str) -> bytes:
    """An upstream ``google.api.HttpBody`` content type as a header value.

    It comes from the upstream, so it is checked like any value put into a header:
    CR/LF would split the response, non-latin-1 text would fail in uvicorn.  An
    invalid or empty one becomes ``application/octet-stream``.
    """
    if _MEDIA_TYPE.fullmatch(text):
        return text.encode("ascii")
    if text:
        log.warning("upstream HttpBody content type %r is not a valid header value", text)
    return b"application/octet-stream"
