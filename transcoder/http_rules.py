"""``google.api.http`` annotations → validated ``Route`` s and the frozen route table.

Everything a request needs from the descriptors is resolved here, once, at
startup: the parsed template, the field descriptors of every path variable, the
body and response-body fields, whether HttpBody is involved, the PATCH mask
field.  A rule that cannot work (bad template, a variable naming no field, an
unknown body field) is a ``ConfigError`` naming the method, so ``serve`` stops
before it listens (contract §1).

Rules taken from the contract (§2): methods without an annotation are served at
``POST /<package>.<Service>/<Method>`` (``routes.unannotated``); ``grpc.health.*``
and ``grpc.reflection.*`` are never mapped; client-streaming and bidirectional
methods are skipped with a reason; the first of two bindings with the same HTTP
method and template wins and the other is reported as shadowed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from transcoder import path_template
from transcoder.descriptors import Descriptors, method_options
from transcoder.errors import ConfigError
from transcoder.path_template import PathTemplate
from transcoder.query import resolve_field_path
from transcoder.routing import RouteTable, RouteTableBuilder

log = logging.getLogger("transcoder")

HTTP_BODY = "google.api.HttpBody"
FIELD_MASK = "google.protobuf.FieldMask"
NEVER_MAPPED = ("grpc.health.", "grpc.reflection.")


class MethodKind(enum.Enum):
    UNARY = "unary"
    SERVER_STREAMING = "server-streaming"


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of one RPC, with everything resolved at startup."""

    http_method: str
    template: PathTemplate
    method: MethodDescriptor
    grpc_path: str  # "/pkg.Service/Method"
    kind: MethodKind
    body: str | None  # None: no body; "*": the whole request; else a top-level field name
    body_field: FieldDescriptor | None
    response_body_field: FieldDescriptor | None
    variables: dict[tuple[str, ...], tuple[FieldDescriptor, ...]]
    request_is_http_body: bool  # the whole request is google.api.HttpBody (body "*")
    body_is_http_body: bool  # the body field is google.api.HttpBody
    response_is_http_body: bool
    patch_mask_field: FieldDescriptor | None  # FieldMask to fill from the JSON keys (PATCH)
    annotated: bool
    label: str = ""  # the template as written: the route's name in metrics and logs

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", str(self.template))

    @property
    def rpc_name(self) -> str:
        return self.method.full_name

    def describe(self) -> str:
        return f"{self.http_method} {self.template} ({self.rpc_name})"


@dataclass(frozen=True, slots=True)
class Skipped:
    rpc_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The route table and what `transcoder routes` reports beside it."""

    table: RouteTable[Route]
    routes: tuple[Route, ...]
    skipped: tuple[Skipped, ...]
    shadowed: tuple[tuple[Route, Route], ...]  # (shadowed, winner)


def build_plan(
    descriptors: Descriptors,
    *,
    services: Sequence[str] = (),
    unannotated: bool = True,
) -> RoutePlan:
    """Every exposed service's methods → routes; ConfigError if none results."""
    wanted = set(services)
    known = {s.full_name for s in descriptors.services()}
    if missing := sorted(wanted - known):
        raise ConfigError(f"routes.services: no service named {missing[0]!r} in the descriptors")
    routes: list[Route] = []
    skipped: list[Skipped] = []
    for service in descriptors.services():
        if service.full_name.startswith(NEVER_MAPPED):
            continue
        if wanted and service.full_name not in wanted:
            continue
        for method in service.methods:
            if method.client_streaming:
                kind = "bidirectional" if method.server_streaming else "client-streaming"
                skipped.append(Skipped(method.full_name, f"{kind} methods are not routed yet"))
                continue
            rule = _http_rule(method)
            if rule is None:
                if unannotated:
                    routes.append(_unannotated_route(method))
                else:
                    skipped.append(Skipped(method.full_name, "no google.api.http annotation"))
                continue
            routes.extend(_routes_for_rule(method, rule))
    if not routes:
        raise ConfigError("no routes: the descriptors have no method that can be routed")

    builder: RouteTableBuilder[Route] = RouteTableBuilder()
    for route in routes:
        builder.add(route.http_method, route.template, route)
    table = builder.build()
    for shadowed, winner in table.shadowed:
        log.warning(
            "route %s is shadowed by %s (same method and template; the first wins)",
            shadowed.describe(),
            winner.describe(),
        )
    return RoutePlan(table, tuple(routes), tuple(skipped), tuple(table.shadowed))


