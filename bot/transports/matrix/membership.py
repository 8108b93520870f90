"""Who is in the rooms the bot keeps for staff, and keeping it so (privacy check 17).

* Staff rooms: configured ones are joined; a programme without one gets an encrypted
  team room (created once, kept in the session file) with its staff invited and
  leavers removed.
* Guarded rooms (case rooms and created staff rooms): members who are not current
  staff of the room's programme are removed - at start, after a directory reload,
  whenever a member event arrives, and before each message into such a room. Every
  removal starts a new group session (the leaver gets no later key) and alerts the
  programme's coordinators by case code, never by account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nio import (
    AsyncClient,
    JoinedRoomsResponse,
    JoinResponse,
    MatrixRoom,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomPreset,
)

from bot.bounded import BoundedDict
from bot.transports.base import SendLater
from bot.transports.matrix.common import MAX_REMEMBERED, MatrixError, MatrixState
from bot.transports.matrix.connection import Connection
from bot.transports.matrix.crosssign import http_status
from bot.transports.matrix.guard import creator_power, differs, outsiders, power_levels, tightened
from bot.transports.matrix.render import is_matrix_id
from bot.transports.matrix.rooms import ENCRYPTION, ROOM_MARKER, Rooms
from config.i18n import translator
from config.messages import Platform

__all__ = ["Membership"]

log = logging.getLogger(__name__)

#: Posts a notice into a room without the membership check: (room, text).
Alerter = Callable[[str, str], Awaitable[object]]


class Membership:
    """Invites, removals and the staff rooms the bot creates."""

    def __init__(self, state: MatrixState, rooms: Rooms, connection: Connection) -> None:
        self._state = state
        self._rooms = rooms
        self._connection = connection
        self._team_lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()
        #: (room, account) pairs already reported as not removable (one alert each).
        self._alerted: BoundedDict[str, bool] = BoundedDict(MAX_REMEMBERED)
        #: Set by the transport: how an alert reaches a room.
        self.notify: Alerter | None = None
        #: Who wants to know the created staff rooms (programme id -> room).
        self.on_staff_rooms: Callable[[Platform, dict[str, str]], None] | None = None

    # ------------------------------------------------------------------ staff rooms
    async def join_staff_rooms(self, client: AsyncClient) -> None:
        if not self._rooms.staff_rooms:
            return
        joined = await client.joined_rooms()
        have = set(joined.rooms) if isinstance(joined, JoinedRoomsResponse) else set()
        missing = 0
        for room_id in self._rooms.staff_rooms - have:
            if not isinstance(await client.join(room_id), JoinResponse):
                missing += 1
        if missing:
            log.warning("matrix: %d staff room(s) not joined (invite the bot)", missing)

    async def ensure_team_rooms(self) -> None:
        """Create (once) an encrypted staff room per programme that has none configured.

        The programme's staff accounts are invited; accounts no longer on its staff list
        are removed (a counsellor who left reads no new case announcements). The rooms
        are kept in the encrypted session file, so a restart reuses them.
        """
        client = self._state.require_client()
        async with self._team_lock:
            await self._ensure_team_rooms_locked(client)

    async def _ensure_team_rooms_locked(self, client: AsyncClient) -> None:
        rooms, bot = self._rooms, self._state.user_id
        session = self._connection.session
        stored = dict(session.team_rooms) if session else {}
        joined = await client.joined_rooms()
        if not isinstance(joined, JoinedRoomsResponse):  # unknown is not "none"
            raise MatrixError("joined rooms unknown", status=http_status(joined))
        have = set(joined.rooms)
        for programme_id in sorted(set(rooms.team) | set(stored)):
            name, accounts = rooms.team.get(programme_id, ("", []))
            wanted = sorted({a for a in accounts if is_matrix_id(a) and a != bot})
            room_id = stored.get(programme_id)
            if room_id is not None and room_id not in have:
                room_id = None  # the bot was removed from it: start a new one
            if room_id is None:
                if not wanted:
                    stored.pop(programme_id, None)
                    continue
                room_id = await self._create_team_room(name, wanted)
                stored[programme_id] = room_id
                self._connection.save(team_rooms=dict(stored))
            else:
                await self._tighten(room_id)
                await self._team_members(room_id, wanted)
            if programme_id in rooms.team:
                rooms.staff_rooms.add(room_id)
                rooms.created_staff_rooms[programme_id] = room_id
                rooms.room_programme[room_id] = programme_id
            else:
                rooms.created_staff_rooms.pop(programme_id, None)
        if self.on_staff_rooms is not None:
            self.on_staff_rooms(Platform.MATRIX, dict(rooms.created_staff_rooms))

    async def _create_team_room(self, name: str, invite: list[str]) -> str:
        client = self._state.require_client()
        marker = {"type": ROOM_MARKER, "state_key": "", "content": {"kind": "staff"}}
        response = await client.room_create(
            name=f"{name} – Ausweg (Team)",
            topic="Neue Anfragen an dieses Programm. / New requests to this programme.",
            preset=RoomPreset.private_chat,
            invite=invite,
            initial_state=[ENCRYPTION, marker],
            power_level_override=power_levels(),
        )
        if not isinstance(response, RoomCreateResponse):
            raise MatrixError(
                f"staff room not created: {response.status_code}", status=http_status(response)
            )
        self._rooms.register(client, response.room_id, invite)
        log.info("matrix: a staff room was created and %d account(s) invited", len(invite))
        room_id: str = response.room_id
        return room_id

    async def _team_members(self, room_id: str, wanted: list[str]) -> None:
        """Invite missing staff accounts into a created staff room; remove the others."""
        client = self._state.require_client()
        state = await client.room_get_state(room_id)
        if not isinstance(state, RoomGetStateResponse):
            log.warning("matrix: a staff room's members could not be read")
            return
        members = {
            e.get("state_key"): e.get("content", {}).get("membership")
            for e in state.events
            if e.get("type") == "m.room.member"
        }
        present = {u for u, m in members.items() if m in ("join", "invite")}
        async with self._state.room_lock(room_id):
            room = client.rooms.get(room_id)
            for user_id in sorted(set(wanted) - present):
                response = await client.room_invite(room_id, user_id)
                if room is not None and type(response).__name__ == "RoomInviteResponse":
                    room.add_member(user_id, None, None, invited=True)
            for user_id in sorted(present - set(wanted) - {self._state.user_id}):
                response = await client.room_kick(room_id, user_id, reason="nicht mehr im Team")
                if room is not None and type(response).__name__ == "RoomKickResponse":
                    room.remove_member(user_id)
            if set(wanted) != present - {self._state.user_id}:
                if room is not None and client.olm is not None:
                    client.olm.update_tracked_users(room)
                with contextlib.suppress(Exception):
                    client.invalidate_outbound_session(room_id)  # leavers get no new keys

    async def _tighten(self, room_id: str) -> None:
        """Give invite, kick, ban, redaction and state changes to the bot alone (a room
        created before the bot set its power levels at creation); failures are logged."""
        client = self._state.require_client()
        bot = self._state.user_id
        response = await client.room_get_state_event(room_id, "m.room.power_levels")
        if not isinstance(response, RoomGetStateEventResponse):
            log.warning("matrix: a room's power levels could not be read")
            return
        current = dict(response.content)
        create = await client.room_get_state_event(room_id, "m.room.create")
        creator = (
            isinstance(create, RoomGetStateEventResponse)
            and creator_power(dict(create.content))
            and bot not in (current.get("users") or {})
        )
        wanted = tightened(current, bot, creator=creator)
        if wanted is None:
            log.warning("matrix: a room's power levels cannot be fixed (the bot lacks power)")
            return
        if not differs(current, wanted):
            return
        put = await client.room_put_state(room_id, "m.room.power_levels", wanted)
        if type(put).__name__ != "RoomPutStateResponse":
            log.warning("matrix: a staff room's power levels could not be fixed")
        else:
            log.info("matrix: a room's power levels were tightened")

    # ------------------------------------------------------------------ invites
    async def invite(self, room_id: str, accounts: list[str]) -> None:
        """Invite accounts into a known room; the next message's keys include them."""
        client = self._state.require_client()
        allowed = self._rooms.allowed(room_id)
        async with self._state.room_lock(room_id):
            await self._rooms.ensure_room(room_id)
            room = client.rooms[room_id]
            new = [a for a in accounts if a not in room.users and (allowed is None or a in allowed)]
            for user_id in new:
                response = await client.room_invite(room_id, user_id)
                if type(response).__name__ != "RoomInviteResponse":
                    log.warning("matrix: an invite into a case room failed")
                    continue
                room.add_member(user_id, None, None, invited=True)
            if new and client.olm is not None:
                client.olm.update_tracked_users(room)
                with contextlib.suppress(Exception):
                    client.invalidate_outbound_session(room_id)

    async def members(self, client: AsyncClient, room_id: str) -> set[str]:
        """Everyone but the bot in a room, as known here and as the server says."""
        room = client.rooms.get(room_id)
        members = set(room.users) | set(room.invited_users) if room else set()
        with contextlib.suppress(Exception):
            response = await client.joined_members(room_id)
            members |= {m.user_id for m in getattr(response, "members", ())}
        members.discard(self._state.user_id)
        return members

    # ------------------------------------------------------------------ removals
    async def reconcile_rooms(self) -> int:
        """Remove non-staff members from every known case and created staff room.

        Runs at start (after the first sync), after a directory reload and whenever a
        member event arrives in such a room. Returns how many accounts were removed.
        """
        client = self._state.require_client()
        removed = 0
        for room_id in sorted(r for r in client.rooms if self._rooms.guarded(r)):
            removed += await self.reconcile(room_id, hold=False)
        return removed

    async def reconcile(self, room_id: str, *, hold: bool = True) -> int:
        """Kick members of a guarded room who are not current staff of its programme.

        Works on nio's in-memory room state (kept current by the sync), so the check
        costs nothing when the room is clean. Returns how many were removed; with
        ``hold``, raises :class:`SendLater` when one could not be removed (the caller
        holds its message).
        """
        client = self._state.require_client()
        room = client.rooms.get(room_id)
        allowed = self._rooms.allowed(room_id)
        if room is None or allowed is None or not self._rooms.guarded(room_id):
            return 0
        if not outsiders(room, allowed):
            return 0  # the hot path: nothing to do, no lock, no request
        async with self._reconcile_lock:  # one removal at a time (a relay and the sync)
            return await self._remove(room_id, room, allowed, hold)

    async def _remove(
        self, room_id: str, room: MatrixRoom, allowed: frozenset[str], hold: bool
    ) -> int:
        client = self._state.require_client()
        strangers = outsiders(room, allowed)
        if not strangers:
            return 0
        removed, stuck = 0, 0
        for user_id in strangers:
            response = await client.room_kick(room_id, user_id, reason="nicht im Team")
            if type(response).__name__ == "RoomKickResponse":
                room.remove_member(user_id)
                removed += 1
            else:
                stuck += 1
        if client.olm is not None:
            client.olm.update_tracked_users(room)
            with contextlib.suppress(Exception):
                client.invalidate_outbound_session(room_id)  # leavers get no new keys
        self._state.stats["outsiders_removed"] += removed
        log.warning(
            "matrix: %d non-staff account(s) removed from a staff or case room, %d not",
            removed,
            stuck,
        )
        if removed:
            await self.alert(room_id, "staff.guard.removed")
        if stuck:
            key = f"{room_id}|{'|'.join(strangers)}"
            if key not in self._alerted:
                self._alerted[key] = True
                await self.alert(room_id, "staff.guard.not_removed")
            if hold:
                raise SendLater("a non-staff member could not be removed from the room")
        return removed

    async def alert(self, room_id: str, key: str) -> None:
        """Tell the programme's coordinators (in its staff room) what happened where.

        Names the case code or "team room", never an account or a person.
        """
        rooms = self._rooms
        programme = rooms.room_programme.get(room_id)
        target = rooms.created_staff_rooms.get(programme) if programme else None
        if target is None and programme and rooms.directory is not None:
            found = rooms.directory.by_id.get(programme)
            target = found.staff_rooms.get(Platform.MATRIX.value) if found else None
        target = target or room_id
        locale = "de"
        if programme and rooms.directory is not None and programme in rooms.directory.by_id:
            coordinators = [
                m for m in rooms.directory.by_id[programme].staff if m.role == "coordinator"
            ]
            locale = coordinators[0].locale if coordinators else "de"
        t = translator(locale)
        code = rooms.code_of(room_id)
        where = t("staff.guard.case_room", code=code) if code else t("staff.guard.team_room")
        if self.notify is None:
            return
        try:
            await self.notify(target, t(key, where=where))
        except Exception as exc:
            log.error("matrix: a coordinator alert failed: %s", type(exc).__name__)
