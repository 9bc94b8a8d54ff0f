"""Path variables + body + query string → the RPC's input message (contract §3).

Precedence: path variables win over the body, the body over the query.  A query
parameter may only fill fields that neither the path nor the body set; one that
names such a field is a 400, as is any query parameter on a ``body: "*"``
route (there every field comes from the body).

The body is JSON (``application/json`` or no content type), or a form
(``application/x-www-form-urlencoded``, read like a query string), or raw bytes
for ``google.api.HttpBody``.  Anything else, compressed bodies and gRPC content
types are answered 415.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.message import Message

from transcoder.errors import GatewayError
from transcoder.http_rules import Route
from transcoder.protojson import Codecs, JsonValue, field_paths, loads
from transcoder.query import (
    QueryOptions,
    assign_text,
    bind_query,
    parse_query_string,
    resolve_field_path,
)
from transcoder.routing import RouteMatch


@dataclass(frozen=True, slots=True)
class BindOptions:
    query: QueryOptions
    max_depth: int
    patch_field_mask: bool


@dataclass(frozen=True, slots=True)
class RequestParts:
    """What the HTTP request carried, as the gateway read it."""

    query: bytes
    body: bytes
    content_type: str | None  # the Content-Type header, as sent
    content_encoding: str | None


class _BodyKind(enum.Enum):
    JSON = "json"
    FORM = "form"


def build_request(
    match: RouteMatch[Route], parts: RequestParts, codecs: Codecs, options: BindOptions
) -> Message:
    route = match.target
    codec = codecs.codec(route.method.input_type)
    taken: set[str] = set()
    body_value: JsonValue = None

    if route.request_is_http_body:
        message = codec.message_class()
        _fill_http_body(message, parts)
    elif route.body is None:
        if parts.body:
            raise GatewayError.invalid_argument("body", "this method takes no request body")
        message = codec.message_class()
    elif route.body_is_http_body:
        assert route.body_field is not None
        message = codec.message_class()
        _fill_http_body(getattr(message, route.body_field.name), parts)
        taken.add(route.body_field.name)
    else:
        message, body_value = _message_from_body(route, parts, codecs, options, taken)

    for field_path, value in match.bindings:
        fields = route.variables[field_path]
        name = ".".join(field_path)
        assign_text(
            message,
            fields,
            value,
            name=name,
            case_insensitive_enums=options.query.case_insensitive_enums,
        )
        taken.add(".".join(f.name for f in fields))

    if parts.query:
        items = parse_query_string(parts.query)
        if route.body == "*":
            _reject_query_on_whole_body(route, items, options.query)
        else:
            bind_query(message, items, taken=taken, options=options.query)
    if route.patch_mask_field is not None and options.patch_field_mask:
        _fill_patch_mask(route, message, body_value)
    return message


def _body_kind(parts: RequestParts) -> _BodyKind:
    if parts.content_encoding and parts.content_encoding.strip().lower() != "identity":
        raise GatewayError.unsupported_media_type(
            f"Content-Encoding {parts.content_encoding!r} is not supported; "
            "send the body uncompressed"
        )
    if parts.content_type is None:
        return _BodyKind.JSON
    media_type = parts.content_type.split(";", 1)[0].strip().lower()
    if media_type in ("application/json", ""):
        return _BodyKind.JSON
    if media_type == "application/x-www-form-urlencoded":
        return _BodyKind.FORM
    raise GatewayError.unsupported_media_type(
        f"Content-Type {media_type!r} is not supported; send application/json"
    )


def _message_from_body(
    route: Route, parts: RequestParts, codecs: Codecs, options: BindOptions, taken: set[str]
) -> tuple[Message, JsonValue]:
    """The message the body describes, and the parsed JSON (None for a form or no body)."""
    codec = codecs.codec(route.method.input_type)
    kind = _body_kind(parts)
    field = route.body_field
    if kind == _BodyKind.FORM:
        if parts.body.lstrip()[:1] in (b"{", b"["):
            # curl -d sends this content type by default; say so instead of failing on
            # a "parameter" named after the whole JSON document.
            raise GatewayError.unsupported_media_type(
                "the body looks like JSON but Content-Type is application/x-www-form-urlencoded"
                " (curl -d sends that): send Content-Type: application/json"
            )
        message = codec.message_class()
        target = message
        if field is not None:
            if field.message_type is None or field.is_repeated:
                raise GatewayError.unsupported_media_type(
                    f"a form body cannot set the field {field.name!r}; send application/json"
                )
            target = getattr(message, field.name)
            taken.add(field.name)
        items = parse_query_string(parts.body)
        bind_query(target, items, taken=(), options=options.query)
        return message, None

    if not parts.body:
        # Contract §3: an empty body means {}.
        return codec.message_class(), None
    value: JsonValue = loads(parts.body, max_depth=options.max_depth)
    if field is None:
        # body "*": the query may set nothing (``_reject_query_on_whole_body``), so the
        # fields the body set need not be listed in ``taken`` (7.5 µs on the 1.2 KB body).
        return codec.decode(value), value
    # body: "field": decode the request as if the body were that one field's value,
    # so every field kind (message, scalar, repeated, map) takes the same path.
    message = codec.decode({field.name: value})
    taken.add(field.name)
    return message, value


def _fill_patch_mask(route: Route, message: Message, value: JsonValue) -> None:
    """Contract §3: PATCH with ``body: "field"`` and no mask sent → mask from the JSON keys."""
    mask_field, body_field = route.patch_mask_field, route.body_field
    assert mask_field is not None
    assert body_field is not None
    assert body_field.message_type is not None
    if message.HasField(mask_field.name):
        return
    if isinstance(value, dict):
        getattr(message, mask_field.name).paths.extend(field_paths(body_field.message_type, value))


def _fill_http_body(message: Message, parts: RequestParts) -> None:
    if parts.content_encoding and parts.content_encoding.strip().lower() != "identity":
        raise GatewayError.unsupported_media_type(
            f"Content-Encoding {parts.content_encoding!r} is not supported"
        )
    media_type = (parts.content_type or "").split(";", 1)[0].strip().lower()
    if media_type.startswith("application/grpc"):
        raise GatewayError.unsupported_media_type("gRPC content types are not transcoded")
    message.content_type = parts.content_type or ""  # type: ignore[attr-defined]  # HttpBody field
    message.data = parts.body  # type: ignore[attr-defined]  # HttpBody field


def _reject_query_on_whole_body(
    route: Route, items: list[tuple[str, str]], options: QueryOptions
) -> None:
    for key, _ in items:
        if key in options.ignored:
            continue
        if (
            options.ignore_unknown
            and resolve_field_path(route.method.input_type, key.split(".")) is None
        ):
            continue
        raise GatewayError.invalid_argument(
            key, 'query parameters are not accepted by this method (its body is "*")'
        )
