"""OpenAPI 3.1 from the route plan: one operation per HTTP binding, built once at startup.

Each binding becomes an operation (``operationId`` ``Service_Method``, then
``_1``, ``_2`` ... for additional bindings, in annotation order; tagged with the
service; summary and description from the method's leading comment)::

    get: "/v1/{name=shelves/*/books/*}:publish"
      → "/v1/{name}:publish", path parameter name with pattern ^shelves/[^/]+/books/[^/]+$

- Path parameters are named after the template's field paths; an anonymous
  ``*`` / ``**`` becomes ``wildcard.N`` (no field path can be that name).  A
  variable that spans several segments is marked ``x-transcoder-multi-segment``:
  its ``/`` must be sent raw (contract §2), and ``/docs`` does so.
- Query parameters (when ``body`` is not ``"*"``): every field path the query
  may set (contract §3) that the path and body leave free: scalars, enums,
  repeated ones (repeat the key), well-known types with a text form, fields
  of singular nested messages as ``a.b``, and maps of text values as
  ``deepObject`` (``m[key]=value``).  A nested message already on the current
  path (recursion) or deeper than ``MAX_QUERY_DEPTH`` levels is not descended.
- Request body: the request message (``body: "*"``) or the field's schema;
  ``google.api.HttpBody`` in or out is raw ``*/*``.
- Responses: ``200`` with the response message (or ``response_body`` field);
  server-streaming methods under ``application/x-ndjson`` and
  ``text/event-stream`` (contract §6); ``default`` is the error object (§5).
- Schemas: ``json_schema.SchemaBuilder`` (components keyed by full name).

Left out, and listed with the reason under ``x-transcoder-omitted``: bindings
with an HTTP method OpenAPI has no operation for (custom kinds such as
``SEARCH``, or ``*``), shadowed bindings (contract §2), and a binding whose
OpenAPI path and method an earlier one already took (e.g. ``{x}`` and ``{x=**}``
both become ``{x}``) or whose path differs from an earlier one only in
parameter names (OpenAPI treats those paths as the same).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import quote

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from transcoder import __version__
from transcoder.config import Settings
from transcoder.descriptors import Descriptors, is_map
from transcoder.errors import CODE_BY_NUMBER
from transcoder.http_rules import MethodKind, Route, RoutePlan
from transcoder.json_schema import (
    COMPONENTS,
    WELL_KNOWN,
    Comments,
    Schema,
    SchemaBuilder,
    SchemaOptions,
    map_schema,
)
from transcoder.path_template import DoubleWildcard, Literal, Segment, Variable, Wildcard

OPENAPI_METHODS = frozenset(("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"))
MAX_QUERY_DEPTH = 6  # field path parts of a query parameter
ERROR_RESPONSE = {"$ref": "#/components/responses/Error"}
BINARY: Schema = {"type": "string", "format": "binary"}
ANY = "google.protobuf.Any"

# RFC 3986 pchar characters a path template literal may hold unescaped.
_PATH_SAFE = "!$&'()+,;=@"
# ECMA-262 syntax characters (JSON Schema patterns are ECMA-262, maybe in Unicode mode).
_REGEX_SYNTAX = re.compile(r"[\^$\\.*+?()[\]{}|/]")


def openapi_document(
    plan: RoutePlan,
    descriptors: Descriptors,
    settings: Settings,
    *,
    comments: Comments | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``plan`` (JSON-ready).

    ``comments`` default to the leading comments the descriptor files carry (from
    files or reflection, when they were built with source info).
    """
    if comments is None:
        comments = Comments.from_files(descriptors.protos)
    builder = SchemaBuilder(
        SchemaOptions(
            use_proto_names=settings.json.use_proto_names,
            use_enum_numbers=settings.json.use_enum_numbers,
        ),
        comments,
    )
    error_name = _error_name(descriptors)
    paths: dict[str, dict[str, Any]] = {}
    omitted: list[dict[str, str]] = []
    tags: dict[str, dict[str, str]] = {}
    by_shape: dict[str, tuple[str, Route]] = {}  # parameters blanked → (path, first route)
    taken: dict[tuple[str, str], Route] = {}  # (path, method) → route
    shadowed = {id(route): winner for route, winner in plan.shadowed}
    ids = _operation_ids(plan.routes)
    for route in plan.routes:
        path, path_parameters = _path(route, builder)
        shape = re.sub(r"\{[^}]*\}", "{}", path)
        reason = None
        if route.http_method not in OPENAPI_METHODS:
            reason = f"OpenAPI has no operation for HTTP method {route.http_method}"
        elif id(route) in shadowed:
            reason = f"shadowed by {shadowed[id(route)].describe()} (contract §2)"
        elif shape in by_shape and by_shape[shape][0] != path:
            reason = (
                f"its OpenAPI path {path} differs only in parameter names from "
                f"{by_shape[shape][0]} ({by_shape[shape][1].describe()})"
            )
        elif (path, route.http_method) in taken:
            first = taken[path, route.http_method]
            reason = f"same OpenAPI path {path} and method as {first.describe()}"
        if reason is not None:
            omitted.append(
                {
                    "method": route.http_method,
                    "path": str(route.template),
                    "rpc": route.rpc_name,
                    "reason": reason,
                }
            )
            continue
        by_shape.setdefault(shape, (path, route))
        taken[path, route.http_method] = route
        service = route.method.containing_service
        if service.full_name not in tags:
            tags[service.full_name] = {"name": service.full_name}
            if description := comments.get(service.full_name):
                tags[service.full_name]["description"] = description
        operation = _operation(
            route, ids[id(route)], path_parameters, builder, settings, error_name
        )
        paths.setdefault(path, {})[route.http_method.lower()] = operation

    builder.components[error_name] = _error_schema(builder, descriptors)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "transcoder",
            "version": __version__,
            "description": _info_description(settings, error_name, len(omitted)),
        },
        "tags": list(tags.values()),
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.components.items())),
            "responses": {
                "Error": {
                    "description": (
                        "An error from the gateway or the upstream; the HTTP status follows "
                        "the gRPC code."
                    ),
                    "content": {"application/json": {"schema": {"$ref": COMPONENTS + error_name}}},
                }
            },
        },
    }
    if omitted:
        document["x-transcoder-omitted"] = omitted
    return document


