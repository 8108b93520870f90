"""Free text -> intake answers: what a person's own words already tell us.

"Ich will aus der rechten Szene in MV raus" answers who writes, which scene and which
state; the intake then asks only what is missing, and echoes what it understood so a
misreading costs one tap. Pure functions, no storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from config.i18n import Translator
from config.vocabulary import Audience
from handlers.options import Option, fold, hits, options_for, pick, tokens

PLACES_FILE = Path(__file__).resolve().parent.parent / "config" / "places.tsv"

#: Answer keys in the order the intake asks them.
FACTS = ("audience", "incident", "scene", "state", "district", "prison", "language")
#: Options that are only answers to their own question, never read out of other text.
_ONLY_WHEN_ASKED = frozenset({"other", "none", "skip"})
#: Audience words, strongest first: someone who names their son or their job writes
#: about another person even if they also say "ich" or "raus".
_AUDIENCE_ORDER = (
    Audience.PROFESSIONAL,
    Audience.RELATIVE,
    Audience.AFFECTED,
    Audience.SELF,
)
#: "ich" alone says nothing about who writes ("Ich spreche Russisch").
_WEAK_SELF = frozenset({"ich", "selbst", "ich selbst", "myself"})
#: What was done to someone ("beleidigt", "angespuckt"): the writer is affected unless
#: they also say they want out - then they may be the one who did it.
_WEAK_AFFECTED = frozenset(
    {"beleidigt", "beschimpft", "angespuckt", "bespuckt", "angepoebelt", "attackiert"}
    | {"insulted", "spat at", "harassed"}
)
#: Words that say a place follows ("in Rostock", "aus Essen"): in free text a town name
#: counts only after one of them, since many are also words ("Essen", "Hof", "Leer").
_PLACE_CUES = frozenset({"in", "aus", "bei", "nahe", "near", "from", "um", "im", "raum", "nach"})
#: Words that say "in prison" (a bare "ja" does not, outside the prison question).
_PRISON_WORDS = ("haft", "knast", "gefaengnis", "jva", "prison", "jail", "inhaftiert")
#: Two-letter state codes count in free text only as written in capitals ("MV", "NRW"):
#: "by", "be", "he" are English words.
_CODE = re.compile(r"\b(?:NRW|[A-Z]{2})\b")


@dataclass(frozen=True, slots=True)
class Place:
    """A town: its name, state code and (in MV) district key."""

    name: str
    state: str
    district: str | None = None


@cache
def places() -> dict[str, Place]:
    """Folded town name -> place (read once per process)."""
    out: dict[str, Place] = {}
    for line in PLACES_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, state, *rest = line.split("\t")
        out[fold(name)] = Place(name, state, rest[0] if rest and rest[0] else None)
    return out


def places_in(text: str, *, cue: bool) -> list[Place]:
    """The towns a text names (a longer name wins: "Frankfurt (Oder)"); with ``cue`` only
    after "in"/"aus"/"bei"/..."""
    words = tokens(text)
    known = places()
    found: list[Place] = []
    for i in range(len(words)):
        if cue and (i == 0 or words[i - 1] not in _PLACE_CUES):
            continue
        for n in (4, 3, 2, 1):
            name = " ".join(words[i : i + n])
            if len(words[i : i + n]) == n and name in known:
                found.append(known[name])
                break
    return found


def audience_of(text: str, t: Translator) -> str | None:
    """Who writes, by the strongest kind of word in the text (not negated)."""
    found = [
        h
        for h in hits(text, options_for("audience", t))
        if not h.negated and h.word not in _WEAK_SELF
    ]
    named = {h.option.value for h in found}
    affected = {h.word for h in found if h.option.value == Audience.AFFECTED}
    if Audience.SELF in named and affected <= _WEAK_AFFECTED:
        named.discard(Audience.AFFECTED)  # "ich habe ihn beleidigt, ich will raus"
    return next((a.value for a in _AUDIENCE_ORDER if a.value in named), None)


def state_of(text: str, t: Translator, *, cue: bool = True) -> tuple[str, str | None] | None:
    """(state, MV district or None) from a town, a state's name or its capitalised code;
    None when the text names none or several ("Hessen oder Bremen")."""
    towns = places_in(text, cue=cue)
    opts = [o for o in options_for("state", t) if o.value not in _ONLY_WHEN_ASKED]
    named = pick(text, opts)
    codes = {"NRW": "NW", **{o.value: o.value for o in opts}}
    states = {p.state for p in towns} | {codes[c] for c in _CODE.findall(text) if c in codes}
    if named is not None:
        states.add(named.value)
    elif any(not h.negated for h in hits(text, opts)):
        return None  # several states named ("Hessen oder Bremen")
    if len(states) != 1:
        return None
    state = states.pop()
    districts = {p.district for p in towns if p.district}
    return state, districts.pop() if len(districts) == 1 else None


def understand(text: str, t: Translator, known: dict[str, object] | None = None) -> dict[str, str]:
    """Every answer a free text gives that ``known`` does not hold yet.

    Only facts on the person's path are taken: a prison answer only from someone
    who writes about themselves, an incident only from someone affected, a district
    only in MV.
    """
    known = known or {}
    facts: dict[str, str] = {}

    def put(key: str, value: str | None) -> None:
        if value is not None and key not in known and key not in facts:
            facts[key] = value

    def one(question: str) -> str | None:
        opts = [o for o in options_for(question, t) if o.value not in _ONLY_WHEN_ASKED]
        got = pick(text, opts)
        return got.value if got else None

    put("audience", audience_of(text, t))
    audience = known.get("audience", facts.get("audience"))
    put("scene", one("scene"))
    if audience == Audience.AFFECTED:
        put("incident", one("incident"))
    region = state_of(text, t)
    if region is not None:
        put("state", region[0])
        if region[0] == "MV" and region[1]:
            put("district", region[1])
    if audience == Audience.SELF:
        put("prison", _prison(text))
    put("language", _language(text, t))
    return facts


def _prison(text: str) -> str | None:
    """In prison only from a prison word ("nicht in Haft" is a no); a bare "ja" is not."""
    named = hits(text, [Option("yes", "", _PRISON_WORDS)])
    if not named:
        return None
    return "no" if all(h.negated for h in named) else "yes"


def _language(text: str, t: Translator) -> str | None:
    """A language named as a whole word ("auf Russisch", "I speak Arabic"), never a code
    or a word start ("deutsche" is no language answer)."""
    words = set(tokens(text))
    opts = [o for o in options_for("language", t) if o.value not in _ONLY_WHEN_ASKED]
    values = {
        o.value
        for o in opts
        if any(w in words for w in (fold(o.label), *o.synonyms) if len(w) > 3)
        and not any(h.negated for h in hits(text, [o]))
    }
    return values.pop() if len(values) == 1 else None


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def pack(facts: dict[str, str], t: Translator) -> str:
    """Facts as one short code (a character per question: 0 = none, else option index + 1).

    Before consent nothing may be stored, so what a first message told us travels in
    the consent button's data instead (at most 7 characters, inside Telegram's 64 bytes)
    and is used only if the person agrees.
    """
    out = []
    for key in FACTS:
        values = [o.value for o in options_for(key, t)]
        value = facts.get(key)
        i = values.index(value) + 1 if value in values else 0
        out.append(_DIGITS[i] if i < len(_DIGITS) else "0")
    return "".join(out).rstrip("0")


def unpack(code: str, t: Translator) -> dict[str, str]:
    """The facts of :func:`pack`; anything malformed is dropped (button data is input)."""
    facts: dict[str, str] = {}
    for key, char in zip(FACTS, code[: len(FACTS)], strict=False):
        values = [o.value for o in options_for(key, t)]
        i = _DIGITS.find(char) - 1
        if 0 <= i < len(values) and values[i] not in _ONLY_WHEN_ASKED:
            facts[key] = values[i]
    return facts
