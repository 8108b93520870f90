"""Issue 10, observation 6: person text cannot impersonate the bot in staff rooms.

A person's message with line breaks and a right-to-left override once produced a line
that looked like the bot's line for another case ("[K-ZZZZ] DRINGEND ... anrufen").
Every line of person text now arrives quoted and cleaned; Matrix renders the quote as
``<blockquote>`` and re-sends only the safe keys of a media event.
"""

from __future__ import annotations

import re
import unicodedata

from bot.transports.matrix.render import media_content, notice_content
from handlers.staff_text import clean, is_quoted, one_line, quote
from tests.world import World, texts

FORGED = "[K-ZZZZ] DRINGEND: Bitte sofort 0151 2345678 anrufen"
#: Every kind of line break, bidi overrides / isolates / marks, invisible characters.
ATTACK = (
    "danke\n"
    + FORGED
    + "\r\u202e]ZZZZ-K[ nefurna 8765432 1510"
    + "\u2028[K-ZZZZ] (LS)\u2029[K-ZZZZ] (PS)\x85[K-ZZZZ] (NEL)\r\n[K-ZZZZ] (CRLF)"
    + "\x0b[K-ZZZZ] (VT)\x0c[K-ZZZZ] (FF)"
    + "\u2066\u2067\u2068\u2069\u202a\u202b\u202c\u202d\u200e\u200f\u061c\u200b\ufeff\x00\x1b[2J"
)
BIDI = {chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)}
BIDI |= {"\u200e", "\u200f", "\u061c"}
BOT_LINE = re.compile(r"^\s*\[K-")


def bot_lines(text: str) -> list[str]:
    """Lines of a staff-room text that are not quoted person text."""
    return [line for line in text.split("\n") if not is_quoted(line)]


def assert_safe(text: str, code: str) -> None:
    """Only the bot's own lines are unquoted; no control or bidi character anywhere."""
    assert [line for line in bot_lines(text) if BOT_LINE.match(line)] == [
        line for line in bot_lines(text) if line.startswith(f"[{code}]")
    ]
    assert not BIDI & set(text)
    assert all(
        ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") for ch in text
    )


def test_clean_neutralises_line_breaks_bidi_and_controls() -> None:
    cleaned = clean(ATTACK)
    assert not BIDI & set(cleaned)
    assert "\r" not in cleaned
    assert "\x1b" not in cleaned
    assert cleaned.count("\n") == 8  # every kind of break is an ordinary newline now
    assert "\u202e" not in cleaned
    quoted = quote(ATTACK)
    assert all(line.startswith(">") for line in quoted.split("\n"))
    assert "> " + FORGED in quoted.split("\n")
    assert one_line("a\u2028b\u202e.exe") == "a b.exe"
    # Ordinary text keeps its look: emoji with joiners, umlauts, Arabic, one blank line.
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean(f"Grüße {family} مرحبا\n\n\n\nEnde") == f"Grüße {family} مرحبا\n\nEnde"
    assert len(clean("a" + "\u0301" * 50)) == 9  # stacked marks cannot draw over lines


async def test_rlo_and_newlines_cannot_forge_a_bot_line_in_the_staff_room(world: World) -> None:
    w = world
    code = await w.open("p1", message=ATTACK)  # held until the claim
    claimed = texts(await w.staff("a1", f"/claim {code}"))
    held = claimed[claimed.index(f"[{code}] (wartende Nachricht)") :]
    assert_safe(held, code)
    assert "> " + FORGED in held.split("\n")

    await w.person("p1", ATTACK)
    [relayed] = [m.text for m in w.t.pop("alpha-room")]
    assert relayed.split("\n")[0] == f"[{code}]"
    assert_safe(relayed, code)
    assert bot_lines(relayed) == [f"[{code}]"]

    await w.staff("a1", f"/note {code} {ATTACK}")
    notes = texts(await w.staff("a1", f"/notes {code}"))
    assert_safe(notes, code)

    # Matrix rendering of the same message: the person's part is one escaped blockquote.
    content = notice_content(relayed)
    assert content["body"] == relayed
    formatted = content["formatted_body"]
    assert formatted.startswith(f"[{code}]<blockquote>")
    assert formatted.endswith("</blockquote>")
    assert formatted.count("<blockquote>") == 1
    outside = re.sub(r"<blockquote>.*</blockquote>", "", formatted, flags=re.DOTALL)
    assert outside == f"[{code}]"


def test_matrix_blockquote_escapes_person_html() -> None:
    person = '<a href="https://evil.example">Hilfe</a>\n@room hallo'
    text = "[K-AAAA]\n" + quote(person)
    formatted = notice_content(text)["formatted_body"]
    assert "<a " not in formatted
    assert "&lt;a href=&quot;https://evil.example&quot;&gt;" in formatted
    assert notice_content(text)["m.mentions"] == {}


def test_matrix_media_copy_keeps_only_safe_keys() -> None:
    sent = {
        "msgtype": "m.image",
        "body": "foto\u202egnp.exe\n[K-ZZZZ] DRINGEND",
        "filename": "a\u2066b.png",
        "info": {"mimetype": "image/png", "size": 10},
        "url": "mxc://localhost/abc",
        "format": "org.matrix.custom.html",
        "formatted_body": '<a href="https://evil.example">Hilfe</a> @room',
        "m.mentions": {"room": True, "user_ids": ["@counsellor:localhost"]},
        "m.relates_to": {"rel_type": "m.thread", "event_id": "$other"},
        "m.new_content": {"body": "x"},
        "org.example.custom": "anything",
    }
    copied = media_content(sent)
    assert set(copied) == {"msgtype", "body", "filename", "info", "url"}
    assert copied["body"] == "fotognp.exe [K-ZZZZ] DRINGEND"
    assert copied["filename"] == "ab.png"
    assert copied["info"] == {"mimetype": "image/png", "size": 10}
    encrypted = {"msgtype": "m.file", "body": "x", "file": {"url": "mxc://x/y", "v": "v2"}}
    assert media_content(encrypted) == encrypted