def _operation_ids(routes: tuple[Route, ...]) -> dict[int, str]:
    """``Service_Method`` (package added where two services share a name), ``_N`` per binding."""
    short = {r.rpc_name: f"{r.method.containing_service.name}_{r.method.name}" for r in routes}
    clashes = Counter(short.values())
    ids: dict[int, str] = {}
    used: set[str] = set()
    bindings: Counter[str] = Counter()
    for route in routes:
        base = short[route.rpc_name]
        if clashes[base] > 1:
            base = route.rpc_name.replace(".", "_")
        index = bindings[route.rpc_name]
        bindings[route.rpc_name] += 1
        candidate = base if index == 0 else f"{base}_{index}"
        while candidate in used:  # e.g. method Get_1 beside Get's second binding
            candidate += "_"
        used.add(candidate)
        ids[id(route)] = candidate
    return ids


# -- paths and parameters -------------------------------------------------------------


def _path(route: Route, builder: SchemaBuilder) -> tuple[str, list[Schema]]:
    """The OpenAPI path of the route's template and its path parameters."""
    template = route.template
    by_start = {v.start: v for v in template.variables}
    parts: list[str] = []
    parameters: list[Schema] = []
    wildcards = 0
    index = 0
    while index < len(template.segments):
        variable = by_start.get(index)
        if variable is not None:
            parameter = _variable_parameter(route, variable, builder)
            index = variable.end
        else:
            segment = template.segments[index]
            index += 1
            if isinstance(segment, Literal):
                parts.append(quote(segment.value, safe=_PATH_SAFE))
                continue
            wildcards += 1
            parameter = _wildcard_parameter(f"wildcard.{wildcards}", segment)
        parts.append("{" + parameter["name"] + "}")
        parameters.append(parameter)
    path = "/" + "/".join(parts)
    if template.verb is not None:
        path += ":" + quote(template.verb, safe=_PATH_SAFE)
    return path, parameters


