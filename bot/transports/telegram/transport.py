"""The Telegram transport: python-telegram-bot 22 for sending, our own loop for receiving.

This module wires the package together; each concern has its own module:

* :mod:`.config` - settings and counters;
* :mod:`.connection` - PTB's application and request classes, ``getMe``, menus;
* :mod:`.receiving` - lanes per chat (chats in parallel, each in order), the
  ``getUpdates`` loop and what may be confirmed; :mod:`.webhook` - the webhook server;
  :mod:`.updates` - raw updates -> inbound messages;
* :mod:`.sending` - the send path; :mod:`.texts`, :mod:`.topics` (forum topics),
  :mod:`.media` (copies of attachments); :mod:`.render` - texts, buttons, ids;
* :mod:`.calls` - one Bot API call with Telegram's retry rules; :mod:`.limiter` - the
  throttle (per chat, per group, overall); :mod:`.slots` - how many updates at once;
* :mod:`.membership` and :mod:`.staff_groups` - who may be in a staff group.

An update is acknowledged only after the core's ``on_message`` returned for it (its
effects committed): the offset of a later ``getUpdates`` confirms it, the webhook
answers 200 only then. A crash before that makes Telegram deliver it again; the core
drops it by ``update_id``. A chat that waits holds up no other chat.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from telegram.error import BadRequest, NetworkError
from telegram.ext import ExtBot

from bot.transports.base import InboundHandler, SendLater, first_of
from bot.transports.telegram.calls import BotCalls, SendFailed
from bot.transports.telegram.config import TelegramConfig, TelegramStats
from bot.transports.telegram.connection import Connection, set_commands
from bot.transports.telegram.membership import Membership
from bot.transports.telegram.receiving import Poller, Receiver
from bot.transports.telegram.sending import Sender
from bot.transports.telegram.webhook import WebhookServer
from config.directory import Directory
from config.messages import OutboundMessage, Platform, SendResult
from config.settings import ConfigError, Settings

log = logging.getLogger(__name__)

__all__ = ["SendFailed", "TelegramConfig", "TelegramStats", "TelegramTransport"]


class TelegramTransport:
    """A Telegram bot as an Ausweg transport (see the module docstring).

    Args:
        config: connection and behaviour settings.
        sleep: how to wait for back-off and 429 pauses (tests pass a fast one).
    """

    platform = Platform.TELEGRAM
    #: Undelivered events come again after a crash: the core keeps replies until sent.
    redelivers = True

    def __init__(
        self,
        config: TelegramConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # PTB 22: RetryAfter.retry_after as timedelta (the int form is deprecated).
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self.config = config
        self.stats = TelegramStats()
        self._connection = Connection(config, sleep)
        self._calls = BotCalls(config, self.stats, sleep, lambda: self._connection.bot)
        self._membership = Membership(self._calls)
        self._receiver = Receiver(config, self._calls, self._membership)
        self._poller = Poller(config, self._connection, self._receiver, self._calls)
        self._webhook = WebhookServer(config, self._calls, self._receiver)
        self._sender = Sender(self._calls)
        self._poll_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None
        #: Set while the Bot API has not been reached since the start (retrying).
        self.offline = asyncio.Event()
        self.online = False
        #: Set by the App for transports that create staff rooms (this one does not).
        self.on_staff_rooms: Callable[..., None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramTransport:
        """The production transport for ``settings.telegram``."""
        return cls(TelegramConfig.from_settings(settings))

    @property
    def leader_only(self) -> bool:
        """Polling runs on the leader only (two pollers conflict); every instance can
        serve the webhook."""
        return self.config.mode == "polling"

    @property
    def bot(self) -> ExtBot[Any]:
        """PTB's bot (after :meth:`start`)."""
        return self._connection.bot

    @property
    def unchecked_groups(self) -> dict[str, str]:
        """Programmes whose staff group the bot cannot police (no admin rights), and why."""
        return self._membership.unchecked_groups

    def use_directory(self, directory: Directory) -> None:
        """A (reloaded) directory: the staff groups and who belongs there."""
        self._membership.use_directory(directory, online=self.online)

    async def check_staff_groups(self) -> dict[str, str]:
        """Ask Telegram whether the bot can police each staff group (see Membership)."""
        return await self._membership.check_staff_groups()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, on_message: InboundHandler) -> None:
        """Connect (``getMe``), publish command menus, start polling or the webhook.

        A Bot API that stays unreachable through the retries does not fail the start:
        the other platforms run, a background task keeps trying, and ``send`` raises
        :class:`SendLater` meanwhile. A refused token does fail it (``ConfigError``).
        """
        self._receiver.handler = on_message
        self._receiver.stopping.clear()
        self._poller.ready.clear()
        self.offline.clear()
        self._connection.build()
        try:
            await self._go_online(retries=1)  # the other platforms should not wait long
        except (NetworkError, SendLater) as exc:
            if isinstance(exc, BadRequest):
                await self.stop()
                raise
            log.warning("Bot API not reachable; starting without Telegram, retrying")
            self.offline.set()
            self._connect_task = asyncio.create_task(self._connect_later(), name="telegram-connect")
        except BaseException:
            await self.stop()
            raise

    async def _go_online(self, retries: int | None = None) -> None:
        """``getMe``, command menus, then polling or the webhook (each step repeatable)."""
        app = self._connection.app
        if app is None:
            raise RuntimeError("telegram transport not built")
        await self._connection.initialize(retries)
        if not app.running:
            await app.start()
        if self.config.set_commands:
            await set_commands(self._calls)
        if self.config.mode == "webhook":
            await self._webhook.start()
            self._poller.ready.set()
        else:
            await self._calls.call(
                partial(self.bot.delete_webhook, drop_pending_updates=False),
                what="deleteWebhook",
            )
            self._poll_task = asyncio.create_task(self._poller.run(), name="telegram-poll")
        self.online = True
        self.offline.clear()
        log.info("telegram transport started (%s)", self.config.mode)
        await self.check_staff_groups()

    async def _connect_later(self) -> None:
        """Keep trying to reach the Bot API (back-off) until it answers or stop."""
        attempt = 0
        while not self._receiver.stopping.is_set():
            attempt += 1
            await self._poller.wait_or_stop(self._calls.backoff(attempt))
            if self._receiver.stopping.is_set():
                return
            try:
                await self._go_online()
                return
            except asyncio.CancelledError:
                raise
            except (ConfigError, SendFailed) as exc:  # refused: retrying will not help
                log.error("Telegram refused the start (%s); fix the settings", type(exc).__name__)
                return
            except Exception as exc:
                log.warning("Bot API still not reachable (%s); retrying", type(exc).__name__)

    async def stop(self) -> None:
        """Stop receiving, let in-flight updates finish, confirm them, close connections.

        Sending stays possible until the updates in hand are done: their replies go out
        now, not with the next start (SIGTERM leaves no work behind).
        """
        self._receiver.stopping.set()
        await self._membership.stop()
        if self._connect_task is not None:
            connecting, self._connect_task = self._connect_task, None
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        if self._poll_task is not None:
            task, self._poll_task = self._poll_task, None
            await asyncio.gather(task, return_exceptions=True)  # ends at once on stopping
        await self._receiver.drain(self.config.stop_timeout)
        if self.config.mode == "polling" and self._connection.app is not None:
            await self._poller.confirm()
        await self._webhook.stop()  # waits for the webhook requests in hand
        self.online = False  # from here on replies wait for the next start (SendLater)
        await self._connection.close()
        log.info("telegram transport stopped")

    async def wait_ready(self) -> None:
        """Return once receiving works (the first poll round is done or the webhook is
        set), or the start went on without the Bot API (``offline``; retrying)."""
        await first_of(self._poller.ready, self.offline)

    @property
    def connected(self) -> bool:
        """Receiving has worked since the start (the runner reports readiness on it)."""
        return self._poller.ready.is_set()

    async def wait_connected(self) -> None:
        """Return once receiving works (perhaps long after the start: an outage)."""
        await self._poller.ready.wait()

    async def wait_handled(self, update_id: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until an update was handled (for tests and benchmarks)."""
        await self._receiver.wait_handled(update_id, timeout)

    async def wait_tidied(self, update_id: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until an update's button answer and keyboard removal ran (for tests)."""
        await self._receiver.wait_tidied(update_id, timeout)

    # ------------------------------------------------------------------ sending

    def held(self, message: OutboundMessage) -> bool:
        """True while a send to the message's chat would wait (a hint for the send
        queues: they merge pending staff relays then); see :meth:`Sender.held`."""
        return self._connection.app is not None and self._sender.held(message)

    async def send(self, message: OutboundMessage) -> SendResult | None:
        """Render and send one message; permanent failures are logged, not raised.

        Raises:
            SendLater: the Bot API stayed unreachable through the retries (or the
                transport is not connected).
        """
        if self._connection.app is None or not self.online:
            raise SendLater("the Bot API is not connected")
        return await self._sender.send(message)
