"""How many updates are handled at once - counting work, not waiting for Telegram.

An update holds a slot while the core handles it. When that handling waits for
Telegram - a staff group's limit of 20 messages a minute, a 429 pause, a network
back-off - the slot is given back (:func:`outside_slot`) and taken again afterwards:
a busy programme's staff group must not use up the slots every other person's
conversation needs. The slot travels with the handling task in a context variable,
so the send path (deep inside the core's ``on_message``) can find it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class _Held:
    slots: asyncio.Semaphore
    task: asyncio.Task[object] | None
    held: bool = True


_current: ContextVar[_Held | None] = ContextVar("telegram_update_slot", default=None)


class Slots:
    """A bound on updates in handling (``TelegramConfig.concurrency``)."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(max(1, size))

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Handle one update in a slot (given back while it waits for Telegram)."""
        await self._slots.acquire()
        held = _Held(self._slots, asyncio.current_task())
        token = _current.set(held)
        try:
            yield
        finally:
            _current.reset(token)
            if held.held:
                held.held = False
                self._slots.release()


@contextlib.asynccontextmanager
async def outside_slot() -> AsyncIterator[None]:
    """Wait (for a limit, a pause, a back-off) without holding the update's slot.

    Outside a slot (a send from the outbox retry loop, a chore, another task the
    core started) this does nothing.
    """
    held = _current.get()
    if held is None or not held.held or held.task is not asyncio.current_task():
        yield
        return
    held.held = False
    held.slots.release()
    try:
        yield
    except asyncio.CancelledError:
        raise  # given back for good: hold() does not release it again
    except BaseException:
        await _take_again(held)
        raise
    await _take_again(held)


async def _take_again(held: _Held) -> None:
    await held.slots.acquire()
    held.held = True
