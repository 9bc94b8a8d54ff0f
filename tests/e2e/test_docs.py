"""``/openapi.json`` and ``/docs`` on a running gateway (contract §10).

The docs page must work with no host but the gateway: its HTML names no
``http://`` or ``https://`` URL, every asset it references is served here, and
headless Chromium (Debian's ``chromium``, never downloaded; skipped when absent,
except under CI) renders Swagger UI's operations while every request to any
other host is failed by the DevTools ``Fetch`` domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import pytest

from tests.browser import Chromium, DevTools, Page
from tests.e2e.conftest import Gateway, StartGateway

RENDER_TIMEOUT = 20  # seconds: Swagger UI parses 1.5 MB of script, then the document


class References(HTMLParser):
    """Every ``src`` and ``href`` in a page, and the ``data-openapi-url`` Swagger UI loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.openapi: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        self.openapi += [value for name, value in attrs if name == "data-openapi-url" and value]


def references(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


async def test_openapi_json_equals_the_cli_output(gateway: Gateway, descriptor_set: Path) -> None:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "transcoder", "openapi", "--descriptor-set", str(descriptor_set)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
    )
    assert result.returncode == 0, result.stderr
    assert response.json() == json.loads(result.stdout)
    assert response.json()["openapi"] == "3.1.0"


