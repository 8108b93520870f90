"""The pure parts of the room guard (check 17): power levels, repair, outsiders."""

from __future__ import annotations

from pathlib import Path

import pytest
from nio import MatrixRoom

from bot.transports.base import SendLater
from bot.transports.matrix import MatrixTransport
from bot.transports.matrix.guard import (
    creator_power,
    differs,
    outsiders,
    power_levels,
    tightened,
)
from config.settings import MatrixSettings
from tests.conftest import make_settings
from tests.matrix.test_team_rooms import with_matrix
from tests.world import directory_without

BOT = "@bot:localhost"


def test_new_rooms_leave_every_privilege_to_the_creator() -> None:
    levels = power_levels()
    assert "users" not in levels  # the homeserver sets the creator (v12 refuses it there)
    assert levels["users_default"] == 0
    assert levels["events_default"] == 0
    for key in ("invite", "kick", "ban", "redact", "state_default"):
        assert levels[key] == 100
    assert levels["events"]["m.room.power_levels"] == 100
    assert levels["events"]["m.room.redaction"] == 0  # staff may redact their own


def test_loose_room_is_tightened_keeping_peers_the_bot_cannot_lower() -> None:
    loose = {
        "users": {BOT: 100, "@peer:localhost": 100, "@staff:localhost": 50},
        "users_default": 0,
        "invite": 0,
        "kick": 50,
        "events": {"m.room.power_levels": 100},
    }
    wanted = tightened(loose, BOT)
    assert wanted is not None
    assert wanted["users"] == {BOT: 100, "@peer:localhost": 100}
    assert wanted["invite"] == wanted["kick"] == 100
    assert differs(loose, wanted)
    assert not differs({**loose, **wanted}, wanted)


def test_no_repair_without_the_power_to_change_power_levels() -> None:
    assert tightened({"users": {BOT: 50}, "events": {"m.room.power_levels": 100}}, BOT) is None


def test_room_version_12_creators_are_not_listed() -> None:
    assert creator_power({"room_version": "12"})
    assert not creator_power({"room_version": "10"})
    wanted = tightened({"users": {}}, BOT, creator=True)
    assert wanted is not None
    assert wanted["users"] == {}


def test_outsiders_are_joined_or_invited_members_not_allowed() -> None:
    room = MatrixRoom("!r:localhost", BOT)
    room.add_member(BOT, None, None)
    room.add_member("@staff:localhost", None, None)
    room.add_member("@invited:localhost", None, None, invited=True)
    room.add_member("@joined:localhost", None, None)
    allowed = {BOT, "@staff:localhost"}
    assert outsiders(room, allowed) == ["@invited:localhost", "@joined:localhost"]


class _Refused:
    """What nio returns when the homeserver refuses a kick (not a RoomKickResponse)."""


class _StubClient:
    """Just enough of nio's client for the membership check (no server)."""

    def __init__(self, room: MatrixRoom) -> None:
        self.rooms = {room.room_id: room}
        self.olm = None
        self.kicks: list[str] = []

    async def room_kick(self, room_id: str, user_id: str, reason: str = "") -> _Refused:
        self.kicks.append(user_id)
        return _Refused()


async def test_relay_is_held_while_an_outsider_cannot_be_removed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.matrix = MatrixSettings(enabled=True, homeserver="http://127.0.0.1:9", user_id=BOT)
    transport = MatrixTransport(settings)
    transport.use_directory(with_matrix(directory_without(), {"a1": "@alex:localhost"}))
    room = MatrixRoom("!case:localhost", BOT)
    for member in (BOT, "@alex:localhost", "@outsider:localhost"):
        room.add_member(member, None, None)
    client = _StubClient(room)
    transport.client = client  # type: ignore[assignment]
    transport.rooms.case_room_ids.add(room.room_id)
    transport.rooms.room_programme[room.room_id] = "alpha"
    alerts: list[tuple[str, str]] = []

    async def alert(room_id: str, key: str) -> None:
        alerts.append((room_id, key))

    transport.membership.alert = alert  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(SendLater):
            await transport.sender.room_send(room.room_id, "m.room.message", {"body": "x"})
    assert client.kicks == ["@outsider:localhost", "@outsider:localhost"]
    assert transport.stats["held"] == 2
    assert alerts == [(room.room_id, "staff.guard.not_removed")]  # told once
    # A person's own chat is never policed.
    assert transport.rooms.allowed("!dm:localhost") is None
