"""The project's one check: format, lint, types, then the tests (what CI runs).

Usage: ``python scripts/check.py [pytest args...]``.  Browser tests need Debian's
``chromium``; without it they are skipped, except under CI (``CI=true``), where a
missing browser fails them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["transcoder", "tests", "examples", "scripts", "benchmarks"]


def step(title: str, *command: str) -> None:
    print(f"== {title}: {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        print(f"== {title} failed (exit {result.returncode})", flush=True)
        raise SystemExit(result.returncode)


def main() -> None:
    python = sys.executable
    paths = [p for p in PATHS if (ROOT / p).exists()]
    step("format", python, "-m", "ruff", "format", "--check", *paths)
    step("lint", python, "-m", "ruff", "check", *paths)
    step("types", python, "-m", "mypy", *paths)
    step("tests", python, "-m", "pytest", *sys.argv[1:])


if __name__ == "__main__":
    main()
