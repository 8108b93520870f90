"""Forum topics: one per case in a staff supergroup with Topics on.

A new case gets a topic named after its code and the announcement in it; a case
that moved to another programme gets its old topic closed; a case past retention
gets its topic deleted. Plain groups (no Topics) get the messages in the group.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

from bot.bounded import BoundedDict
from bot.transports.telegram.calls import BotCalls, SendFailed
from bot.transports.telegram.render import chat_id, topic_name
from bot.transports.telegram.texts import PARTIAL_REMEMBERED, TextSender
from config.messages import Address, OutboundMessage, Platform, SendResult

log = logging.getLogger(__name__)


class Topics:
    """Creates, closes and deletes the case topics of staff groups."""

    def __init__(self, calls: BotCalls, texts: TextSender) -> None:
        self._calls = calls
        self._texts = texts
        self._forum: dict[int | str, bool] = {}
        #: Per reply key: the topic already made when an outage interrupted the announcement.
        self._made: BoundedDict[str, Address] = BoundedDict(PARTIAL_REMEMBERED)

    async def open_case(self, message: OutboundMessage) -> SendResult | None:
        """In a forum supergroup: a topic named after the case, the announcement in it."""
        calls = self._calls
        address = message.address
        chat = chat_id(address.chat_id)
        known = self._made.get(message.send_key or "")
        if known is not None:  # made before an outage interrupted the announcement
            result = await self._texts.send(message, known)
            self._made.pop(message.send_key or "", None)
            return SendResult(result.ref if result else None, thread=known)
        if await self.is_forum(chat):
            try:
                topic = await calls.call(
                    partial(
                        calls.bot.create_forum_topic,
                        chat_id=chat,
                        name=topic_name(message.case_code or ""),
                        rate_limit_args=True if message.urgent and calls.limited else None,
                    ),
                    what="createForumTopic",
                    chat=chat,
                    urgent=message.urgent,
                )
            except SendFailed:
                log.warning("no forum topic for a new case; announcing in the group")
            else:
                thread = Address(Platform.TELEGRAM, address.chat_id, str(topic.message_thread_id))
                if message.send_key:
                    self._made[message.send_key] = thread
                result = await self._texts.send(message, thread)
                self._made.pop(message.send_key or "", None)
                return SendResult(result.ref if result else None, thread=thread)
        return await self._texts.send(message, address)

    async def is_forum(self, chat: int | str) -> bool:
        """Whether a group has Topics on (asked once, then remembered)."""
        known = self._forum.get(chat)
        if known is not None:
            return known
        calls = self._calls
        try:
            info = await calls.call(partial(calls.bot.get_chat, chat), what="getChat", chat=chat)
        except SendFailed:
            return False
        self._forum[chat] = bool(info.is_forum)
        return self._forum[chat]

    def forget_chat(self, chat: int | str) -> None:
        """The bot left a group: ask again should it come back."""
        self._forum.pop(chat, None)

    async def close(self, message: OutboundMessage) -> None:
        """Close a case's forum topic of a programme the case left (plain groups: nothing).

        Closed, not deleted: the old programme keeps its own record until retention,
        but nobody (the bot included) writes there again.
        """
        await self._topic_call(message, "closeForumTopic")

    async def delete(self, message: OutboundMessage) -> None:
        """Delete a case's forum topic once its retention passed (plain groups: nothing)."""
        await self._topic_call(message, "deleteForumTopic")

    async def _topic_call(self, message: OutboundMessage, what: str) -> None:
        if message.address.thread_id is None:
            return
        calls = self._calls
        chat = chat_id(message.address.chat_id)
        method = (
            calls.bot.close_forum_topic
            if what == "closeForumTopic"
            else calls.bot.delete_forum_topic
        )
        with contextlib.suppress(SendFailed):
            await calls.call(
                partial(method, chat, int(message.address.thread_id)),
                what=what,
                chat=chat,
                quiet=True,
            )
