"""Which room is what: staff rooms, case rooms, people's chats, and who may be in them.

Rooms are not cached on disk: nio learns them from the first (full-state) sync. The
bot marks the rooms it creates with a state event (:data:`ROOM_MARKER`: case or staff,
and the programme), so a restart knows a case room without any local record. Memory
only, bounded; nothing here is logged.
"""

from __future__ import annotations

from typing import Final

from nio import (
    AsyncClient,
    MatrixRoom,
    RoomGetStateEventResponse,
    RoomMemberEvent,
    SyncResponse,
    UnknownEvent,
)

from bot.bounded import BoundedDict
from bot.transports.matrix.common import MAX_REMEMBERED, MatrixState
from config.directory import Directory
from config.messages import ChatKind, Platform

__all__ = ["ENCRYPTION", "ROOM_MARKER", "Rooms"]

#: State event the bot puts into the rooms it creates (case rooms): never a DM.
ROOM_MARKER: Final = "org.ausweg.room"
ENCRYPTION: Final = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class Rooms:
    """The room registry: kinds, programmes, allowed members (memory only)."""

    def __init__(self, state: MatrixState, staff_rooms: set[str]) -> None:
        self._state = state
        self.staff_rooms = staff_rooms
        #: Programmes without a configured staff room: id -> (name, staff accounts).
        self.team: dict[str, tuple[str, list[str]]] = {}
        #: Staff rooms the bot created (programme id -> room).
        self.created_staff_rooms: dict[str, str] = {}
        #: (case code, staff room it was claimed from) -> case room (per programme: a
        #: transferred case never reuses the old programme's room), and every room known
        #: to be a case room.
        self.case_rooms: dict[tuple[str, str], str] = {}
        self.case_room_ids: set[str] = set()
        self.marked: BoundedDict[str, bool] = BoundedDict(MAX_REMEMBERED)
        #: Matrix staff accounts per programme (all programmes), from the directory.
        self.staff: dict[str, frozenset[str]] = {}
        self.directory: Directory | None = None
        #: Case and created staff rooms -> their programme (who may be in them).
        self.room_programme: dict[str, str] = {}
        #: A person's chat -> the person's account (from their messages; memory only).
        self.people: BoundedDict[str, str] = BoundedDict(MAX_REMEMBERED)

    def use_directory(self, directory: Directory) -> None:
        platform = Platform.MATRIX.value
        self.directory = directory
        self.team = directory.team_accounts(platform)
        self.staff = {
            p.id: frozenset(m.accounts[platform] for m in p.staff if platform in m.accounts)
            for p in directory.programmes
        }

    # ------------------------------------------------------------------ kinds
    def is_staff_side(self, room_id: str) -> bool:
        """A staff or case room (not a person's own chat)."""
        return (
            room_id in self.staff_rooms
            or room_id in self.case_room_ids
            or room_id in self.room_programme
            or room_id in self.created_staff_rooms.values()
        )

    async def chat_kind(self, room: MatrixRoom) -> ChatKind:
        """Staff, case and group rooms are GROUP; a room of the bot and one person PRIVATE."""
        room_id = room.room_id
        if room_id in self.staff_rooms or room_id in self.case_room_ids:
            return ChatKind.GROUP
        if len(room.users) > 2:
            return ChatKind.GROUP
        return ChatKind.GROUP if await self.is_case_room(room_id) else ChatKind.PRIVATE

    async def is_case_room(self, room_id: str) -> bool:
        """Whether the bot created the room as a case room (its marker state event)."""
        if room_id in self.case_room_ids:
            return True
        marked = self.marked.get(room_id)
        if marked is None:
            response = await self._state.require_client().room_get_state_event(room_id, ROOM_MARKER)
            marked = (
                isinstance(response, RoomGetStateEventResponse)
                and response.content.get("kind") == "case"
            )
            self.marked[room_id] = marked
            if marked:
                self.case_room_ids.add(room_id)
                programme = response.content.get("programme")
                if isinstance(programme, str):
                    self.room_programme[room_id] = programme
        return marked

    def learn(self, response: SyncResponse) -> list[str]:
        """Note case-room markers seen in a sync; return guarded rooms with member events."""
        changed = []
        for room_id, info in response.rooms.join.items():
            members = False
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, UnknownEvent) and event.type == ROOM_MARKER:
                    content = event.source.get("content", {})
                    if isinstance(content, dict) and content.get("kind") == "case":
                        self.case_room_ids.add(room_id)
                        self.marked[room_id] = True
                        programme = content.get("programme")
                        if isinstance(programme, str):
                            self.room_programme[room_id] = programme
                members = members or isinstance(event, RoomMemberEvent)
            if members and self.guarded(room_id):
                changed.append(room_id)
        return changed

    def code_of(self, room_id: str) -> str | None:
        """The case code of a case room (remembered, or from its name "Fall K-XXXX")."""
        for (code, _staff_room), room in self.case_rooms.items():
            if room == room_id:
                return code
        client = self._state.client
        known = client.rooms.get(room_id) if client else None
        name = known.name if known is not None else None
        if room_id in self.case_room_ids and isinstance(name, str) and name.startswith("Fall "):
            return name[5:]
        return None

    def programme_of(self, address: str, invite: list[str]) -> str | None:
        """The programme a claim belongs to: the one whose staff room it was sent to
        (among programmes sharing a room, the one the claiming counsellor works for)."""
        for programme, room in self.created_staff_rooms.items():
            if room == address:
                return programme
        if address in self.room_programme:
            return self.room_programme[address]
        if self.directory is None:
            return None
        using = [p.id for p in self.directory.programmes_of_room(Platform.MATRIX.value, address)]
        staffed = [p for p in using if any(a in self.staff.get(p, ()) for a in invite)]
        found = staffed or using
        return found[0] if found else None

    # ------------------------------------------------------------ who may be in them
    def allowed(self, room_id: str) -> frozenset[str] | None:
        """Accounts that may be in (and get keys for) a room; None: a person's chat.

        Case rooms and created staff rooms: the current staff of their programme;
        configured staff rooms: the staff of the programmes using them; a case room of
        unknown programme (created before rooms carried it): the staff of any programme.
        """
        bot = self._state.user_id
        if self.directory is None:
            return None  # a bare transport (no directory handed over): nobody is known
        programme = self.room_programme.get(room_id)
        if programme is not None:
            return self.staff.get(programme, frozenset()) | {bot}
        if room_id in self.staff_rooms:
            using = self.directory.programmes_of_room(Platform.MATRIX.value, room_id)
            accounts = {a for p in using for a in self.staff.get(p.id, ())}
            return frozenset(accounts | {bot})
        if room_id in self.case_room_ids:
            return frozenset(a for staff in self.staff.values() for a in staff) | {bot}
        return None

    def guarded(self, room_id: str) -> bool:
        """Rooms the bot polices (removes outsiders from): the ones it created."""
        return room_id in self.case_room_ids or room_id in self.room_programme

    # ------------------------------------------------------------ nio's room state
    async def ensure_room(self, room_id: str) -> None:
        """Make nio know a room it has not seen in this process (rooms are not cached)."""
        client = self._state.require_client()
        if room_id in client.rooms:
            return
        encrypted = room_id in client.encrypted_rooms
        if not encrypted:
            state = await client.room_get_state_event(room_id, "m.room.encryption")
            encrypted = isinstance(state, RoomGetStateEventResponse)
        client.rooms[room_id] = MatrixRoom(room_id, self._state.user_id, encrypted)
        if encrypted:
            client.encrypted_rooms.add(room_id)

    def register(self, client: AsyncClient, room_id: str, invited: list[str]) -> None:
        """Let nio encrypt for a new room at once, invited members included.

        Without this the first message would be shared only with joined members (the
        bot) and the counsellors could never read it.
        """
        bot = self._state.user_id
        room = MatrixRoom(room_id, bot, encrypted=True)
        room.add_member(bot, None, None)
        for user_id in invited:
            room.add_member(user_id, None, None, invited=True)
        room.members_synced = True
        client.rooms[room_id] = room
        client.encrypted_rooms.add(room_id)
        client.store.save_encrypted_rooms([room_id])
        if client.olm is not None:
            client.olm.update_tracked_users(room)