async def test_openapi_json_follows_the_json_settings(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(json={"use_proto_names": True, "use_enum_numbers": True})
    document = (await gateway.client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "double_field" in schemas["transcoder.testing.v1.Everything"]["properties"]
    assert schemas["transcoder.testing.v1.Color"]["enum"] == [0, 1, 2, 3]


async def test_openapi_json_is_serialized_once_and_revalidates_with_etag(
    gateway: Gateway,
) -> None:
    first = await gateway.client.get("/openapi.json")
    again = await gateway.client.get(
        "/openapi.json", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    head = await gateway.client.head("/openapi.json")
    assert head.status_code == 200
    assert head.headers["etag"] == first.headers["etag"]


async def test_docs_page_names_no_other_host_and_every_asset_is_served(
    gateway: Gateway,
) -> None:
    response = await gateway.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "http://" not in html
    assert "https://" not in html
    assert "'self'" in response.headers["content-security-policy"]

    found = references(html)
    assert [urljoin(str(response.url), u) for u in found.openapi] == [gateway.url + "/openapi.json"]
    urls = found.urls
    assert len(urls) == 4  # stylesheet, icon, Swagger UI, the script that starts it
    expected_types = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in urls:
        absolute = urljoin(str(response.url), url)
        assert urlsplit(absolute).netloc == urlsplit(gateway.url).netloc, url
        asset = await gateway.client.get(absolute)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert asset.headers["content-type"].startswith(expected_types[suffix]), url
        assert len(asset.content) > 0
        cached = await gateway.client.get(
            absolute, headers={"If-None-Match": asset.headers["etag"]}
        )
        assert cached.status_code == 304


async def test_unknown_docs_asset_is_a_404_error_object(gateway: Gateway) -> None:
    for path in ("/docs/assets/nope.js", "/docs/assets/../assets/x", "/docs/assets/a/b"):
        response = await gateway.client.get(path)
        assert response.status_code == 404, path  # the client's hook checks the error shape
        assert response.json()["error"] == "NOT_FOUND"


async def test_docs_disabled_turns_off_openapi_json_and_docs(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(docs={"enabled": False})
    for path in ("/openapi.json", "/docs", "/docs/assets/swagger-ui-bundle.js"):
        response = await gateway.client.get(path)
        assert response.status_code == 404, path  # the client's hook checks the error shape
        assert response.json()["error"] == "NOT_FOUND"
    assert (await gateway.client.get("/healthz")).status_code == 200


# -- in a browser --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def only_origin(page: Page, origin: str) -> AsyncIterator[list[str]]:
    """Fail every request of ``page`` to another origin; yield every URL it requested.

    The DevTools ``Fetch`` domain pauses each request; a pump answers each pause
    (``Page`` logs events, it has no callbacks, so the pump polls the log).
    """
    requested: list[str] = []
    await page.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

    async def pump() -> None:
        seen = 0
        while True:
            while seen < len(page.events):
                method, params = page.events[seen]
                seen += 1
                if method != "Fetch.requestPaused":
                    continue
                url = params["request"]["url"]
                requested.append(url)
                if url == origin or url.startswith(origin + "/"):
                    await page.send("Fetch.continueRequest", {"requestId": params["requestId"]})
                else:
                    await page.send(
                        "Fetch.failRequest",
                        {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                    )
            await asyncio.sleep(0.005)

    task = asyncio.ensure_future(pump())
    try:
        yield requested
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def page(chromium: Chromium) -> AsyncIterator[Page]:
    async with DevTools.connect(chromium.endpoint) as devtools, devtools.page() as tab:
        await tab.send("Log.enable")
        yield tab


async def wait_for(page: Page, expression: str) -> Any:
    """The value of ``expression`` once it is truthy (the page re-checks it every 25 ms)."""
    with anyio.fail_after(RENDER_TIMEOUT):
        return await page.evaluate(
            "new Promise((resolve) => { const check = () => { const value = "
            f"{expression}; if (value) resolve(value); else setTimeout(check, 25); }}; check(); }})"
        )


def browser_errors(page: Page) -> list[Any]:
    """Console errors, uncaught exceptions and CSP reports the page produced."""
    errors: list[Any] = []
    for method, params in page.events:
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"])
    return errors


async def test_docs_render_in_chromium_with_other_hosts_blocked(
    gateway: Gateway, page: Page
) -> None:
    document = (await gateway.client.get("/openapi.json")).json()
    operations = sum(len(item) for item in document["paths"].values())

    async with only_origin(page, gateway.url) as requested:
        await page.goto(gateway.url + "/docs")
        shown = await wait_for(page, "document.querySelectorAll('#swagger-ui .opblock').length")
        version = await page.evaluate(
            "document.querySelector('#swagger-ui .version-stamp')?.textContent ?? ''"
        )

    assert shown == operations
    assert "OAS 3.1" in version
    assert requested, "the pump saw no request"
    assert all(url.startswith(gateway.url + "/") for url in requested), requested
    assert f"{gateway.url}/openapi.json" in requested
    assert browser_errors(page) == []


async def test_try_it_out_sends_multi_segment_variables_with_raw_slashes(
    gateway: Gateway, page: Page
) -> None:
    """Swagger UI encodes ``/`` in path parameters; ``{x=shelves/*/books/*}`` needs it raw."""
    async with only_origin(page, gateway.url):
        await page.goto(gateway.url + "/docs")
        await wait_for(page, "document.querySelectorAll('#swagger-ui .opblock').length")
        rewritten = await page.evaluate(
            "[window.transcoderDocs.rawSlashes('GET', '/v1/shelves%2F1%2Fbooks%2F2'),"
            " window.transcoderDocs.rawSlashes('GET', '/v1/files/a%2Fb?x=%2F'),"
            " window.transcoderDocs.rawSlashes('GET', '/v1/everything/a%2Fb'),"
            " window.transcoderDocs.rawSlashes('POST', '/v1/shelves%2F1%2Fbooks%2F2:publish')]"
        )
        origin = gateway.url
        assert rewritten == [
            f"{origin}/v1/shelves/1/books/2",
            f"{origin}/v1/files/a/b?x=%2F",
            "/v1/everything/a%2Fb",  # a single-segment variable: untouched
            f"{origin}/v1/shelves/1/books/2:publish",
        ]

        # The real thing: expand the operation, "Try it out", fill the variable, Execute.
        result = await page.evaluate(TRY_IT_OUT % json.dumps("shelves/1/books/2"))
        status = await wait_for(
            page,
            "[...document.querySelectorAll('.opblock')]"
            ".find((e) => e.id.endsWith('-Echo_GetResource'))"
            "?.querySelector('.live-responses-table .response .response-col_status')?.textContent",
        )
    assert result == "clicked"
    assert status.strip() == "200"
    sent = [u for u in page.responses() if "/v1/shelves/" in u["url"]]
    assert [r["url"] for r in sent] == [f"{origin}/v1/shelves/1/books/2"]
    assert sent[0]["status"] == 200


# Drives Swagger UI like a person: React listens for input events on the native setter.
TRY_IT_OUT = """
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (find) => {
    for (let i = 0; i < 200; i++) {
      const found = find();
      if (found) return found;
      await sleep(25);
    }
    throw new Error("not found: " + find);
  };
  const block = [...document.querySelectorAll(".opblock")].find(
    (e) => e.id.endsWith("-Echo_GetResource"));
  block.querySelector(".opblock-summary-control").click();
  (await until(() => block.querySelector(".try-out__btn"))).click();
  const input = await until(() => block.querySelector("tr[data-param-name='string_field'] input"));
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
  setter.call(input, %s);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  input.dispatchEvent(new FocusEvent("focusout", { bubbles: true }));  // ends the debounce
  (await until(() => block.querySelector(".execute"))).click();
  return "clicked";
})()
"""
