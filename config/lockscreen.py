"""What a lock screen may show (privacy check 19).

Telegram and Element show the first line of a new message in notifications, on the lock
screen and in the chat list, where whoever holds the phone can read it. That line must
name no programme (or its operator) and no scene or exit/extremism word, unless the
operator chose ``discretion: {name_programme: true}`` in the directory.

The word lists are stems, matched at the start of a word and case-insensitively, so
that inflected forms are caught ("Ausstiegs-", "rechtsextreme", "extremism").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from config.directory import Directory, mentions

#: Stems that give the topic away, per catalog language.
WORDS: dict[str, tuple[str, ...]] = {
    "de": (
        "ausstieg",
        "aussteig",
        "extremis",
        "rechtsextrem",
        "linksextrem",
        "rechte szene",
        "linke szene",
        "rechts",
        "links",
        "islamis",
        "salafis",
        "dschihad",
        "radikal",
        "reichsbürger",
        "verschwörung",
        "nazi",
        "neonazi",
        "szene",
        "verfassungsschutz",
        "antisemit",
        "terror",
    ),
    "en": (
        "exit",
        "extremis",
        "far-right",
        "far right",
        "far-left",
        "far left",
        "right-wing",
        "left-wing",
        "islamis",
        "salafi",
        "jihad",
        "radical",
        "reichsbürger",
        "conspiracy",
        "nazi",
        "neo-nazi",
        "scene",
        "verfassungsschutz",
        "intelligence",
        "antisemit",
        "anti-semit",
        "terror",
    ),
    "ru": ("экстремис", "выход из", "радикал", "исламис", "нацис", "правые", "левые", "террор"),
    "uk": ("екстреміс", "вихід з", "радикал", "ісламіс", "нацис", "праві", "ліві", "терор"),
    "ar": ("تطرف", "متطرف", "إسلامي", "اسلامي", "يمين", "يسار", "نازي", "إرهاب", "ارهاب"),
    "tr": ("aşırılık", "aşırı sağ", "aşırı sol", "radikal", "islamcı", "cihat", "nazi", "terör"),
}


@cache
def _pattern(locale: str) -> re.Pattern[str]:
    stems = WORDS.get(locale, ()) + WORDS["de"] + WORDS["en"]
    alternatives = "|".join(re.escape(s) for s in sorted(set(stems), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})", re.IGNORECASE)


def first_line(text: str) -> str:
    """What a notification shows: the text up to the first line break."""
    return text.strip().split("\n", 1)[0]


def names_of(directory: Directory) -> tuple[str, ...]:
    """Every programme name, short name and operator in a directory."""
    out: list[str] = []
    for p in directory.programmes:
        out.extend(p.names)
        if p.operator_name:
            out.append(p.operator_name)
    return tuple(dict.fromkeys(out))


def problems(text: str, locale: str, names: Iterable[str] = ()) -> list[str]:
    """What the first line of ``text`` gives away (empty: safe for a lock screen)."""
    line = first_line(text)
    found = [m.group(0) for m in _pattern(locale).finditer(line)]
    found += [n for n in names if mentions(line, n)]
    return found