def _segments_text(segments: tuple[Segment, ...]) -> str:
    return "/".join(
        s.value if isinstance(s, Literal) else "**" if isinstance(s, DoubleWildcard) else "*"
        for s in segments
    )


def _segments_pattern(segments: tuple[Segment, ...]) -> str:
    """``shelves/*/books/**`` → ``^shelves/[^/]+/books/[^/]+(/[^/]+)*$`` (routing's rules)."""
    parts = []
    for segment in segments:
        if isinstance(segment, Literal):
            parts.append(_REGEX_SYNTAX.sub(lambda m: "\\" + m.group(0), segment.value))
        elif isinstance(segment, Wildcard):
            parts.append("[^/]+")
        else:
            parts.append("[^/]+(/[^/]+)*")
    return "^" + "/".join(parts) + "$"


def _variable_parameter(route: Route, variable: Variable, builder: SchemaBuilder) -> Schema:
    name = ".".join(variable.field_path)
    leaf = route.variables[variable.field_path][-1]
    schema = builder.text_schema(leaf) or {"type": "string"}
    parameter: Schema = {"name": name, "in": "path", "required": True}
    notes = [builder.field_description(leaf)]
    segments = route.template.segments[variable.start : variable.end]
    if segments != (Wildcard(),):
        pattern = _segments_pattern(segments)
        text = _segments_text(segments)
        if schema.get("type") == "string":
            schema["pattern"] = pattern
        if variable.multi_segment:
            parameter["x-transcoder-multi-segment"] = True
            notes.append(
                f"Matches `{text}`: several path segments, sent with their `/` unencoded "
                "(an encoded `%2F` stays part of one segment)."
            )
        else:
            notes.append(f"Matches `{text}`.")
    parameter["schema"] = schema
    _set_description(parameter, notes)
    return parameter


def _wildcard_parameter(name: str, segment: Segment) -> Schema:
    parameter: Schema = {"name": name, "in": "path", "required": True}
    if isinstance(segment, DoubleWildcard):
        parameter["schema"] = {"type": "string", "pattern": _segments_pattern((segment,))}
        parameter["x-transcoder-multi-segment"] = True
        parameter["description"] = (
            "Any one or more path segments (`**`, sent with their `/` unencoded); "
            "not bound to a request field."
        )
    else:
        parameter["schema"] = {"type": "string"}
        parameter["description"] = "Any one path segment (`*`); not bound to a request field."
    return parameter


def _query_parameters(route: Route, builder: SchemaBuilder) -> list[Schema]:
    """What the query may set (contract §3) and neither the path nor the body does."""
    if route.body == "*":
        return []  # every field comes from the body; a query parameter is a 400
    taken = {tuple(f.name for f in fields) for fields in route.variables.values()}
    if route.body_field is not None:
        taken.add((route.body_field.name,))
    parameters: list[Schema] = []

    def walk(
        message: Descriptor, names: tuple[str, ...], proto_path: tuple[str, ...], seen: set[str]
    ) -> None:
        for field in message.fields:
            path = (*proto_path, field.name)
            if path in taken:
                continue
            name = ".".join((*names, builder.field_name(field)))
            nested = field.message_type
            if nested is not None and is_map(field):
                text = builder.text_schema(nested.fields_by_name["value"])
                if text is not None:
                    schema = map_schema(nested.fields_by_name["key"], text)
                    note = f"Map entries, each as `{name}[key]=value`."
                    parameters.append(_query_parameter(name, schema, field, builder, note))
                    # example {}: Swagger UI would otherwise fill in "additionalProp1" keys.
                    parameters[-1].update(style="deepObject", explode=True, example={})
                continue
            text = builder.text_schema(field)
            if text is not None:
                if field.is_repeated:
                    schema = {"type": "array", "items": text}
                    note = f"Repeat `{name}` for each element."
                    parameters.append(_query_parameter(name, schema, field, builder, note))
                    parameters[-1].update(style="form", explode=True)
                else:
                    parameters.append(_query_parameter(name, text, field, builder, None))
                continue
            assert nested is not None  # text_schema covers every scalar and enum
            if (
                field.is_repeated
                or nested.full_name in WELL_KNOWN
                or nested.full_name in seen
                or len(path) >= MAX_QUERY_DEPTH
            ):
                continue  # no text form, recursion, or too deep
            walk(nested, (*names, builder.field_name(field)), path, {*seen, nested.full_name})

    request = route.method.input_type
    walk(request, (), (), {request.full_name})
    return parameters


