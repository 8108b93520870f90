"""OutboundMessage -> Bot API pieces: text parts, inline keyboards, command menus.

Texts are sent as plain text (no ``parse_mode``): whatever a person or counsellor
writes (``<``, ``&``, ``*``, ``_``, emoji, right-to-left scripts) arrives exactly
as written and nothing needs escaping.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

from config.i18n import SUPPORTED, translator
from config.messages import Button
from handlers.staff_text import QUOTE, is_quoted

log = logging.getLogger(__name__)

#: Telegram's limits (text length counts UTF-16 code units).
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_BUTTONS = 100
MAX_DELETE = 100
MAX_TOPIC_NAME = 128

_SEPARATORS = ("\n\n", "\n", " ")

#: Person commands (command, catalog key of its description): Telegram shows the menu in
#: the language of the person's app (setMyCommands per language_code); German is the
#: default menu for every other language.
_PERSON_MENU = tuple(
    (c, f"command.{c}") for c in ("start", "help", "who", "delete", "vanish", "language")
)
#: Staff commands (a counsellor's app may be set to any of the six languages).
_STAFF_MENU = (
    ("queue", "command.queue"),
    ("claim", "command.claim"),
    ("help", "command.staff_help"),
)


def _menu(items: tuple[tuple[str, str], ...], language: str) -> tuple[tuple[str, str], ...]:
    t = translator(language)
    return tuple((command, t(key)) for command, key in items)


#: Command menus: (command, description) per language; "de" is the default menu.
PERSON_COMMANDS: dict[str, tuple[tuple[str, str], ...]] = {
    language: _menu(_PERSON_MENU, language) for language in SUPPORTED
}
STAFF_COMMANDS: dict[str, tuple[tuple[str, str], ...]] = {
    language: _menu(_STAFF_MENU, language) for language in SUPPORTED
}
DEFAULT_LANGUAGE = "de"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """The largest n such that ``text[:n]`` is at most ``limit`` UTF-16 units."""
    n = min(len(text), limit)
    while (excess := utf16_len(text[:n]) - limit) > 0:
        n -= max(1, excess // 2)
    return n


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a text into parts Telegram accepts, at paragraph, line or word boundaries.

    A quoted line (person text in a staff room, ``> ...``) cut inside goes on with the
    quote mark: every part is its own bubble, and an unquoted start would let a
    person's words pass for a bot line. A cut never falls inside the quote mark.
    Whitespace-only parts are dropped (Telegram refuses empty messages).
    """
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        n = _prefix_within(rest, limit)
        head = rest[:n]
        for sep in _SEPARATORS:
            cut = head.rfind(sep)
            if cut > (_quote_end(rest, cut) if sep == " " else 0):
                parts.append(rest[:cut])
                rest = _go_on(rest, cut, rest[cut + len(sep) :], inside=sep == " ")
                break
        else:  # one unbroken word longer than the limit
            parts.append(head)
            rest = _go_on(rest, n, rest[n:], inside=True)
    parts.append(rest)
    return [p for p in parts if p.strip()]


def _quote_end(text: str, at: int) -> int:
    """The end of the quote mark of the line holding position ``at`` (its start when
    the line is not quoted): cuts must lie beyond it."""
    start = text.rfind("\n", 0, at) + 1
    return start + len(QUOTE) if is_quoted(text[start:]) else start


def _go_on(text: str, cut: int, rest: str, *, inside: bool) -> str:
    """The rest after a cut at ``cut``, re-quoted when the cut fell inside a quoted line."""
    start = text.rfind("\n", 0, cut) + 1
    if inside and is_quoted(text[start:]):
        return QUOTE + rest
    return rest


def keyboard(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    """An inline keyboard; buttons Telegram would refuse are left out (and logged)."""
    out: list[list[InlineKeyboardButton]] = []
    count = 0
    for row in rows:
        line = []
        for button in row:
            data_len = len(button.data.encode())
            if not button.label.strip() or not 1 <= data_len <= MAX_CALLBACK_DATA:
                log.warning("button left out: empty label or data of %d bytes", data_len)
                continue
            if count >= MAX_BUTTONS:
                log.warning("button left out: more than %d buttons", MAX_BUTTONS)
                continue
            line.append(InlineKeyboardButton(button.label, callback_data=button.data))
            count += 1
        if line:
            out.append(line)
    return InlineKeyboardMarkup(out) if out else None


def message_ids(refs: Iterable[str]) -> list[int]:
    """Message ids from refs (a ref of a split message lists its parts: ``"12,13"``)."""
    ids: set[int] = set()
    for ref in refs:
        for piece in ref.split(","):
            piece = piece.strip()
            if piece.isdigit():
                ids.add(int(piece))
    return sorted(ids)


def chunks(values: Sequence[int], size: int = MAX_DELETE) -> list[list[int]]:
    """Consecutive slices of at most ``size``."""
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


def chat_id(value: str) -> int | str:
    """A Bot API chat id: numeric ids as int, ``@username`` as it is."""
    stripped = value.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    return stripped


def thread_id(value: str | None) -> int | None:
    """A forum topic id, when the address has a numeric one."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def topic_name(case_code: str) -> str:
    """The forum topic title of a case: its code (no account data)."""
    return case_code.strip()[:MAX_TOPIC_NAME] or "?"


def bot_commands(table: dict[str, tuple[tuple[str, str], ...]], language: str) -> list[BotCommand]:
    """The command menu of one language."""
    return [BotCommand(command, description) for command, description in table[language]]
