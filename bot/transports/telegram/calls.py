"""One Bot API call with Telegram's retry rules (429 pauses, network back-off, refusals).

429 answers pause the ordinary calls to the same chat (urgent ones - crisis replies -
go on) and are retried after ``retry_after``; network errors and 5xx answers are
retried with bounded exponential back-off and then handed back to the core
(:class:`SendLater`); permanent refusals (blocked, chat not found, bad request) raise
:class:`SendFailed` and are logged without ids. While a call waits for its chat's 429
pause, the update that caused it does not hold its slot (:mod:`.slots`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from bot.transports.base import SendLater
from bot.transports.telegram.config import TelegramConfig, TelegramStats
from bot.transports.telegram.slots import outside_slot

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The pause key of calls that name no chat (getMe, setMyCommands, ...).
NO_CHAT = "*"


class SendFailed(Exception):
    """A Bot API call was refused for good, or retries ran out."""

    def __init__(self, error: TelegramError) -> None:
        super().__init__(type(error).__name__)
        self.error = error

    @property
    def topic_gone(self) -> bool:
        """The forum topic was deleted or closed."""
        text = self.error.message.lower()
        return isinstance(self.error, BadRequest) and (
            "thread not found" in text or "topic_closed" in text or "topic_deleted" in text
        )


def seconds(value: int | timedelta) -> float:
    """``retry_after`` as seconds (PTB 22 gives a timedelta, older an int)."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class BotCalls:
    """Runs Bot API calls through PTB's bot with the retry rules above.

    Args:
        config: retry bounds and back-off.
        stats: counters to update.
        sleep: how to wait (tests pass a fast one).
        bot: returns PTB's bot (raises before the transport started).
    """

    def __init__(
        self,
        config: TelegramConfig,
        stats: TelegramStats,
        sleep: Callable[[float], Awaitable[None]],
        bot: Callable[[], ExtBot[Any]],
    ) -> None:
        self.config = config
        self.stats = stats
        self._sleep = sleep
        self._bot = bot
        #: Chats whose ordinary calls wait for a 429 pause -> (open event, pauses running).
        self._paused: dict[object, tuple[asyncio.Event, list[int]]] = {}

    @property
    def bot(self) -> ExtBot[Any]:
        """PTB's bot (after the transport started)."""
        return self._bot()

    @property
    def limited(self) -> bool:
        """Whether the throttle is on (urgent calls then mark themselves for it)."""
        return self.config.rate_limit

    def paused(self, chat: object) -> bool:
        """Whether ordinary calls to ``chat`` wait for a 429 pause."""
        return chat in self._paused

    def backoff(self, attempt: int) -> float:
        """Exponential back-off for ``attempt`` (1-based), bounded."""
        return float(min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1)))

    async def sleep(self, seconds: float) -> None:
        """Wait (back-off) without holding the update's slot."""
        async with outside_slot():
            await self._sleep(seconds)

    async def call(
        self,
        op: Callable[[], Awaitable[T]],
        *,
        what: str,
        chat: object = NO_CHAT,
        urgent: bool = False,
        quiet: bool = False,
        migrate: bool = False,
    ) -> T:
        """Run one Bot API call with Telegram's retry rules.

        Raises:
            SendFailed: refused for good, or still rate limited after the retries.
            SendLater: still unreachable (network errors, 5xx) after the retries.
            ChatMigrated: with ``migrate``, the group has a new id (the caller re-addresses).
        """
        floods = failures = 0
        while True:
            if not urgent:
                await self._unpaused(chat)
            try:
                return await op()
            except RetryAfter as exc:
                floods += 1
                self.stats.flood_waits += 1
                if floods > self.config.flood_retries:
                    log.error("%s: still rate limited after %d waits; given up", what, floods - 1)
                    raise SendFailed(exc) from None
                await self._flood_pause(chat, seconds(exc.retry_after))
            except ChatMigrated as exc:
                if migrate:
                    raise
                self._refused(what, exc, quiet)
                raise SendFailed(exc) from None
            except BadRequest as exc:  # a NetworkError subclass, but permanent
                self._refused(what, exc, quiet)
                raise SendFailed(exc) from None
            except NetworkError:  # incl. TimedOut and 5xx answers
                failures += 1
                self.stats.network_retries += 1
                if failures > self.config.network_retries:
                    log.error("%s failed after %d network errors", what, failures)
                    self.stats.send_later += 1
                    raise SendLater(what) from None  # the core keeps it and tries later
                await self._sleep(self.backoff(failures))  # everyone's problem: slot kept
            except TelegramError as exc:  # Forbidden (blocked), InvalidToken, Conflict, ...
                self._refused(what, exc, quiet)
                raise SendFailed(exc) from None

    @staticmethod
    def _refused(what: str, exc: TelegramError, quiet: bool) -> None:
        # Telegram's descriptions carry no ids; the log filter removes numbers anyway.
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "%s refused: %s (%s)",
            what,
            type(exc).__name__,
            exc.message[:120],
        )

    async def _unpaused(self, chat: object) -> None:
        paused = self._paused.get(chat)
        if paused is not None:
            async with outside_slot():
                await paused[0].wait()

    async def _flood_pause(self, chat: object, seconds: float) -> None:
        """Wait out a 429; ordinary calls to the same chat wait too (urgent ones go on,
        other chats are not held up)."""
        event, pauses = self._paused.setdefault(chat, (asyncio.Event(), [0]))
        pauses[0] += 1
        try:
            await self.sleep(seconds)
        finally:
            pauses[0] -= 1
            if pauses[0] == 0:
                event.set()
                self._paused.pop(chat, None)
