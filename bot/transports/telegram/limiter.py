"""Outbound throttling within Telegram's flood limits, with a lane for crisis replies."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.ext import BaseRateLimiter

from bot.transports.telegram.slots import outside_slot

#: What a Bot API call returns before PTB turns it into objects.
ApiResult = bool | dict[str, Any] | list[dict[str, Any]]

#: Above this many remembered groups, idle group limiters are forgotten.
MAX_GROUPS = 512


class FloodLimiter(BaseRateLimiter[bool]):
    """Throttles like PTB's ``AIORateLimiter`` (overall per second, per group per minute).

    Each group waits on its own: a staff group at its limit holds only the calls into
    that group, and while a call waits for it the update that caused it gives its slot
    back (:mod:`.slots`), so other chats' updates go on being handled.

    Differences: ``rate_limit_args=True`` marks an urgent call (a crisis reply) that
    skips every queue, and 429 answers are not retried here - the transport retries
    them itself (with one pause for all non-urgent calls), so a crisis reply never
    waits behind a throttled backlog.

    Args:
        overall_per_second: calls per second for the whole bot (0: unlimited).
        group_per_minute: calls per minute into one group (0: unlimited).
    """

    def __init__(self, overall_per_second: float = 30.0, group_per_minute: float = 20.0) -> None:
        self._overall = AsyncLimiter(overall_per_second, 1) if overall_per_second > 0 else None
        self._group_rate = group_per_minute
        self._groups: dict[int | str, AsyncLimiter] = {}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def held(self, chat: object) -> bool:
        """True while a call into ``chat`` would wait: its group or the whole bot is at
        its limit (the send queues then merge staff relays; nothing is taken here)."""
        key = _group_key(chat)
        group = self._groups.get(key) if key is not None else None
        if group is not None and not group.has_capacity():
            return True
        return self._overall is not None and not self._overall.has_capacity()

    def _group(self, chat: object) -> AsyncLimiter | None:
        if self._group_rate <= 0:
            return None
        key = _group_key(chat)
        if key is None:
            return None
        if key not in self._groups and len(self._groups) >= MAX_GROUPS:
            for name, limiter in list(self._groups.items()):
                if limiter.has_capacity(limiter.max_rate):
                    del self._groups[name]
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = AsyncLimiter(self._group_rate, 60)
        return found

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, ApiResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: bool | None,
    ) -> ApiResult:
        """Run one Bot API call, waiting for capacity unless it is urgent."""
        if rate_limit_args or "chat_id" not in data:
            return await callback(*args, **kwargs)
        group = self._group(data["chat_id"])
        if group is not None:
            await _take_group(group)
        if self._overall is not None:
            # Everyone shares this one (~30/s, short waits): the slot is kept, so the
            # updates in hand stay few (a stop lets them finish within seconds).
            await self._overall.acquire()
        return await callback(*args, **kwargs)


async def _take_group(limiter: AsyncLimiter) -> None:
    """One unit of a group's limit; a wait for it does not hold the update's slot."""
    if limiter.has_capacity():
        await limiter.acquire()
        return
    async with outside_slot():
        await limiter.acquire()


def _group_key(chat: object) -> int | str | None:
    """The key of a group's limiter (None: a private chat, or no chat)."""
    key: int | str
    if isinstance(chat, int):
        key = chat
    elif isinstance(chat, str) and chat.lstrip("-").isdigit():
        key = int(chat)
    elif isinstance(chat, str):
        key = chat  # @username: a channel or public group
    else:
        return None
    if isinstance(key, int) and key > 0:
        return None  # private chat
    return key
