"""``transcoder demo``, run as the README's quick start runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "transcoder", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean,
    )
    assert process.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        printed.append(line)
        if line.startswith("Ctrl-C") or not line:
            break
    text = "".join(printed)
    match = re.search(r"gateway on (http://[0-9.]+:[0-9]+)", text)
    assert match, text
    yield process, match.group(1), text
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stdout.close()


def test_demo_serves_the_example_and_its_page(demo: tuple[subprocess.Popen[str], str, str]) -> None:
    process, url, printed = demo
    assert f"curl -s {url}/v1/shelves" in printed
    with httpx.Client(base_url=url, timeout=10) as client:
        shelves = client.get("/v1/shelves").json()["shelves"]
        assert [s["id"] for s in shelves] == ["1", "2"]
        created = client.post(
            "/v1/shelves/1/books", json={"title": "Dune", "author": "Frank Herbert"}
        )
        assert created.status_code == 200
        assert created.json()["title"] == "Dune"
        missing = client.get("/v1/shelves/42")
        assert missing.status_code == 404
        assert missing.json()["details"][0]["@type"].endswith("google.rpc.ResourceInfo")
        stream = client.get("/v1/shelves/1/watch?count=2&interval_ms=50")
        assert len(stream.text.splitlines()) == 2
        sse = client.get(
            "/v1/shelves/1/watch?count=3&fail_after=1&interval_ms=50",
            headers={"accept": "text/event-stream"},
        )
        assert "event: stream-error" in sse.text
        page = client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert "new EventSource(" in page.text
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
