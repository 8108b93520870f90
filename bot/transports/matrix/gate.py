"""A bounded gate that serves the lightest waiter first.

Rooms ask for a turn per event with their backlog as the weight: a person with one
message waiting goes before a room that has hundreds queued (a flood), whatever the
order of asking; equal weights are served first come, first served. So a flood can
only ever be ahead of an ordinary message by the events already in the core.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["LightestFirst"]


class LightestFirst:
    """At most ``slots`` holders; a freed slot goes to the waiter of least weight."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def turn(self, weight: int) -> AsyncIterator[None]:
        await self._acquire(weight)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, weight: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (weight, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed over just before the cancel
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot passes on directly
                return
        self._free += 1
