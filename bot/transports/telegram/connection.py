"""The connection to the Bot API: PTB's application, its request classes, ``getMe``.

PTB is used for sending only (no Updater, no job queue): receiving is ours
(:mod:`.receiving`), so ``getUpdates`` has its own request object with one
connection and a read timeout longer than the long poll.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import urlencode

from telegram import BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder, ExtBot
from telegram.request import BaseRequest, HTTPXRequest

from bot.transports.base import SendLater
from bot.transports.telegram.aiohttp_request import AiohttpRequest
from bot.transports.telegram.calls import BotCalls, SendFailed
from bot.transports.telegram.config import TelegramConfig
from bot.transports.telegram.limiter import FloodLimiter
from bot.transports.telegram.render import (
    DEFAULT_LANGUAGE,
    PERSON_COMMANDS,
    STAFF_COMMANDS,
    bot_commands,
)
from bot.transports.telegram.updates import ALLOWED_UPDATES
from config.settings import ConfigError

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


class Connection:
    """PTB's application and request objects, built per start.

    Args:
        config: where the Bot API is, timeouts, throttle, request class.
        sleep: how to wait between ``getMe`` attempts.
    """

    def __init__(self, config: TelegramConfig, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.config = config
        self._sleep = sleep
        self.app: AnyApplication | None = None
        self._updates_request: BaseRequest | None = None

    @property
    def bot(self) -> ExtBot[Any]:
        """PTB's bot (after :meth:`build`)."""
        if self.app is None:
            raise RuntimeError("telegram transport not started")
        bot: ExtBot[Any] = self.app.bot
        return bot

    def _request(self, pool: int, read_timeout: float) -> BaseRequest:
        c = self.config
        backend: type[AiohttpRequest] | type[HTTPXRequest] = (
            AiohttpRequest if c.http_backend == "aiohttp" else HTTPXRequest
        )
        return backend(
            connection_pool_size=pool,
            connect_timeout=c.connect_timeout,
            read_timeout=read_timeout,
            write_timeout=c.write_timeout,
            pool_timeout=c.pool_timeout,
        )

    def build(self) -> AnyApplication:
        """A new application (sending request, ``getUpdates`` request, throttle)."""
        c = self.config
        root = c.base_url.rstrip("/")
        self._updates_request = self._request(1, c.poll_timeout + c.read_timeout)
        builder = (
            ApplicationBuilder()
            .token(c.token)
            .base_url(f"{root}/bot")
            .base_file_url(f"{root}/file/bot")
            .request(self._request(c.connection_pool_size, c.read_timeout))
            .get_updates_request(self._updates_request)
            .job_queue(None)
            .updater(None)
        )
        if c.rate_limit:
            limiter = FloodLimiter(c.overall_per_second, c.group_per_minute)
            self.app = builder.rate_limiter(limiter).build()
        else:
            self.app = builder.build()
        return self.app

    def backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1)))

    async def initialize(self, retries: int | None = None) -> None:
        """``Application.initialize`` (``getMe``) with bounded retries on network errors."""
        if self.app is None:
            raise RuntimeError("telegram transport not built")
        attempt = 0
        while True:
            try:
                # PTB opens its requests only once; a failed attempt closed them.
                for request in (self.app.bot.request, self._updates_request):
                    if request is not None:
                        await request.initialize()
                await self.app.initialize()
                return
            except InvalidToken as exc:
                await self.close_requests()
                raise ConfigError("telegram.token was refused by the Bot API") from exc
            except TelegramError as exc:
                # A failed initialize leaves the HTTP clients open.
                await self.close_requests()
                attempt += 1
                if attempt > (self.config.network_retries if retries is None else retries):
                    raise
                log.warning("Bot API not reachable (%s); retrying", type(exc).__name__)
                await self._sleep(self.backoff(attempt))

    async def close_requests(self) -> None:
        """Close the HTTP clients (sending and ``getUpdates``)."""
        if self.app is None:
            return
        for request in {self.app.bot.request, self._updates_request}:
            if request is not None:
                with contextlib.suppress(Exception):
                    await request.shutdown()

    async def close(self) -> None:
        """Stop and shut down the application, close the HTTP clients."""
        if self.app is None:
            return
        app = self.app
        if app.running:
            await app.stop()
        with contextlib.suppress(Exception):
            await app.shutdown()
        await self.close_requests()
        self.app = None

    async def get_updates(self, offset: int, *, wait: int, limit: int = 100) -> Any:
        """Raw ``getUpdates`` (JSON, not PTB objects: one bad update must not fail a batch)."""
        if self._updates_request is None or self.app is None:
            raise RuntimeError("telegram transport not started")
        params = {"timeout": wait, "limit": limit, "allowed_updates": json.dumps(ALLOWED_UPDATES)}
        if offset:
            params["offset"] = offset
        return await self._updates_request.post(
            f"{self.bot.base_url}/getUpdates?{urlencode(params)}",
            read_timeout=wait + self.config.read_timeout,
        )


async def set_commands(calls: BotCalls) -> None:
    """Command menus: person commands in private chats, staff commands in groups."""
    menus = (
        (PERSON_COMMANDS, BotCommandScopeAllPrivateChats()),
        (STAFF_COMMANDS, BotCommandScopeAllGroupChats()),
    )
    for table, scope in menus:
        for language in table:
            with contextlib.suppress(SendFailed, SendLater):  # menus are a convenience
                await calls.call(
                    partial(
                        calls.bot.set_my_commands,
                        bot_commands(table, language),
                        scope=scope,
                        language_code=None if language == DEFAULT_LANGUAGE else language,
                    ),
                    what="setMyCommands",
                )
