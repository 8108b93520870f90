"""Matrix wire format: outbound notices with numbered options, inbound text clean-up.

Pure functions, no I/O: easy to test and to fuzz.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from bot.messages import Button

__all__ = [
    "BUTTON_KEYCAPS",
    "attachment_kind",
    "is_matrix_id",
    "notice_content",
    "reaction_choice",
    "strip_reply_fallback",
]

#: Keycap emoji for options 1..10, offered as reaction shortcuts.
BUTTON_KEYCAPS = (*(f"{n}\ufe0f\u20e3" for n in range(1, 10)), "\U0001f51f")
#: Reactions that press the only button of a message (e.g. "claim").
_YES = frozenset({"\U0001f44d", "\u2705", "\u2714\ufe0f", "\u2714", "+1"})
_MXID = re.compile(r"^@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(:\d{1,5})?$")
_MEDIA = {
    "m.image": "photo",
    "m.file": "file",
    "m.audio": "voice",
    "m.video": "video",
    "m.location": "location",
}


def notice_content(text: str, buttons: Sequence[Button] = ()) -> dict[str, Any]:
    """An ``m.notice`` with plain ``body`` and escaped HTML; buttons as a numbered list.

    ``m.mentions`` is empty so that no word of the text pings anybody.
    """
    body = text
    formatted = html.escape(text).replace("\n", "<br>")
    if buttons:
        lines = [f"{n}. {b.label}" for n, b in enumerate(buttons, 1)]
        body = f"{text}\n\n" + "\n".join(lines) if text else "\n".join(lines)
        items = "".join(f"<li>{html.escape(b.label)}</li>" for b in buttons)
        formatted = f"{formatted}<ol>{items}</ol>"
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {},
    }


def reaction_choice(key: str, count: int) -> int | None:
    """The 0-based option a reaction picks on a message with ``count`` buttons."""
    key = key.strip()
    if key in BUTTON_KEYCAPS:
        index = BUTTON_KEYCAPS.index(key)
    elif key.endswith("\u20e3") and key[:1].isdigit():  # keycap without variation selector
        index = int(key[0]) - 1
    elif key.isdigit() and key.isascii():
        index = int(key) - 1
    elif key in _YES and count == 1:
        index = 0
    else:
        return None
    return index if 0 <= index < count else None


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted fallback of a rich reply (``> <@user:server> ...`` lines).

    The fallback names the quoted message's sender: relayed as is, it would show a
    counsellor's account to a person or a person's account to staff.
    """
    lines = body.split("\n")
    if not lines or not lines[0].startswith(">"):
        return body
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def attachment_kind(msgtype: str) -> str | None:
    """The core's attachment word for a media ``msgtype`` (None: not media)."""
    return _MEDIA.get(msgtype)


def is_matrix_id(value: str) -> bool:
    """Whether ``value`` looks like a Matrix user id (``@local:server``)."""
    return bool(_MXID.match(value))
