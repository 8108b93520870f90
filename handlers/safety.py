"""Crisis detection: danger to life or violence gets emergency numbers at once."""

from __future__ import annotations

import enum
import re
import unicodedata

# Stems matched at word starts, German and English. Deliberately broad: a false
# alarm costs one extra message with phone numbers; a miss can cost a life.
_STEMS = (
    "suizid",
    "selbstmord",
    "umbringen",
    "mich umbring",
    "umbring",
    "bring mich um",
    "bringe mich um",
    "bringen mich um",
    "bringt mich um",
    "tu mir was an",
    "tue mir was an",
    "tu mir etwas an",
    "tue mir etwas an",
    "mir was antun",
    "mir etwas antun",
    "nicht mehr leben",
    "will sterben",
    "töten",
    "toeten",
    "erschieß",
    "erschiess",
    "umlegen",
    "abstechen",
    "lebensgefahr",
    "in gefahr",
    "bedroht",
    "bedrohen",
    "verfolgt mich",
    "schlagen mich",
    "zusammengeschlagen",
    "waffe",
    "messer",
    "bombe",
    "anschlag",
    "ritzen",
    "suicide",
    "kill myself",
    "killing myself",
    "end my life",
    "want to die",
    "end it all",
    "kill ",
    "in danger",
    "threatened",
    "threatening me",
    "weapon",
    "knife",
    "gun",
    "bomb",
    "attack",
    "hurt myself",
    "beat me",
    "beaten up",
)
_PATTERN = re.compile(r"(?:^|\W)(?:" + "|".join(re.escape(s) for s in _STEMS) + ")", re.IGNORECASE)


def normalise(text: str) -> str:
    """Case-fold and compose Unicode so look-alike forms compare equal."""
    return unicodedata.normalize("NFKC", text).casefold()


class Danger(enum.StrEnum):
    """What kind of danger a message signals (decides the crisis reply and the staff mark)."""

    SUICIDE = "suicide"  # wish to die, suicidal intent
    SELF_HARM = "self_harm"  # hurting oneself
    THREAT = "threat"  # threat or violence by others (incl. being found, followed, waited for)
    OTHERS = "others"  # danger to others (attack plans, weapons with intent)
    MEDICAL = "medical"  # acute medical danger (overdose)


def detect(text: str) -> Danger | None:
    """The danger a message signals, or None.

    Interface stub (issue 11 replaces the matching): the old stem list, every hit
    reported as a threat.
    """
    if not text:
        return None
    return Danger.THREAT if _PATTERN.search(normalise(text) + " ") is not None else None


def is_crisis(text: str) -> bool:
    """Whether a message signals danger to life or violence."""
    return detect(text) is not None