def _http_rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    options = method_options(method)
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return rule


def _rules(rule: http_pb2.HttpRule) -> Iterable[http_pb2.HttpRule]:
    yield rule
    for extra in rule.additional_bindings:
        if extra.additional_bindings:
            # http.proto: additional bindings must not nest.
            raise ConfigError("additional_bindings must not contain additional_bindings")
        yield extra


def _routes_for_rule(method: MethodDescriptor, rule: http_pb2.HttpRule) -> list[Route]:
    try:
        return [_route(method, r) for r in _rules(rule)]
    except ConfigError as exc:
        raise ConfigError(f"{method.full_name}: {exc}") from None


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise ConfigError("google.api.http names no HTTP method and path")
    if pattern == "custom":
        http_method, raw_template = rule.custom.kind.upper(), rule.custom.path
        if not http_method:
            raise ConfigError("custom binding has an empty kind")
    else:
        http_method, raw_template = pattern.upper(), getattr(rule, pattern)
    try:
        template = path_template.parse(raw_template)
    except path_template.TemplateError as exc:
        raise ConfigError(f"invalid path template {raw_template!r}: {exc}") from None

    request = method.input_type
    variables: dict[tuple[str, ...], tuple[FieldDescriptor, ...]] = {}
    for variable in template.variables:
        fields = resolve_field_path(request, variable.field_path)
        name = ".".join(variable.field_path)
        if fields is None:
            raise ConfigError(f"path variable {{{name}}} names no field of {request.full_name}")
        leaf = fields[-1]
        if leaf.is_repeated or leaf.type == FieldDescriptor.TYPE_MESSAGE:
            raise ConfigError(f"path variable {{{name}}} must be a singular scalar field")
        variables[variable.field_path] = fields

    body = rule.body or None
    body_field = None
    if body not in (None, "*"):
        body_field = request.fields_by_name.get(body)
        if body_field is None:
            raise ConfigError(f"body {body!r} names no top-level field of {request.full_name}")
    response_body_field = None
    if rule.response_body:
        response_body_field = method.output_type.fields_by_name.get(rule.response_body)
        if response_body_field is None:
            raise ConfigError(
                f"response_body {rule.response_body!r} names no top-level field of "
                f"{method.output_type.full_name}"
            )

    return Route(
        http_method=http_method,
        template=template,
        method=method,
        grpc_path=f"/{method.containing_service.full_name}/{method.name}",
        kind=MethodKind.SERVER_STREAMING if method.server_streaming else MethodKind.UNARY,
        body=body,
        body_field=body_field,
        response_body_field=response_body_field,
        variables=variables,
        request_is_http_body=body == "*" and request.full_name == HTTP_BODY,
        body_is_http_body=_is_message(body_field, HTTP_BODY),
        response_is_http_body=response_body_field is None
        and method.output_type.full_name == HTTP_BODY,
        patch_mask_field=_patch_mask_field(http_method, request, body_field),
        annotated=True,
    )


def _unannotated_route(method: MethodDescriptor) -> Route:
    service = method.containing_service.full_name
    template = path_template.parse(f"/{service}/{method.name}")
    request = method.input_type
    return Route(
        http_method="POST",
        template=template,
        method=method,
        grpc_path=f"/{service}/{method.name}",
        kind=MethodKind.SERVER_STREAMING if method.server_streaming else MethodKind.UNARY,
        body="*",
        body_field=None,
        response_body_field=None,
        variables={},
        request_is_http_body=request.full_name == HTTP_BODY,
        body_is_http_body=False,
        response_is_http_body=method.output_type.full_name == HTTP_BODY,
        patch_mask_field=None,
        annotated=False,
    )


def _is_message(field: FieldDescriptor | None, full_name: str) -> bool:
    return (
        field is not None
        and field.message_type is not None
        and not field.is_repeated
        and field.message_type.full_name == full_name
    )


def _patch_mask_field(
    http_method: str, request: Descriptor, body_field: FieldDescriptor | None
) -> FieldDescriptor | None:
    """grpc-gateway's rule: PATCH, ``body: "field"`` (a message), exactly one FieldMask field."""
    if http_method != "PATCH" or body_field is None or body_field.message_type is None:
        return None
    masks = [f for f in request.fields if _is_message(f, FIELD_MASK)]
    return masks[0] if len(masks) == 1 else None
