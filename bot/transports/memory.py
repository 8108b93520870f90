"""An in-memory transport for tests: push a message, pop the replies.

It behaves like a platform with message ids (returned as refs) and, when
``threads`` is on, with forum topics: a new case gets its own thread.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import defaultdict
from collections.abc import Callable

from bot.transports.base import InboundHandler
from config.messages import (
    Address,
    ChatKind,
    InboundMessage,
    OutboundMessage,
    OutKind,
    Platform,
    SendResult,
)


class MemoryTransport:
    """Delivers pushed messages to the core and records what it sends."""

    platform = Platform.MEMORY

    def __init__(self, *, threads: bool = False, redelivers: bool = False) -> None:
        self._handler: InboundHandler | None = None
        self.sent: list[OutboundMessage] = []
        self.vanished: list[tuple[str, tuple[str, ...]]] = []
        self.forgotten: list[Address] = []
        #: Groups the bot was told to leave (``OutKind.LEAVE``), in order.
        self.left: list[Address] = []
        #: Threads closed because their case moved to another programme.
        self.closed: list[Address] = []
        self._by_chat: dict[str, list[OutboundMessage]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(4)  # update ids stay unique across restarts
        self._refs = itertools.count(1000)
        self._threads = threads
        #: Behave like a platform that redelivers after a crash (turns the outbox on).
        self.redelivers = redelivers
        self._changed = asyncio.Condition()
        self.started = False
        #: Chats at their platform limit (see :meth:`hold`): sends left before they wait.
        self._limits: dict[str, int] = {}
        #: Sends waiting at a chat's limit now, per chat.
        self.waiting: dict[str, int] = defaultdict(int)

    def hold(self, chat: str) -> None:
        """Put ``chat`` at its limit (like a Telegram group after 20 messages a minute):
        sends there wait for :meth:`allow` or :meth:`release`; :meth:`held` says so."""
        self._limits.setdefault(chat, 0)

    async def allow(self, chat: str, sends: int = 1) -> None:
        """Let ``sends`` more sends into a held chat (it stays at its limit after them)."""
        async with self._changed:
            self._limits[chat] = self._limits.get(chat, 0) + sends
            self._changed.notify_all()

    async def release(self, chat: str) -> None:
        """Lift the limit of ``chat``: waiting sends go on."""
        async with self._changed:
            self._limits.pop(chat, None)
            self._changed.notify_all()

    def held(self, message: OutboundMessage) -> bool:
        """True while a send to the message's chat would wait for its limit."""
        return self._limits.get(message.address.chat_id) == 0

    async def _limit(self, chat: str) -> None:
        if chat not in self._limits:
            return
        async with self._changed:
            self.waiting[chat] += 1
            try:
                await self._changed.wait_for(lambda: self._limits.get(chat, 1) > 0)
            finally:
                self.waiting[chat] -= 1
            if chat in self._limits:
                self._limits[chat] -= 1

    async def start(self, on_message: InboundHandler) -> None:
        """Remember the core's handler."""
        self._handler = on_message
        self.started = True

    async def stop(self) -> None:
        """Forget the handler."""
        self.started = False

    async def send(self, message: OutboundMessage) -> SendResult:
        """Record an outbound message; open a thread for a new case when enabled."""
        await self._limit(message.address.chat_id)
        if message.kind is OutKind.VANISH:
            self.vanished.append((message.address.chat_id, message.refs))
            return SendResult()
        if message.kind is OutKind.FORGET:
            self.forgotten.append(message.address)
            return SendResult()
        if message.kind is OutKind.LEAVE:
            self.left.append(message.address)
            self.sent.append(message)
            return SendResult()
        if message.kind is OutKind.CLOSE:
            self.closed.append(message.address)
            return SendResult()
        thread = None
        if self._threads and message.kind is OutKind.CASE_OPENED and message.case_code:
            thread = Address(self.platform, message.address.chat_id, message.case_code)
            message = OutboundMessage(
                thread,
                message.text,
                message.buttons,
                urgent=message.urgent,
                kind=message.kind,
                case_code=message.case_code,
            )
        self.sent.append(message)
        self._by_chat[message.address.chat_id].append(message)
        async with self._changed:
            self._changed.notify_all()
        return SendResult(ref=str(next(self._refs)), thread=thread)

    async def push(
        self,
        sender: str,
        text: str = "",
        *,
        button: str | None = None,
        chat: str | None = None,
        group: bool = False,
        locale: str | None = "de",
        update_id: str | None = None,
        attachment: str | None = None,
        thread: str | None = None,
        edited: bool = False,
    ) -> None:
        """Deliver one message as if it came from ``sender`` and wait until it is handled.

        ``edited``: the new text of an earlier message (an edit).
        """
        if self._handler is None:
            raise RuntimeError("transport not started")
        msg = InboundMessage(
            platform=self.platform,
            sender_id=sender,
            address=Address(self.platform, chat or sender, thread),
            text=text,
            button=button,
            locale=locale,
            update_id=update_id or f"u{self._run}-{next(self._ids)}",
            chat_kind=ChatKind.GROUP if group else ChatKind.PRIVATE,
            attachment=attachment,
            message_ref=None if edited else str(next(self._refs)),
            edited=edited,
        )
        await self._handler(msg)

    def pop(self, chat: str) -> list[OutboundMessage]:
        """Take (and clear) what was sent to a chat."""
        return self._by_chat.pop(chat, [])

    def last_buttons(self, chat: str) -> list[str]:
        """Button data of the last message to a chat that had buttons."""
        for m in reversed(self._by_chat.get(chat, [])):
            if m.buttons:
                return [b.data for b in m.flat_buttons]
        return []

    async def wait_for(
        self, predicate: Callable[[OutboundMessage], bool], within: float = 5.0
    ) -> OutboundMessage:
        """Wait until a sent message matches (event-driven, bounded)."""
        async with asyncio.timeout(within), self._changed:
            while True:
                for m in self.sent:
                    if predicate(m):
                        return m
                await self._changed.wait()