def _query_parameter(
    name: str, schema: Schema, field: FieldDescriptor, builder: SchemaBuilder, note: str | None
) -> Schema:
    parameter: Schema = {"name": name, "in": "query", "schema": schema}
    _set_description(parameter, [builder.field_description(field), note])
    if field.GetOptions().deprecated:
        parameter["deprecated"] = True
    return parameter


def _set_description(target: Schema, parts: list[str | None]) -> None:
    text = "\n\n".join(p for p in parts if p)
    if text:
        target["description"] = text


# -- operations ---------------------------------------------------------------------


def _operation(
    route: Route,
    operation_id: str,
    path_parameters: list[Schema],
    builder: SchemaBuilder,
    settings: Settings,
    error_name: str,
) -> dict[str, Any]:
    method = route.method
    comment = builder.description(method.full_name) or ""
    paragraphs = [p for p in comment.split("\n\n") if p.strip()]
    summary = " ".join(paragraphs[0].split()) if paragraphs else method.name
    kind = "server streaming" if route.kind is MethodKind.SERVER_STREAMING else "unary"
    about = f"gRPC method `{route.grpc_path}` ({kind})."
    if not route.annotated:
        about += " No `google.api.http` annotation: the whole request is the JSON body."
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [method.containing_service.full_name],
        "summary": summary,
        "description": "\n\n".join([*paragraphs[1:], about]),
    }
    parameters = [*path_parameters, *_query_parameters(route, builder)]
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(route, builder, settings)
    if body is not None:
        operation["requestBody"] = body
    ok = _ok_response(route, builder, settings, error_name)
    operation["responses"] = {"200": ok, "default": ERROR_RESPONSE}
    if method.GetOptions().deprecated:
        operation["deprecated"] = True
    return operation


def _request_body(route: Route, builder: SchemaBuilder, settings: Settings) -> Schema | None:
    if route.body is None:
        return None
    if route.request_is_http_body or route.body_is_http_body:
        return {
            "description": (
                "The raw body, passed to the method as `google.api.HttpBody` with its Content-Type."
            ),
            "content": {"*/*": {"schema": dict(BINARY)}},
        }
    field = route.body_field
    if field is None:
        schema = builder.ref(route.method.input_type)
        notes: list[str | None] = [
            f"The request message `{route.method.input_type.full_name}`; "
            "path parameters override its fields."
        ]
    else:
        schema = builder.field_schema(field, describe=False)
        notes = [
            f"The request field `{builder.field_name(field)}`.",
            builder.field_description(field),
        ]
        mask = route.patch_mask_field
        if mask is not None and settings.request.patch_field_mask:
            notes.append(
                f"When `{builder.field_name(mask)}` is not set, the gateway fills it with the "
                "JSON keys sent."
            )
    notes.append("An empty body means `{}`.")
    body: Schema = {"content": {"application/json": {"schema": schema}}}
    _set_description(body, notes)
    return body


