"""Attachments: the content of recent media events, kept in memory only, so that a
claimed case can copy them into its case room (with ``copy_attachments``).

The content of an encrypted attachment carries its own file key, so it can be sent
into another encrypted room; the file itself is never downloaded or stored.
"""

from __future__ import annotations

from typing import Any, Final

from nio import RoomSendResponse

from bot.bounded import BoundedDict
from bot.transports.matrix.common import MatrixError, txn
from bot.transports.matrix.crosssign import http_status
from bot.transports.matrix.render import media_content
from bot.transports.matrix.sending import Sender
from config.messages import OutboundMessage, Platform, SendResult

__all__ = ["MEDIA_MEMORY", "Media"]

#: Media events whose content is kept in memory for copying.
MEDIA_MEMORY: Final = 256


class Media:
    """Remembers media contents (bounded) and re-sends one under a label."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._contents: BoundedDict[str, dict[str, Any]] = BoundedDict(MEDIA_MEMORY)

    def remember(self, event_id: str, content: dict[str, Any]) -> None:
        self._contents[event_id] = content

    async def copy(self, message: OutboundMessage) -> SendResult | None:
        """Post the label, then re-send the media event's content (if still known)."""
        sender = self._sender
        person = sender.to_person(message)
        event_id = await sender.post(
            message.address.chat_id,
            message.text,
            txn=txn(message),
            person=person,
            account=message.address.account,
        )
        source = message.copy_from
        content = self._contents.get(message.refs[0]) if message.refs else None
        if source is None or source.platform is not Platform.MATRIX or content is None:
            return SendResult(ref=event_id)
        response = await sender.room_send(
            message.address.chat_id,
            "m.room.message",
            media_content(content),
            txn(message, "copy"),
            person=person,
            account=message.address.account,
        )
        if not isinstance(response, RoomSendResponse):
            raise MatrixError(
                f"copying failed: {getattr(response, 'status_code', None)}",
                status=http_status(response),
            )
        return SendResult(ref=response.event_id)
