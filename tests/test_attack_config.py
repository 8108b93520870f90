"""Red-team review: a Telegram staff room given as a basic group id.

Basic groups have ids like -4123456789; when an admin turns on Topics (which the bot
needs for a topic per case), makes the group public or it grows, Telegram migrates it to
a supergroup with a new id (-100...). Nothing in the bot handles ``migrate_to_chat_id``
(grep: no "migrate" outside the database code): the bot then sees its own staff group
as an unconfigured group, announces that it leaves, leaves it, and every staff alert
goes to the dead old id - with crisis alerts among them.

What should happen: check-config (and start-up) flag a Telegram staff room that is not a
supergroup id; the transport follows ``migrate_to_chat_id`` (and the 400 answer carrying
it) and alerts the operator instead of leaving.
"""

from __future__ import annotations

from typing import Any

from bot.transports.telegram.updates import parse_update
from config.directory import parse_directory
from config.preflight import directory_flags
from tests.telegram.conftest import COUNSELLOR
from tests.world import DIRECTORY


def test_attack_basic_group_staff_room_is_flagged() -> None:
    text = DIRECTORY.replace(
        "{memory: alpha-room}", "{memory: alpha-room, telegram: '-4123456789'}"
    )
    directory = parse_directory(text)
    assert directory.programmes[0].staff_rooms["telegram"] == "-4123456789"
    flags = directory_flags(directory)
    assert any("-4123456789" in f for f in flags), flags


def test_supergroup_staff_room_is_not_flagged() -> None:
    text = DIRECTORY.replace(
        "{memory: alpha-room}", "{memory: alpha-room, telegram: '-1001234567890'}"
    )
    assert not any("-1001234567890" in f for f in directory_flags(parse_directory(text)))


def migration(chat: int, new: int) -> dict[str, Any]:
    return {
        "message": {
            "message_id": 3,
            "date": 1_790_000_000,
            "chat": {"id": chat, "type": "group", "title": "Team"},
            "from": {"id": COUNSELLOR, "is_bot": False, "first_name": "C"},
            "migrate_to_chat_id": new,
        }
    }


def test_migrate_to_chat_id_is_parsed() -> None:
    incoming = parse_update({"update_id": 1, **migration(-4_123_456_789, -1_009_999)})
    assert incoming.message is None
    assert incoming.migrated == (-4_123_456_789, -1_009_999)
