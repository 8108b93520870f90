"""The send path: one outbound message of the core -> the Bot API calls it takes.

Texts (:mod:`.texts`), case topics (:mod:`.topics`), copies of attachments
(:mod:`.media`), deletions (/vanish) and leaving a group. Permanent refusals are
counted and logged, not raised; an unreachable Bot API raises ``SendLater`` so the core
keeps the reply. The throttle (:mod:`.limiter`) waits per destination: a staff group
at its limit holds only its own messages.
"""

from __future__ import annotations

import contextlib
from functools import partial

from bot.transports.telegram.calls import BotCalls, SendFailed
from bot.transports.telegram.limiter import FloodLimiter
from bot.transports.telegram.media import Media
from bot.transports.telegram.render import chat_id, chunks, message_ids
from bot.transports.telegram.texts import TextSender
from bot.transports.telegram.topics import Topics
from config.messages import OutboundMessage, OutKind, SendResult


class Sender:
    """Routes each kind of outbound message to the calls that deliver it."""

    def __init__(self, calls: BotCalls) -> None:
        self._calls = calls
        self.texts = TextSender(calls)
        self.topics = Topics(calls, self.texts)
        self.media = Media(calls, self.texts)

    def held(self, message: OutboundMessage) -> bool:
        """True while a send to the message's chat would wait: its group (or the whole
        bot) is at its flood limit, or a 429 pause holds the chat. Nothing is taken;
        call only after the transport started."""
        chat = chat_id(message.address.chat_id)
        if self._calls.paused(chat):
            return True
        limiter = self._calls.bot.rate_limiter
        return isinstance(limiter, FloodLimiter) and limiter.held(chat)

    async def send(self, message: OutboundMessage) -> SendResult | None:
        """Render and send one message; permanent failures are logged, not raised.

        Raises:
            SendLater: the Bot API stayed unreachable through the retries.
        """
        try:
            kind = message.kind
            if kind is OutKind.VANISH:
                await self._vanish(message)
                return None
            if kind is OutKind.FORGET:
                await self.topics.delete(message)
                return None
            if kind is OutKind.LEAVE:
                await self._leave(message)
                return None
            if kind is OutKind.CLOSE:
                await self.topics.close(message)
                return None
            if kind is OutKind.COPY:
                return await self.media.copy(message)
            if (
                kind is OutKind.CASE_OPENED
                and message.case_code
                and message.address.thread_id is None
            ):
                return await self.topics.open_case(message)
            return await self.texts.send(message, message.address)
        except SendFailed:
            self._calls.stats.send_failures += 1
            return None

    async def _vanish(self, message: OutboundMessage) -> None:
        """Delete the listed messages; what Telegram refuses (too old) is skipped."""
        calls = self._calls
        chat = chat_id(message.address.chat_id)
        for chunk in chunks(message_ids(message.refs)):
            try:
                await calls.call(
                    partial(calls.bot.delete_messages, chat, chunk),
                    what="deleteMessages",
                    chat=chat,
                    quiet=True,
                )
            except SendFailed:
                for one in chunk:  # one undeletable message fails the whole call
                    with contextlib.suppress(SendFailed):
                        await calls.call(
                            partial(calls.bot.delete_message, chat, one),
                            what="deleteMessage",
                            chat=chat,
                            quiet=True,
                        )

    async def _leave(self, message: OutboundMessage) -> None:
        """Leave a group the bot was added to but is not configured for."""
        calls = self._calls
        chat = chat_id(message.address.chat_id)
        with contextlib.suppress(SendFailed):
            await calls.call(
                partial(calls.bot.leave_chat, chat), what="leaveChat", chat=chat, quiet=True
            )
        self.topics.forget_chat(chat)
