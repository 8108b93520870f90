"""Two steps of receiving that need no receiver state: filling a gap in a room's
timeline, and answering an invite (direct chats and staff rooms joined, the rest
declined)."""

from __future__ import annotations

import logging
from typing import Any, Final

from nio import AsyncClient, InviteMemberEvent, JoinResponse, RoomMessagesResponse
from nio.api import MessageDirection

from bot.transports.matrix.rooms import Rooms

__all__ = ["accept_invite", "backfill"]

log = logging.getLogger(__name__)

_BACKFILL_PAGES: Final = 5


async def backfill(client: AsyncClient, room_id: str, prev_batch: str, since: str) -> list[Any]:
    """Events a limited timeline left out, back to the token the sync started from."""
    older: list[Any] = []
    start: str | None = prev_batch
    for _ in range(_BACKFILL_PAGES):
        page = await client.room_messages(
            room_id, start=start, end=since, direction=MessageDirection.back, limit=100
        )
        if not isinstance(page, RoomMessagesResponse) or not page.chunk:
            break
        older.extend(page.chunk)
        if not page.end or page.end == start:
            break
        start = page.end
    older.reverse()
    return older


async def accept_invite(
    client: AsyncClient, bot: str, rooms: Rooms, room_id: str, invite_state: list[Any]
) -> None:
    """Join a direct chat or a configured staff room the bot was invited to; decline
    group invites."""
    mine = [
        e
        for e in invite_state
        if isinstance(e, InviteMemberEvent) and e.state_key == bot and e.membership == "invite"
    ]
    if not mine:
        return
    direct = any(bool(e.content.get("is_direct")) for e in mine)
    if room_id in rooms.staff_rooms or direct:
        response = await client.join(room_id)
        if not isinstance(response, JoinResponse):
            log.warning("matrix: joining an invited room failed")
    else:
        await client.room_leave(room_id)  # declines group invites
