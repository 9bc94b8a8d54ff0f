"""``GET /openapi.json`` and ``GET /docs``: the document and Swagger UI, served by the gateway.

Swagger UI 5 (it renders OpenAPI 3.1) comes from the ``fastapi-offline``
package's static files (python-stack notes §8); the page, its start script and
those files are all served under ``/docs``, so the page loads nothing from
another host (contract §10) and a Content-Security-Policy says so to the
browser.  The page refers to everything by relative URL, so it also works
behind a proxy that mounts the gateway under a path prefix::

    GET /docs                           the page
    GET /docs/assets/swagger-ui.css     Swagger UI's files, from fastapi-offline
    GET /docs/assets/swagger-ui-bundle.js
    GET /docs/assets/favicon.png
    GET /docs/assets/init.js            starts Swagger UI on openapi.json

Everything is read and serialized once, at startup, with an ETag; a request
costs a lookup (and a ``304`` when the browser has it already).
"""

from __future__ import annotations

import hashlib
import html
import importlib.resources
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from transcoder.errors import GatewayError, error_bytes

DOCS_URL = "/docs"
ASSETS_PREFIX = "/docs/assets/"

# Swagger UI's files in fastapi-offline's ``static`` folder, and their media types.
PACKAGE_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}

# Only this origin: scripts, styles, images (Swagger UI inlines some as data: URLs) and
# fetches ("Try it out" calls this gateway; the document names no other server).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>transcoder - Swagger UI</title>
<link rel="stylesheet" href="{assets}swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}swagger-ui-bundle.js"></script>
<script src="{assets}init.js"></script>
</body>
</html>
"""

# Contract §2: a variable spanning several segments ({name=shelves/*/books/*}) keeps an
# encoded %2F inside one segment, but Swagger UI percent-encodes every "/" of a path
# parameter; rawSlashes() puts them back for the parameters the document marks
# x-transcoder-multi-segment before a "Try it out" request leaves.
INIT_JS = r""""use strict";
window.transcoderDocs = (() => {
  let routes = null;

  function compile(paths) {
    const compiled = [];
    for (const [path, item] of Object.entries(paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const multi = new Set(
          (operation.parameters || [])
            .filter((p) => p.in === "path" && p["x-transcoder-multi-segment"])
            .map((p) => p.name),
        );
        if (multi.size === 0) continue;
        const parts = path.split(/(\{[^}]*\})/);
        const source = parts
          .map((part, i) => (i % 2 ? "([^/]+)" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
          .join("");
        const regex = new RegExp(`^${source}$`);
        compiled.push({ method: method.toUpperCase(), parts, multi, regex });
      }
    }
    return compiled;
  }

  function rawSlashes(method, url, paths) {
    if (paths) {
      routes = compile(paths);
    } else if (routes === null) {
      const spec = window.ui && window.ui.specSelectors.specJson().toJS();
      if (!spec || !spec.paths) return url;
      routes = compile(spec.paths);
    }
    const target = new URL(url, window.location.href);
    for (const route of routes) {
      if (route.method !== (method || "GET").toUpperCase()) continue;
      const match = route.regex.exec(target.pathname);
      if (!match) continue;
      let group = 0;
      target.pathname = route.parts
        .map((part, i) => {
          if (i % 2 === 0) return part;
          const value = match[++group];
          return route.multi.has(part.slice(1, -1)) ? value.replace(/%2F/gi, "/") : value;
        })
        .join("");
      return target.href;
    }
    return url;
  }

  return { rawSlashes };
})();

window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  requestInterceptor: (request) => {
    request.url = window.transcoderDocs.rawSlashes(request.method, request.url);
    return request;
  },
});
"""


@dataclass(frozen=True, slots=True)
class StaticBody:
    """A response body fixed at startup."""

    body: bytes
    media_type: str
    etag: str
    headers: Mapping[str, str]

    @classmethod
    def of(cls, body: bytes, media_type: str, **headers: str) -> StaticBody:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body, media_type, etag, headers)

    def respond(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": "no-cache", **self.headers}
        if _matches(request.headers.get("if-none-match"), self.etag):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def openapi_route(api: FastAPI, document: Mapping[str, Any], url: str = "/openapi.json") -> None:
    """``GET url``: the document, serialized once."""
    body = StaticBody.of(orjson.dumps(document), "application/json")

    async def openapi(request: Request) -> Response:
        return body.respond(request)

    api.add_route(url, openapi, methods=["GET"], include_in_schema=False)


def docs_routes(api: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """``GET /docs`` and ``GET /docs/assets/{name}`` (the dispatcher sends both here)."""
    base = posixpath.dirname(DOCS_URL)
    page = PAGE.format(
        assets=html.escape(posixpath.relpath(ASSETS_PREFIX, base) + "/"),
        openapi=html.escape(posixpath.relpath(openapi_url, base)),
    )
    document = StaticBody.of(
        page.encode(),
        "text/html; charset=utf-8",
        **{"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
    assets = _assets()

    async def docs(request: Request) -> Response:
        return document.respond(request)

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            error = GatewayError.not_found(f"no documentation asset {request.url.path}")
            return Response(error_bytes(error), error.http_status, media_type="application/json")
        return found.respond(request)

    api.add_route(DOCS_URL, docs, methods=["GET"], include_in_schema=False)
    api.add_route(ASSETS_PREFIX + "{name:path}", asset, methods=["GET"], include_in_schema=False)


def _assets() -> dict[str, StaticBody]:
    static = importlib.resources.files("fastapi_offline") / "static"
    nosniff = {"X-Content-Type-Options": "nosniff"}
    assets = {
        name: StaticBody.of((static / name).read_bytes(), media_type, **nosniff)
        for name, media_type in PACKAGE_ASSETS.items()
    }
    assets["init.js"] = StaticBody.of(INIT_JS.encode(), "text/javascript; charset=utf-8")
    return assets