def _ok_response(
    route: Route, builder: SchemaBuilder, settings: Settings, error_name: str
) -> dict[str, Any]:
    streaming = route.kind is MethodKind.SERVER_STREAMING
    if route.response_is_http_body:
        return {
            "description": (
                "The raw bytes of each `google.api.HttpBody`, one after the other"
                if streaming
                else "The raw bytes of the `google.api.HttpBody`, with its content type"
            ),
            "content": {"*/*": {"schema": dict(BINARY)}},
        }
    output = route.method.output_type
    field = route.response_body_field
    if field is None:
        schema = builder.ref(output)
        what = f"`{output.full_name}`"
    else:
        schema = builder.field_schema(field, describe=False)
        what = f"the `{builder.field_name(field)}` field of `{output.full_name}`"
    if not streaming:
        return {"description": f"OK: {what}.", "content": {"application/json": {"schema": schema}}}
    s = settings.streaming
    if s.ndjson_envelope:
        line: Schema = {
            "type": "object",
            "properties": {"result": schema, "error": {"$ref": COMPONENTS + error_name}},
        }
        ndjson = 'one `{"result": message}` per line; a failure ends with `{"error": {...}}`'
    else:
        line = schema
        ndjson = "one message per line; a failure ends with the error object as the last line"
    sse = (
        "Server-sent events: `id: N` and `data: <message>` per message; `: keepalive` "
        f"comments while idle; a failure ends with `event: {s.sse_error_event}` carrying "
        'the error object; the normal end is `event: end` with `data: {"trailers": {...}}`.'
    )
    return {
        "description": (
            f"A stream of {what}, in the format `Accept` prefers (NDJSON on a tie).\n\n"
            f"- `application/x-ndjson`: {ndjson}.\n"
            "- `text/event-stream`: server-sent events (see the schema)."
        ),
        "content": {
            "application/x-ndjson": {"schema": line},
            "text/event-stream": {"schema": {"type": "string", "description": sse}},
        },
    }


# -- document-level parts -------------------------------------------------------------


def _error_name(descriptors: Descriptors) -> str:
    """``Error``, unless a message without a package took that component name."""
    try:
        descriptors.pool.FindMessageTypeByName("Error")
    except KeyError:
        return "Error"
    return "transcoder.Error"


def _error_schema(builder: SchemaBuilder, descriptors: Descriptors) -> Schema:
    """Contract §5's error object."""
    details = builder.ref(descriptors.pool.FindMessageTypeByName(ANY))
    codes = sorted(CODE_BY_NUMBER.items())
    return {
        "type": "object",
        "description": "Every error, from the gateway or the upstream (contract §5).",
        "required": ["code", "error", "message", "details"],
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "enum": [number for number, _ in codes if number],
                "description": "The numeric gRPC status code.",
            },
            "error": {
                "type": "string",
                "enum": [code.name for number, code in codes if number],
                "description": "The code's canonical name.",
            },
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": details,
                "description": "The `google.rpc.Status` details, as proto3 JSON `Any` objects.",
            },
        },
    }


def _info_description(settings: Settings, error_name: str, omitted: int) -> str:
    j = settings.json
    names = "proto field names" if j.use_proto_names else "lowerCamelCase JSON names"
    enums = "numbers" if j.use_enum_numbers else "names"
    text = (
        "gRPC methods served over HTTP/JSON by transcoder, one operation per "
        "`google.api.http` binding.\n\n"
        f"Bodies follow the proto3 JSON mapping: fields by their {names}, enums by "
        f"{enums}, 64-bit integers as strings. Input is laxer: both field names, numbers "
        "for 64-bit integers, enum names or numbers. Every error is the "
        f"`{error_name}` object with the HTTP status of its gRPC code; a unary method may "
        "answer another status when its upstream sets `x-http-code`."
    )
    if omitted:
        text += (
            f"\n\n{omitted} binding(s) cannot be shown here (`x-transcoder-omitted` "
            "says which and why)."
        )
    return text
