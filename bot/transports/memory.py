"""An in-memory transport for tests: push a message, pop the replies."""

from __future__ import annotations

import itertools
from collections import defaultdict

from bot.messages import Address, ChatKind, InboundMessage, OutboundMessage, Platform
from bot.transports.base import InboundHandler


class MemoryTransport:
    """Delivers pushed messages to the core and records what it sends."""

    platform = Platform.MEMORY

    def __init__(self) -> None:
        self._handler: InboundHandler | None = None
        self.sent: list[OutboundMessage] = []
        self._by_chat: dict[str, list[OutboundMessage]] = defaultdict(list)
        self._ids = itertools.count(1)
        self.started = False

    async def start(self, on_message: InboundHandler) -> None:
        """Remember the core's handler."""
        self._handler = on_message
        self.started = True

    async def stop(self) -> None:
        """Forget the handler."""
        self.started = False

    async def send(self, message: OutboundMessage) -> None:
        """Record an outbound message."""
        self.sent.append(message)
        self._by_chat[message.address.chat_id].append(message)

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
    ) -> None:
        """Deliver one message as if it came from ``sender`` and wait until it is handled."""
        if self._handler is None:
            raise RuntimeError("transport not started")
        msg = InboundMessage(
            platform=self.platform,
            sender_id=sender,
            address=Address(self.platform, chat or sender),
            text=text,
            button=button,
            locale=locale,
            update_id=update_id or f"u{next(self._ids)}",
            chat_kind=ChatKind.GROUP if group else ChatKind.PRIVATE,
            attachment=attachment,
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
