"""Sending a text: split at 4096, buttons on the last part, no link previews.

Parts that went out before an outage interrupted a reply are remembered per reply key
and not sent again when the core retries it. A group that Telegram moved to a
supergroup is followed; a deleted or closed forum topic falls back to the group.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Final

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.error import ChatMigrated, TelegramError

from bot.bounded import BoundedDict
from bot.transports.telegram.calls import BotCalls, SendFailed
from bot.transports.telegram.render import chat_id, keyboard, split_text, thread_id
from config.messages import Address, OutboundMessage, SendResult

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
#: Replies whose partly sent state is remembered (an outage interrupted them).
PARTIAL_REMEMBERED: Final = 1024


class TextSender:
    """``sendMessage`` for one outbound text (see the module docstring)."""

    def __init__(self, calls: BotCalls) -> None:
        self._calls = calls
        #: Per reply key: ids of the parts already sent when an outage interrupted it.
        self._sent_parts: BoundedDict[str, tuple[int, ...]] = BoundedDict(PARTIAL_REMEMBERED)

    async def send(self, message: OutboundMessage, address: Address) -> SendResult | None:
        """Send ``message``'s text (and buttons) to ``address``."""
        parts = split_text(message.text)
        if not parts:
            log.warning("an empty message was not sent")
            return None
        markup = keyboard(message.buttons)
        chat = chat_id(address.chat_id)
        thread = thread_id(address.thread_id)
        # Parts that went out before an outage are not sent again (kept per reply key).
        ids: list[int] = list(self._sent_parts.get(message.send_key or "", ()))
        for i, part in enumerate(parts):
            if i < len(ids):
                continue
            sent, chat, thread = await self._send_part(
                chat,
                thread,
                part,
                markup if i == len(parts) - 1 else None,
                protect=message.protect,
                urgent=message.urgent,
            )
            ids.append(sent.message_id)
            if message.send_key and i < len(parts) - 1:
                self._sent_parts[message.send_key] = tuple(ids)
        if message.send_key:
            self._sent_parts.pop(message.send_key, None)
        return SendResult(ref=",".join(str(i) for i in ids))

    async def _send_part(
        self,
        chat: int | str,
        thread: int | None,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        protect: bool,
        urgent: bool,
    ) -> tuple[Message, int | str, int | None]:
        """sendMessage; follows a group's migration and falls back from a deleted topic."""
        calls = self._calls
        for _ in range(3):
            try:
                sent: Message = await calls.call(
                    partial(
                        calls.bot.send_message,
                        chat_id=chat,
                        text=text,
                        reply_markup=markup,
                        protect_content=protect,
                        message_thread_id=thread,
                        link_preview_options=NO_PREVIEW,
                        rate_limit_args=True if urgent and calls.limited else None,
                    ),
                    what="sendMessage",
                    chat=chat,
                    urgent=urgent,
                    migrate=True,
                )
            except ChatMigrated as exc:
                log.warning("a staff group became a supergroup: update its id in the directory")
                chat = exc.new_chat_id
            except SendFailed as exc:
                if thread is None or not exc.topic_gone:
                    raise
                log.warning("a case topic is gone; posting in the group instead")
                thread = None
            else:
                calls.stats.sent += 1
                return sent, chat, thread
        raise SendFailed(TelegramError("sendMessage: no usable chat or topic"))
