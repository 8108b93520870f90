"""Matrix wire format: outbound notices with numbered options, inbound text clean-up.

Pure functions, no I/O: easy to test and to fuzz.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from bot.commands import for_platform
from config.messages import Button, Platform
from handlers.staff_text import QUOTE, is_quoted, one_line

__all__ = [
    "BUTTON_KEYCAPS",
    "attachment_kind",
    "is_matrix_id",
    "media_content",
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


def _html(text: str) -> str:
    """Escaped HTML; runs of quoted lines (person text, ``> ``) as one ``<blockquote>``."""
    blocks: list[tuple[bool, list[str]]] = []  # (quoted, escaped lines)
    for line in text.split("\n"):
        quoted = is_quoted(line)
        if quoted:
            line = line[len(QUOTE) :] if line.startswith(QUOTE) else line[1:]
        if blocks and blocks[-1][0] == quoted:
            blocks[-1][1].append(html.escape(line))
        else:
            blocks.append((quoted, [html.escape(line)]))
    return "".join(
        f"<blockquote>{'<br>'.join(lines)}</blockquote>" if quoted else "<br>".join(lines)
        for quoted, lines in blocks
    )


def notice_content(text: str, buttons: Sequence[Button] = ()) -> dict[str, Any]:
    """An ``m.notice`` with plain ``body`` and escaped HTML; buttons as a numbered list.

    ``m.mentions`` is empty so that no word of the text pings anybody. Quoted person
    text (lines starting with ``> ``) is a ``<blockquote>``: it cannot pass for a line
    of the bot. Commands are named as Element lets them through (``!delete``, never
    ``/help``: :func:`bot.commands.for_platform`).
    """
    text = for_platform(text, Platform.MATRIX)
    body = text
    formatted = _html(text)
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


#: The first line of a real reply fallback: ``> <@user:server> ...`` (``> * <@...`` for
#: an emote).
_FALLBACK = re.compile(r"> (?:\* )?<@[^\s<>:]+:[^\s<>]+>")


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted fallback of a rich reply (``> <@user:server> ...`` lines); call
    it only for events with an ``m.in_reply_to`` relation.

    Only a real fallback is dropped: a first line quoting another text is the
    person's own (a threat they were sent, say) and is kept for detection and relay.

    The fallback names the quoted message's sender: relayed as is, it would show a
    counsellor's account to a person or a person's account to staff.
    """
    lines = body.split("\n")
    if not _FALLBACK.match(lines[0]):
        return body  # the person's own quote (clients since Matrix v1.13 send no fallback)
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


#: What a relayed media event keeps of the person's content (no formatted_body, no
#: mentions, no relations, no unknown keys).
MEDIA_KEYS = ("msgtype", "body", "filename", "info", "url", "file")


def media_content(content: dict[str, Any]) -> dict[str, Any]:
    """A person's media event content reduced to what a copy needs.

    The person controls every key: ``formatted_body`` could carry links, ``m.mentions``
    ping a room, ``m.relates_to`` thread or replace the bot's messages. Names are
    cleaned like any person text (no bidi overrides, one line).
    """
    kept = {k: content[k] for k in MEDIA_KEYS if k in content}
    for key in ("body", "filename"):
        value = kept.get(key)
        if value is not None:
            kept[key] = one_line(value) if isinstance(value, str) else ""
    if not isinstance(kept.get("info", {}), dict):
        del kept["info"]
    return kept


def attachment_kind(msgtype: str) -> str | None:
    """The core's attachment word for a media ``msgtype`` (None: not media)."""
    return _MEDIA.get(msgtype)


def is_matrix_id(value: str) -> bool:
    """Whether ``value`` looks like a Matrix user id (``@local:server``)."""
    return bool(_MXID.match(value))
