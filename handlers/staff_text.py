"""Person text shown to staff: cleaned, and quoted so it can never pass for a bot line.

A person's message with line breaks and a right-to-left override once produced a line
in a staff room that looked like the bot's line for another case ("[K-XXXX] URGENT:
call ..."). Every text of a person that the case service puts into a staff room goes
through :func:`quote` (relays, held messages, notes); transports render the quote
(Matrix: ``<blockquote>``; Telegram, console, memory: the ``> `` marks as they are).
"""

from __future__ import annotations

import re
import unicodedata

#: Start of every line of person text in a staff room.
QUOTE = "> "
#: Format characters that stay: joiners inside emoji and some scripts, emoji tag letters.
_KEEP_FORMAT = frozenset({"\u200c", "\u200d"})
_TAGS = range(0xE0020, 0xE0080)
#: Line breaks of every kind become "\n" (then quoted like any other line).
_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
#: Combining marks stacked on one letter beyond this draw over neighbouring lines.
MAX_MARKS = 8
#: Characters drawn as a blank glyph although they are letters, symbols or marks (so
#: the category rules keep them): Braille blank, the Hangul fillers, Khmer inherent
#: vowels, the grapheme joiner, a null notehead. A run of them pads a quoted line
#: until the client wraps it, and forged text then starts a visual line unquoted.
_FILLERS = frozenset("\u2800\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\U0001d159")
#: Runs of spaces of any width collapse to one space, for the same reason.
_SPACES = re.compile(r"[^\S\n]{2,}")


def _kept(ch: str) -> bool:
    if ch in _FILLERS:
        return False
    category = unicodedata.category(ch)
    if category == "Cf":
        return ch in _KEEP_FORMAT or ord(ch) in _TAGS
    return category not in ("Cc", "Cs") or ch == "\n"


def clean(text: str) -> str:
    """Drop bidi overrides / isolates, control, invisible format and blank-glyph
    filler characters.

    Line breaks of any kind become ``"\\n"``, tabs a space, runs of spaces one space;
    runs of blank lines shrink to one; a letter keeps at most ``MAX_MARKS`` combining
    marks.
    """
    text = _BREAKS.sub("\n", text).replace("\t", " ")
    out: list[str] = []
    marks = 0
    for ch in text:
        if not _kept(ch):
            continue
        if unicodedata.combining(ch):
            marks += 1
            if marks > MAX_MARKS:
                continue
        else:
            marks = 0
        out.append(ch)
    joined = _SPACES.sub(" ", "".join(out))
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", joined).strip("\n")


def one_line(text: str) -> str:
    """:func:`clean`, with line breaks as spaces (file names, labels)."""
    return " ".join(clean(text).split("\n"))


def quote(text: str) -> str:
    """Person text for a staff room: cleaned, every line starting with ``> ``."""
    lines = clean(text).split("\n")
    return "\n".join(f"{QUOTE}{line}".rstrip() for line in lines)


def is_quoted(line: str) -> bool:
    """Whether a line of a staff-room text is (part of) quoted person text."""
    return line.startswith(QUOTE.rstrip())
