"""The unary call's disconnect guard (gateway._CancelOnDisconnect) and protocol.Disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

from transcoder.gateway import _CancelOnDisconnect
from transcoder.protocol import Disconnect


class FakeCall:
    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> bool:
        self.cancels += 1
        return True


async def never() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_the_hook_cancels_the_call_when_the_connection_is_lost() -> None:
    disconnect, call = Disconnect(), FakeCall()
    guard = _CancelOnDisconnect(call, never, disconnect)  # type: ignore[arg-type]
    assert disconnect.hooks == {guard}
    disconnect.fire()
    assert call.cancels == 1
    assert guard.fired
    assert not disconnect.hooks


async def test_a_finished_call_leaves_no_hook_behind() -> None:
    """Keep-alive connections serve many calls: each must take its hook away."""
    disconnect = Disconnect()
    calls = [FakeCall() for _ in range(3)]
    for call in calls:
        _CancelOnDisconnect(call, never, disconnect).close()  # type: ignore[arg-type]
    assert not disconnect.hooks
    disconnect.fire()
    assert [c.cancels for c in calls] == [0, 0, 0]


async def test_a_connection_already_lost_cancels_at_once() -> None:
    disconnect, call = Disconnect(), FakeCall()
    disconnect.fire()
    guard = _CancelOnDisconnect(call, never, disconnect)  # type: ignore[arg-type]
    assert guard.fired
    assert call.cancels == 1


async def test_without_a_hook_a_task_waits_for_http_disconnect() -> None:
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    call = FakeCall()
    guard = _CancelOnDisconnect(call, messages.get, None)  # type: ignore[arg-type]
    await messages.put({"type": "http.request", "body": b"", "more_body": False})
    await asyncio.sleep(0.01)
    assert call.cancels == 0
    await messages.put({"type": "http.disconnect"})
    await asyncio.sleep(0.01)
    assert call.cancels == 1
    assert guard.fired
    guard.close()
