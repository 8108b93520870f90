"""The pure parts of the room guard (check 17): power levels, repair, outsiders."""

from __future__ import annotations

from nio import MatrixRoom

from bot.transports.matrix.guard import (
    creator_power,
    differs,
    outsiders,
    power_levels,
    tightened,
)

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
