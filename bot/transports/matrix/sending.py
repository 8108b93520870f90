"""Sending into a room: membership check, room keys, encryption, the request.

``room_send`` is ``AsyncClient.room_send`` split up: the room's keys and the
encryption run under that room's lock, the request outside it, so rooms are served in
parallel - a new room whose first keys are still being shared (one-time keys claimed,
to-device messages sent while the homeserver is busy) holds up no other room, and a
reply into an existing room needs no more than its own encryption.

Replies carry a transaction id stable across retries (``common.txn``), so a reply the
core sends again after a crash is not delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final
from uuid import uuid4

from nio import AsyncClient, MatrixRoom, RoomSendError, RoomSendResponse
from nio.api import Api

from bot.bounded import BoundedDict
from bot.transports.base import SendLater, Withheld
from bot.transports.matrix.common import (
    MAX_REMEMBERED,
    MatrixError,
    MatrixState,
    transient,
    unavailable,
)
from bot.transports.matrix.crosssign import http_status
from bot.transports.matrix.guard import share_keys
from bot.transports.matrix.membership import Membership
from bot.transports.matrix.render import BUTTON_KEYCAPS, notice_content
from bot.transports.matrix.rooms import Rooms
from config.i18n import translator
from config.messages import Button, OutboundMessage

__all__ = ["Sender"]

log = logging.getLogger(__name__)

#: Questions whose reaction shortcuts may wait; beyond that they are skipped (a flood).
_REACTION_QUEUE: Final = 100
#: Times a room's new group session is shared again when it was replaced meanwhile.
_SHARE_ATTEMPTS: Final = 3


class Sender:
    """Posts notices and events into rooms; remembers the buttons it showed."""

    def __init__(self, state: MatrixState, rooms: Rooms, membership: Membership) -> None:
        self._state = state
        self._rooms = rooms
        self._membership = membership
        self.last_buttons: BoundedDict[str, tuple[Button, ...]] = BoundedDict(MAX_REMEMBERED)
        self.event_buttons: BoundedDict[str, tuple[Button, ...]] = BoundedDict(MAX_REMEMBERED)
        #: Person chats already told that someone else is in them (once per episode).
        self._told_watched: BoundedDict[str, bool] = BoundedDict(MAX_REMEMBERED)
        #: (room, event, options): questions to decorate with keycap reactions.
        self._reactions: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue(_REACTION_QUEUE)
        self.reacting = False

    def to_person(self, message: OutboundMessage) -> bool:
        """Whether ``message`` goes into a person's own chat (not a staff or case room)."""
        return message.contact_id is not None and not self._rooms.is_staff_side(
            message.address.chat_id
        )

    async def post(
        self,
        room_id: str,
        text: str,
        buttons: list[Button] | None = None,
        txn: str | None = None,
        *,
        check: bool = True,
        person: bool = False,
        watched: bool = False,
        account: str | None = None,
    ) -> str:
        """Send a notice; ``txn`` (a stable transaction id) makes a retry idempotent.

        ``check=False`` skips the membership check (coordinator alerts about it).
        ``person``: a person's chat (withheld when someone else is in it); ``watched``:
        the notice about that, sent anyway, keys for the person's devices only.
        """
        shown = tuple(buttons or ())
        response = await self.room_send(
            room_id,
            "m.room.message",
            notice_content(text, shown),
            txn,
            check=check,
            person=person or watched,
            hold=not watched,
            account=account,
        )
        if not isinstance(response, RoomSendResponse):
            raise MatrixError(
                f"sending failed: {getattr(response, 'status_code', None)}",
                status=http_status(response),
            )
        event_id: str = response.event_id
        if shown:
            self.event_buttons[event_id] = shown
            self.last_buttons[room_id] = shown
            if self._offers_reactions(room_id) and len(shown) <= len(BUTTON_KEYCAPS):
                with contextlib.suppress(asyncio.QueueFull):
                    self._reactions.put_nowait((room_id, event_id, len(shown)))
        else:
            self.last_buttons.pop(room_id, None)
        return event_id

    async def alert(self, room_id: str, text: str) -> None:
        """A notice without the membership check (coordinator alerts about it)."""
        await self.post(room_id, text, check=False)

    async def room_send(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn: str | None = None,
        *,
        check: bool = True,
        person: bool = False,
        hold: bool = True,
        account: str | None = None,
    ) -> RoomSendResponse | RoomSendError:
        """Encrypt (under the room's lock) and send (outside it) one event.

        In the rooms the bot created for staff, members who are not current staff are
        removed first (``Membership.reconcile``; the message is held - :class:`SendLater`
        - while one cannot be removed). The group session goes to the devices of allowed
        members only (every device of a person's chat; in staff and case rooms the
        devices of current staff accounts), unverified ones too: a new phone must read
        the answer. Reactions stay unencrypted, as in nio.

        ``person``: a person's chat. Its keys go to the person's devices only, and with
        ``hold`` nothing is sent (:class:`Withheld`) while anyone else is a member, read
        from nio's room state under the lock right before the keys are shared.
        """
        st, rooms = self._state, self._rooms
        client = st.require_client()
        if check and event_type != "m.reaction" and rooms.guarded(room_id):
            try:
                await self._membership.reconcile(room_id)
            except SendLater:
                st.stats["held"] += 1
                raise
        try:
            async with st.room_lock(room_id):
                await rooms.ensure_room(room_id)
                await self._query_keys(client)
                room = client.rooms[room_id]
                allowed = rooms.allowed(room_id)
                if person or (room_id in rooms.people and allowed is None):
                    if not room.members_synced:
                        await client.joined_members(room_id)
                    allowed = self._person_keys(room, hold=person and hold, account=account)
                if client.olm is not None and room.encrypted:
                    if not room.members_synced:
                        await client.joined_members(room_id)
                        await self._query_keys(client)
                    for _ in range(_SHARE_ATTEMPTS):
                        if not client.olm.should_share_group_session(room_id):
                            break
                        await share_keys(client, room_id, allowed)
                    if event_type != "m.reaction":
                        event_type, content = client.encrypt(room_id, event_type, content)
            method, path, data = Api.room_send(
                client.access_token, room_id, event_type, content, txn or str(uuid4())
            )
            response: RoomSendResponse | RoomSendError = await client._send(
                RoomSendResponse, method, path, data, (room_id,)
            )
        except Exception as exc:
            if transient(exc):
                self.reshare(room_id)
            raise
        if isinstance(response, RoomSendError) and unavailable(http_status(response)):
            self.reshare(room_id)
        return response

    async def _query_keys(self, client: AsyncClient) -> None:
        """Query changed device lists (once for everyone waiting on it)."""
        if not client.should_query_keys:
            return
        async with self._state.keys_lock:
            if client.should_query_keys:
                await client.keys_query()

    def reshare(self, room_id: str) -> None:
        """After an outage, start a new group session: nio marks a session shared even
        when some of its key messages were lost, and those devices could not read on."""
        client = self._state.client
        if client is not None:
            with contextlib.suppress(Exception):
                client.invalidate_outbound_session(room_id)

    def _person_keys(
        self, room: MatrixRoom, *, hold: bool, account: str | None = None
    ) -> frozenset[str]:
        """The accounts that get a person chat's room keys: the person and the bot.

        Raises :class:`Withheld` (with ``hold``) when anyone else is a member (joined or
        invited): a third account would decrypt every later reply. The person is
        ``account`` (from the core's sealed address), else the first one who wrote from
        the chat in this process; unknown, it is the single other member, and with two
        or more nobody is trusted.
        """
        bot = self._state.user_id
        others = {u for u in room.users if u != bot}
        person = account or self._rooms.people.get(room.room_id)
        if person is None and len(others) == 1:
            person = next(iter(others))
        if others - {person}:
            if hold:
                raise Withheld("someone else is in the person's chat")
        else:
            self._told_watched.pop(room.room_id, None)  # clean again: tell anew next time
        return frozenset({bot} if person is None else {person, bot})

    async def tell_watched(self, message: OutboundMessage) -> None:
        """Tell the person once, without any content, why replies stop (keys for the
        person's devices only, so the other account cannot read even this)."""
        room_id = message.address.chat_id
        if room_id in self._told_watched:
            return
        self._told_watched[room_id] = True
        text = translator(self._state.settings.default_locale)("person.chat_watched")
        try:
            await self.post(room_id, text, watched=True, account=message.address.account)
        except Exception as exc:
            log.warning("matrix: a person could not be told about it: %s", type(exc).__name__)

    # ------------------------------------------------------------------ reactions
    def _offers_reactions(self, room_id: str) -> bool:
        """Staff and case rooms always; a person's chat only with ``reaction_shortcuts``.

        Element sends reactions unencrypted: the homeservers would see which number a
        person tapped under which question, so people's chats ask for typing by default.
        """
        if not self.reacting:
            return False
        staff = room_id in self._rooms.staff_rooms or room_id in self._rooms.case_room_ids
        return staff or self._state.settings.matrix.reaction_shortcuts

    async def react_loop(self) -> None:
        """React to questions with 1️⃣ 2️⃣ ...: in Element a tap on one answers.

        Runs beside the replies (it takes the room's lock per reaction, so a reply
        waits for at most one); failures only cost the shortcut.
        """
        while True:
            room_id, event_id, count = await self._reactions.get()
            for key in BUTTON_KEYCAPS[:count]:
                content = {
                    "m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}
                }
                try:
                    response = await self.room_send(room_id, "m.reaction", content)
                except Exception as exc:
                    log.debug("matrix: a reaction shortcut failed: %s", type(exc).__name__)
                    break
                if not isinstance(response, RoomSendResponse):
                    break
