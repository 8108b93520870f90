"""Attachments: a person's photo, voice or file reaches the staff as a copy.

``copyMessage`` with the case label as caption - a copy, not a forward, so no
"forwarded from" shows who sent it. From another platform only the label is sent.
"""

from __future__ import annotations

from functools import partial

from bot.transports.telegram.calls import BotCalls
from bot.transports.telegram.render import chat_id, thread_id
from bot.transports.telegram.texts import TextSender
from config.messages import OutboundMessage, Platform, SendResult

#: Telegram's caption limit.
MAX_CAPTION = 1024


class Media:
    """Copies attachments between Telegram chats."""

    def __init__(self, calls: BotCalls, texts: TextSender) -> None:
        self._calls = calls
        self._texts = texts

    async def copy(self, message: OutboundMessage) -> SendResult | None:
        """copyMessage with the label as caption (see the module docstring)."""
        source = message.copy_from
        if source is None or source.platform is not Platform.TELEGRAM or not message.refs:
            return await self._texts.send(message, message.address)
        calls = self._calls
        chat = chat_id(message.address.chat_id)
        sent = await calls.call(
            partial(
                calls.bot.copy_message,
                chat_id=chat,
                from_chat_id=chat_id(source.chat_id),
                message_id=int(message.refs[0].split(",")[0]),
                caption=message.text[:MAX_CAPTION] or None,
                message_thread_id=thread_id(message.address.thread_id),
                protect_content=message.protect,
            ),
            what="copyMessage",
            chat=chat,
        )
        calls.stats.sent += 1
        return SendResult(ref=str(sent.message_id))
