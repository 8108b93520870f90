"""One room event -> one :class:`InboundMessage` for the core (or nothing).

Texts and emotes become text (reply fallbacks, which quote account ids, stripped);
a number answers the buttons last shown in a person's chat; a keycap reaction answers
the question it reacts to; media become an attachment kind (their content is kept in
memory for copying); an edit is passed on as an edit (crisis words added by one must
be seen) but never as an answer. Notices (other bots) and unknown types are dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nio import BadEvent, MatrixRoom, ReactionEvent, RoomMessage, StickerEvent, UnknownBadEvent

from bot.transports.matrix.media import Media
from bot.transports.matrix.render import attachment_kind, reaction_choice, strip_reply_fallback
from bot.transports.matrix.rooms import Rooms
from bot.transports.matrix.sending import Sender
from config.messages import Address, ChatKind, InboundMessage, Platform

__all__ = ["Inbound"]


class Inbound:
    """Reduces room events to what the core needs (and nothing more)."""

    def __init__(self, rooms: Rooms, sender: Sender, media: Media) -> None:
        self._rooms = rooms
        self._sender = sender
        self._media = media

    async def parse(self, room: MatrixRoom, event: Any) -> InboundMessage | None:
        """Reduce one room event to an :class:`InboundMessage` (None: not for the core)."""
        text, button, attachment, edited = "", None, None, False
        if isinstance(event, ReactionEvent):
            buttons = self._sender.event_buttons.get(event.reacts_to)
            index = reaction_choice(event.key, len(buttons)) if buttons else None
            if buttons is None or index is None:
                return None
            button = buttons[index].data
        elif isinstance(event, StickerEvent):
            attachment = "sticker"
        elif isinstance(event, BadEvent | UnknownBadEvent):
            # Malformed by nio's schemas (e.g. media without "file" in an encrypted room):
            # a media message still gets the core's answer, anything else is dropped.
            source = event.source if isinstance(event.source, dict) else {}
            raw = source.get("content") if source.get("type") == "m.room.message" else None
            attachment = attachment_kind(str(raw.get("msgtype"))) if isinstance(raw, dict) else None
            if attachment is None or not isinstance(raw, dict):
                return None
            self._media.remember(event.event_id, raw)
        elif isinstance(event, RoomMessage):
            source = event.source if isinstance(event.source, dict) else {}
            content = source.get("content")
            if not isinstance(content, dict):
                return None
            relates = content.get("m.relates_to")
            if not isinstance(relates, dict):
                relates = {}
            if relates.get("rel_type") == "m.replace":
                # An edit is never an answer, but crisis words added by one must be seen.
                new = content.get("m.new_content")
                content, relates, edited = (new if isinstance(new, dict) else {}), {}, True
            msgtype = content.get("msgtype")
            if msgtype in ("m.text", "m.emote"):
                body = content.get("body")
                if not isinstance(body, str):
                    return None
                text = strip_reply_fallback(body) if relates.get("m.in_reply_to") else body
            else:
                attachment = None if edited else attachment_kind(str(msgtype))
                if attachment is None:
                    return None  # notices (other bots), unknown types
                self._media.remember(event.event_id, content)
        else:
            return None
        kind = await self._rooms.chat_kind(room)
        people = self._rooms.people
        if kind is ChatKind.PRIVATE and room.room_id not in people:
            # Whose devices get this chat's keys: the first writer stays the person (an
            # account left alone in the chat later is not).
            people[room.room_id] = event.sender
        if kind is ChatKind.PRIVATE and text.strip().isdigit() and not edited:
            shown = self._sender.last_buttons.get(room.room_id, ())
            number = int(text.strip())
            if 0 < number <= len(shown):
                text, button = "", shown[number - 1].data
        return InboundMessage(
            platform=Platform.MATRIX,
            sender_id=event.sender,
            address=Address(Platform.MATRIX, room.room_id),
            text=text,
            button=button,
            locale=None,
            update_id=event.event_id,
            chat_kind=kind,
            received_at=datetime.now(UTC),
            attachment=attachment,
            message_ref=None if edited else event.event_id,
            edited=edited,
        )
