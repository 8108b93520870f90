"""Commands as each platform lets people type them.

Catalog texts name commands in their Telegram form (``/delete``): Telegram shows them as
tappable commands and lists them in its menu. Element (Matrix) reads a message that
starts with ``/`` as a command of its own: ``/help`` never leaves the app, ``/invite``
and ``/op`` act on the room, any other unknown one opens a "send as message?" dialog.
So a text bound for Matrix names the same command with ``!`` (``!delete``), the form
Matrix bots commonly use and Element sends as it is. The core accepts ``/``, ``!`` and,
for a person's commands, the plain word in German or English ("löschen").

Rendering here rather than in every catalog keeps one text per key for all platforms and
all six languages (a translated text that keeps ``/delete`` is still rendered right).
"""

from __future__ import annotations

import re

from config.messages import Platform
from handlers.staff_text import is_quoted

__all__ = ["COMMANDS", "PERSON_COMMANDS", "PREFIX", "STAFF_COMMANDS", "for_platform"]

#: What a person can type (``handlers.intake``).
PERSON_COMMANDS = frozenset(
    {"start", "help", "delete", "language", "back", "vanish", "pause", "resume", "who"}
)
#: What a counsellor can type in a staff room (``handlers.staff``).
STAFF_COMMANDS = frozenset(
    {
        "queue",
        "claim",
        "release",
        "r",
        "note",
        "notes",
        "invite",
        "transfer",
        "followup",
        "canned",
        "pause",
        "close",
        "erase",
        "away",
        "hours",
        "help",
    }
)
COMMANDS = PERSON_COMMANDS | STAFF_COMMANDS
#: The command prefix a platform's texts use where it is not ``/``.
PREFIX: dict[Platform, str] = {Platform.MATRIX: "!"}
# "/delete" as a word of its own: not inside a path or address ("example.org/start").
_NAMED = re.compile(
    r"(?<![\w/.:@-])/(" + "|".join(sorted(COMMANDS, key=len, reverse=True)) + r")(?![\w/-])"
)


def for_platform(text: str, platform: Platform) -> str:
    """``text`` with every command named the way ``platform`` lets people type it.

    Quoted lines (a person's own words shown to staff) stay as written.
    """
    prefix = PREFIX.get(platform)
    if prefix is None or "/" not in text:
        return text
    return "\n".join(
        line if is_quoted(line) else _NAMED.sub(prefix + r"\1", line) for line in text.split("\n")
    )
