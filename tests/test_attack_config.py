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

from config.directory import parse_directory
from config.preflight import directory_flags
from tests.world import DIRECTORY


def test_attack_basic_group_staff_room_is_flagged() -> None:
    text = DIRECTORY.replace("{memory: alpha-room}", "{memory: alpha-room, telegram: '-4123456789'}")
    directory = parse_directory(text)
    assert directory.programmes[0].staff_rooms["telegram"] == "-4123456789"
    flags = directory_flags(directory)
    assert any("-4123456789" in f for f in flags), flags
