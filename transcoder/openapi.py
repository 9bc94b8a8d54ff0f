"""OpenAPI 3.1 from the route table: one operation per binding.

This first version lists every route with its path parameters, request body and
the section-5 error object as the ``default`` response; message schemas are
open objects.  Full JSON schemas per message are the OpenAPI issue's work.
"""

from __future__ import annotations

from typing import Any

from transcoder import __version__
from transcoder.config import Settings
from transcoder.descriptors import Descriptors
from transcoder.http_rules import MethodKind, Route, RoutePlan
from transcoder.path_template import DoubleWildcard, Literal, Segment, Variable

OPENAPI_METHODS = frozenset(("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"))

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "error", "message", "details"],
    "properties": {
        "code": {"type": "integer", "description": "the numeric gRPC status code"},
        "error": {"type": "string", "description": "the gRPC status code's name"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}


def openapi_path(route: Route) -> str:
    """``/v1/{name=shelves/*}:publish`` → ``/v1/{name}:publish``."""
    template = route.template
    parts: list[str] = []
    index = 0
    by_start: dict[int, Variable] = {v.start: v for v in template.variables}
    while index < len(template.segments):
        variable = by_start.get(index)
        if variable is not None:
            parts.append("{" + ".".join(variable.field_path) + "}")
            index = variable.end
        else:
            parts.append(_segment_text(template.segments[index]))
            index += 1
    path = "/" + "/".join(parts)
    return f"{path}:{template.verb}" if template.verb else path


def _segment_text(segment: Segment) -> str:
    if isinstance(segment, Literal):
        return segment.value
    return "**" if isinstance(segment, DoubleWildcard) else "*"


def openapi_document(
    plan: RoutePlan, descriptors: Descriptors, settings: Settings
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in plan.routes:
        if route.http_method not in OPENAPI_METHODS:
            continue
        operations = paths.setdefault(openapi_path(route), {})
        method = route.http_method.lower()
        if method in operations:
            continue  # shadowed binding
        operations[method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "transcoder", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {
            "name": ".".join(v.field_path),
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        }
        for v in route.template.variables
    ]
    ok: dict[str, Any]
    if route.kind is MethodKind.SERVER_STREAMING:
        ok = {
            "description": "a stream of messages",
            "content": {
                "application/x-ndjson": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    else:
        ok = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    operation: dict[str, Any] = {
        "operationId": f"{route.rpc_name}.{route.http_method}.{route.template}",
        "summary": route.rpc_name,
        "parameters": parameters,
        "responses": {
            "200": ok,
            "default": {
                "description": "an error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if route.body is not None:
        operation["requestBody"] = {
            "content": {"application/json": {"schema": {}}},
        }
    return operation
