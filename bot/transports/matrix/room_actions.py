"""What the core asks of rooms beyond a message: open a case room on a claim, redact
the bot's messages, leave and forget a room (after erasure or retention), close a
transferred case's old room.

Forgetting a person's chat also drops what the crypto store and nio's memory keep
about the people only that room linked to the bot (devices, Olm and group sessions);
on the bot's own Synapse the room can be purged too (``matrix.admin_purge``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from urllib.parse import quote

from nio import AsyncClient, RoomCreateResponse, RoomGetStateResponse, RoomKickResponse, RoomPreset

from bot.transports.matrix.common import MatrixError, MatrixState, txn
from bot.transports.matrix.crosssign import http_status
from bot.transports.matrix.guard import power_levels
from bot.transports.matrix.membership import Membership
from bot.transports.matrix.render import is_matrix_id
from bot.transports.matrix.rooms import ENCRYPTION, ROOM_MARKER, Rooms
from bot.transports.matrix.sending import Sender
from config.messages import Address, OutboundMessage, Platform, SendResult

__all__ = ["RoomActions"]

log = logging.getLogger(__name__)


class RoomActions:
    """Case rooms opened and closed, rooms left and forgotten, messages redacted."""

    def __init__(
        self, state: MatrixState, rooms: Rooms, membership: Membership, sender: Sender
    ) -> None:
        self._state = state
        self._rooms = rooms
        self._membership = membership
        self._sender = sender

    async def case_claimed(self, message: OutboundMessage) -> SendResult:
        """Open (once per case) an encrypted case room and invite staff; post there.

        A claim addressed to an existing case room (a second counsellor, a restart)
        invites the new accounts into it instead of opening another room.
        """
        client = self._state.require_client()
        rooms = self._rooms
        code = message.case_code
        bot = self._state.user_id
        invite = sorted({a for a in message.invite if is_matrix_id(a) and a != bot})
        address = message.address.chat_id
        room_id = rooms.case_rooms.get((code, address)) if code else None
        programme = rooms.programme_of(address, invite)
        if room_id is not None and rooms.room_programme.get(room_id, programme) != programme:
            room_id = None  # another programme's room (a transfer): never reused across
        if (
            room_id is None
            and address not in rooms.staff_rooms
            and await rooms.is_case_room(address)
        ):
            room_id = address
        if room_id is not None:
            await self._membership.invite(room_id, invite)
        else:
            if programme is not None:  # only its current staff may be in the room
                invite = [a for a in invite if a in rooms.staff.get(programme, ())]
            content = {"kind": "case", **({"programme": programme} if programme else {})}
            marker = {"type": ROOM_MARKER, "state_key": "", "content": content}
            response = await client.room_create(
                name=f"Fall {code}" if code else "Fall",
                preset=RoomPreset.private_chat,
                invite=invite,
                initial_state=[ENCRYPTION, marker],
                power_level_override=power_levels(),
            )
            if not isinstance(response, RoomCreateResponse):
                raise MatrixError(
                    f"case room not created: {response.status_code}",
                    status=http_status(response),
                )
            room_id = response.room_id
            if programme is not None:
                rooms.room_programme[room_id] = programme
            rooms.register(client, room_id, invite)
        if code:
            rooms.case_rooms[(code, address)] = room_id
        rooms.case_room_ids.add(room_id)
        post = self._sender.post
        event_id = await post(room_id, message.text, message.flat_buttons, txn(message))
        if address != room_id:
            # The team room learns that the case is taken (code and alias only).
            await post(address, message.text, txn=txn(message, "team"))
        return SendResult(ref=event_id, thread=Address(Platform.MATRIX, room_id))

    async def vanish(self, room_id: str, refs: Iterable[str]) -> None:
        """Redact the bot's own messages; failures (already gone, too old) are ignored."""
        client = self._state.require_client()
        failed = 0
        for ref in refs:
            try:
                response = await client.room_redact(room_id, ref)
            except Exception:
                response = None
            if type(response).__name__ != "RoomRedactResponse":
                failed += 1
            self._sender.event_buttons.pop(ref, None)
        self._sender.last_buttons.pop(room_id, None)
        if failed:
            log.info("matrix: %d message(s) could not be redacted", failed)

    async def forget(self, room_id: str) -> None:
        """Leave and forget a room: a case room whose retention passed, or a person's chat
        after their erasure or expiry; failures are ignored.

        Whoever only this room linked to the bot (the person) then leaves the crypto
        store too: devices, keys, Olm and group sessions (see ``forget_user``).
        """
        client = self._state.require_client()
        async with self._state.room_lock(room_id):
            members = await self._membership.members(client, room_id)
            try:
                await client.room_leave(room_id)
                await client.room_forget(room_id)
                self._state.forgotten.add(room_id)
            except Exception as exc:
                log.info("matrix: room could not be forgotten: %s", type(exc).__name__)
            if self._state.settings.matrix.admin_purge:
                await self._purge_on_server(client, room_id)
            client.rooms.pop(room_id, None)
            self._forget_people(client, room_id, members)
        self._sender.last_buttons.pop(room_id, None)

    async def leave(self, room_id: str) -> None:
        """Leave and forget a room that is neither a staff room nor a case room."""
        client = self._state.require_client()
        async with self._state.room_lock(room_id):
            try:
                await client.room_leave(room_id)
                await client.room_forget(room_id)
                self._state.forgotten.add(room_id)
            except Exception as exc:
                log.info("matrix: room could not be left: %s", type(exc).__name__)
        self._rooms.staff_rooms.discard(room_id)

    async def close_case_room(self, room_id: str) -> None:
        """A case moved to another programme: remove everyone from its old case room
        (joined and invited, as the server lists them), then leave and forget it.

        Only case rooms the bot made, never a staff room. A member the server refuses to
        remove is logged; the bot leaves anyway, so nothing new reaches the room.
        """
        rooms = self._rooms
        if room_id in rooms.staff_rooms or not await rooms.is_case_room(room_id):
            log.warning("matrix: a room to close is not a case room; left alone")
            return
        client = self._state.require_client()
        async with self._state.room_lock(room_id):
            present: set[str] = set()
            state = await client.room_get_state(room_id)
            if isinstance(state, RoomGetStateResponse):
                present = {
                    str(e.get("state_key"))
                    for e in state.events
                    if e.get("type") == "m.room.member"
                    and e.get("content", {}).get("membership") in ("join", "invite")
                }
            room = client.rooms.get(room_id)
            if room is not None:
                present |= set(room.users) | set(room.invited_users)
            failed = 0
            for user_id in sorted(present - {self._state.user_id}):
                response = await client.room_kick(room_id, user_id, reason="Fall übergeben")
                if not isinstance(response, RoomKickResponse):
                    failed += 1
            if failed:
                log.warning("matrix: %d member(s) could not be removed from a case room", failed)
            with contextlib.suppress(Exception):
                client.invalidate_outbound_session(room_id)
            await client.room_leave(room_id)
            await client.room_forget(room_id)
            self._state.forgotten.add(room_id)
        for key in [k for k, r in rooms.case_rooms.items() if r == room_id]:
            del rooms.case_rooms[key]
        self._sender.last_buttons.pop(room_id, None)

    def _forget_people(self, client: AsyncClient, room_id: str, members: set[str]) -> None:
        """Drop what the crypto store and nio's memory keep about people and a left room,
        for members who share no other room with the bot (staff keep theirs)."""
        still = {u for room in client.rooms.values() for u in (*room.users, *room.invited_users)}
        olm = client.olm
        store = client.store
        for user_id in members - still:
            forget = getattr(store, "forget_user", None)
            if callable(forget):
                try:
                    forget(user_id, [room_id])
                except Exception as exc:
                    log.warning("matrix: crypto store cleanup failed: %s", type(exc).__name__)
            if olm is not None:
                devices = olm.device_store._entries.pop(user_id, {})
                for device in devices.values():
                    olm.session_store._entries.pop(device.curve25519, None)
                olm.tracked_users.discard(user_id)
                olm.users_for_key_query.discard(user_id)
        if olm is not None:
            olm.inbound_group_store._entries.pop(room_id, None)
            olm.outbound_group_sessions.pop(room_id, None)

    async def _purge_on_server(self, client: AsyncClient, room_id: str) -> None:
        """Delete and purge the room on the bot's own Synapse (admin API; failures logged)."""
        path = f"/_synapse/admin/v1/rooms/{quote(room_id, safe='')}"
        headers = {
            "Authorization": f"Bearer {client.access_token}",
            "Content-Type": "application/json",
        }
        try:
            response = await client.send("DELETE", path, json.dumps({"purge": True}), headers)
            status = int(response.status)
            response.release()
        except Exception as exc:
            log.warning("matrix: room purge failed: %s", type(exc).__name__)
            return
        if status != 200:
            log.warning("matrix: room purge refused (HTTP %d; is the bot a server admin?)", status)
