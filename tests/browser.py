"""A small headless-Chromium driver for the browser tests, over the DevTools protocol.

The browser is the system's ``chromium`` (Debian's package), found on ``PATH``; nothing
is downloaded.  ``Chromium`` starts it with ``--remote-debugging-port=0`` and a fresh
profile, and reads the port it chose from ``DevToolsActivePort`` in that profile.
``DevTools`` speaks the protocol (JSON over a websocket, ``websockets`` from
``uvicorn[standard]``) to the browser endpoint; ``Page`` is one tab in its own
browser context (no shared cookies or cache between tests) attached with a flat
session, so one websocket carries every command and event.

Only what the tests use: navigate and wait for that document's ``load``, evaluate an expression
(awaiting a promise, returning JSON), and a log of the tab's events (``Network.*``
among them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from websockets.asyncio.client import ClientConnection, connect

Json = dict[str, Any]

NAVIGATION_TIMEOUT = 10  # seconds, for a page on loopback

# Headless, and nothing that talks to the network on its own (without these flags the
# browser keeps trying to reach update, sync and field-trial servers).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--mute-audio",
)


class BrowserError(Exception):
    """The browser did not start, or a command or a page script failed."""


class Chromium:
    """One browser process with a fresh profile under ``workdir``; ``close()`` ends it."""

    def __init__(self, executable: str, workdir: Path, *, start_timeout: float = 20) -> None:
        profile = workdir / "profile"
        profile.mkdir(parents=True)
        self.log_path = workdir / "chromium.log"
        command = [
            executable,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended with it in close()
            )
        try:
            self.endpoint = self._wait_for_endpoint(profile / "DevToolsActivePort", start_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_for_endpoint(self, port_file: Path, timeout: float) -> str:
        """Poll for the ``port\\n/devtools/browser/<id>`` file the browser writes once listening."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(FileNotFoundError):
                lines = port_file.read_text().splitlines()
                if len(lines) >= 2 and lines[0].isdigit() and lines[1].startswith("/"):
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.02)
        raise BrowserError(f"chromium did not open its DevTools port in {timeout}s: {self.log()}")

    def log(self, tail: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        # Helpers (zygote, renderers) left behind in the browser's own process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


class DevTools:
    """A DevTools protocol connection: commands by id, events to the pages that asked."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, endpoint: str) -> AsyncIterator[DevTools]:
        async with connect(endpoint, max_size=None, ping_interval=None) as ws:
            devtools = cls(ws)
            try:
                yield devtools
            finally:
                devtools._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await devtools._reader

    async def send(
        self, method: str, params: Json | None = None, session: str | None = None
    ) -> Json:
        """Send one command and return its result; a protocol error raises ``BrowserError``."""
        if self._reader.done():
            raise BrowserError(f"the DevTools connection is closed ({method})")
        message: Json = {"id": next(self._ids), "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        await self._ws.send(json.dumps(message))
        return await future

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message: Json = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is None or future.done():
                        continue
                    if "error" in message:
                        future.set_exception(BrowserError(json.dumps(message["error"])))
                    else:
                        future.set_result(message.get("result", {}))
                elif (page := self._pages.get(message.get("sessionId", ""))) is not None:
                    page._event(message["method"], message.get("params", {}))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BrowserError("the DevTools connection closed"))
            self._pending.clear()

    @contextlib.asynccontextmanager
    async def page(self) -> AsyncIterator[Page]:
        """A new tab in a new browser context, with ``Page``, ``Runtime`` and ``Network`` on."""
        context = (await self.send("Target.createBrowserContext"))["browserContextId"]
        try:
            target = await self.send(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context}
            )
            attached = await self.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            page = Page(self, attached["sessionId"])
            self._pages[page.session] = page
            for domain in ("Page", "Runtime", "Network"):
                await page.send(f"{domain}.enable")
            await page.send("Page.setLifecycleEventsEnabled", {"enabled": True})
            yield page
        finally:
            await self.send("Target.disposeBrowserContext", {"browserContextId": context})


class Page:
    """One attached tab; ``events`` logs every event it received, in order."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session
        self.events: list[tuple[str, Json]] = []
        self._changed = asyncio.Event()

    def _event(self, method: str, params: Json) -> None:
        self.events.append((method, params))
        self._changed.set()

    async def send(self, method: str, params: Json | None = None) -> Json:
        return await self.devtools.send(method, params, self.session)

    async def wait_for_event(self, method: str, **match: Any) -> Json:
        """The first ``method`` event whose params include ``match``, once it came."""
        while True:
            for name, params in self.events:
                if name == method and all(params.get(k) == v for k, v in match.items()):
                    return params
            self._changed.clear()
            await self._changed.wait()

    async def goto(self, url: str) -> None:
        """Navigate and return once this navigation's document fired ``load``."""
        with anyio.fail_after(NAVIGATION_TIMEOUT):
            result = await self.send("Page.navigate", {"url": url})
            if "errorText" in result:
                raise BrowserError(f"navigation to {url} failed: {result['errorText']}")
            await self.wait_for_event(
                "Page.lifecycleEvent", name="load", loaderId=result["loaderId"]
            )

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (a promise is awaited); a JS exception raises."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"page script failed: {text}")
        return result["result"].get("value")

    def responses(self) -> list[Json]:
        """The ``Network.responseReceived`` responses so far (url, status, headers, ...)."""
        return [p["response"] for name, p in self.events if name == "Network.responseReceived"]
