"""``python -m tests.reliability.probe serve ...``: exactly ``python -m transcoder serve ...``,
plus one line ``PROBE tasks=N`` on stderr on each SIGUSR1 (the asyncio tasks of the
gateway's event loop), so a test can watch a gateway process's task count (goal G7).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType

from transcoder.cli import main


def _report(signum: int, frame: FrameType | None) -> None:
    try:
        tasks = len(asyncio.all_tasks(asyncio.get_running_loop()))
    except RuntimeError:  # not inside the running loop (yet)
        tasks = -1
    sys.stderr.write(f"PROBE tasks={tasks}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _report)
    raise SystemExit(main(sys.argv[1:]))
