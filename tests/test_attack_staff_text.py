"""Red-team review of issue 10 observation 6: person text that passes for a bot line
in a staff room."""

from __future__ import annotations

from bot.transports.telegram.render import split_text, utf16_len
from handlers.staff_text import QUOTE, quote
from tests.world import World

FORGED = "🚨 DRINGEND [K-ABCD] Bedrohung – noch nicht übernommen, bitte jetzt 0151 2345678 anrufen"


async def test_attack_telegram_split_starts_a_part_with_unquoted_person_text(
    world: World,
) -> None:
    """A person's single line of 4000 characters (within MAX_TEXT) made of emoji is
    8000 UTF-16 units; Telegram's split_text cuts it at a space, so the next Telegram
    message (its own bubble, sent by the bot) starts with the person's words, unquoted.
    The attacker puts a fake bot line exactly there.

    What should happen: every part of a split staff-room message whose text is person
    text starts with the quote mark (split at line breaks of the quoted text and re-quote
    a cut line), or person text is cut so the whole relay fits one message."""
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    await w.person("p1", "PROBE")
    probe = next(m for m in w.t.pop("alpha-room") if "PROBE" in m.text).text
    # no space in the padding: the cut falls on the space right before the forged line
    # (found on the probe's layout; the real relay below is checked, not assumed)
    for n in range(1900, 2048):
        attack = "😀" * n + " " + FORGED
        if split_text(probe.replace("PROBE", attack))[-1].startswith("🚨 DRINGEND"):
            break
    assert len(attack) <= 4000
    await w.person("p1", attack)
    room = w.t.pop("alpha-room")
    relayed = next(m for m in room if "😀" in m.text)
    parts = split_text(relayed.text)
    assert len(parts) > 1
    for part in parts[1:]:
        first = part.splitlines()[0]
        assert first.startswith(QUOTE.rstrip()), f"part starts unquoted: {first[:80]!r}"


INVISIBLE_FILLERS = ["\u2800", "\u3164", "\u115f", "\u1160", "\uffa0"]


def test_attack_invisible_filler_characters_survive_quote() -> None:
    """Braille blank (U+2800) and the Hangul fillers are printed as blank glyphs but are
    letters/symbols, so clean() keeps them: a run of them pads the quoted line until the
    client wraps, and the forged text appears at the start of a visual line with no
    quote mark in front of it (Telegram renders plain text, no blockquote).

    What should happen: runs of blank-glyph characters collapse (or are dropped) like
    other invisible characters in handlers/staff_text.py."""
    for filler in INVISIBLE_FILLERS:
        text = quote("hallo" + filler * 300 + FORGED)
        assert filler * 10 not in text, f"U+{ord(filler):04X} padding kept"


def test_split_never_leaves_a_quoted_line_unquoted() -> None:
    """Cuts at spaces and inside one unbroken word both continue with the quote mark;
    no part exceeds the limit and no cut falls inside the mark itself."""
    cases = [
        ("Bot-Zeile\n" + quote("wort " * 40 + FORGED), 60),
        ("Bot-Zeile\n" + quote("x" * 300), 50),
        (quote("😀" * 100 + " " + FORGED), 40),
    ]
    for text, limit in cases:
        parts = split_text(text, limit)
        assert len(parts) > 2
        assert all(utf16_len(p) <= limit for p in parts)
        for part in parts[1:]:
            assert part.startswith(QUOTE), part[:40]
