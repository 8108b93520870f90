"""Answer options of the intake questions and how typed answers are understood."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

from config.i18n import Translator
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES
from handlers.synonyms import SYNONYMS, SYNONYMS_MORE

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "’": "'", "-": " ", "_": " "})
_PUNCT = re.compile(r"[^\w' ]+")


def fold(text: str) -> str:
    """Normalise for matching: NFKC, case-fold, umlauts spelled out, punctuation dropped."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    return " ".join(_PUNCT.sub(" ", text).split())


@dataclass(frozen=True, slots=True)
class Option:
    """One answer: ``value`` goes into the button data and the profile."""

    value: str
    label: str
    synonyms: tuple[str, ...] = ()


def options_for(question: str, t: Translator) -> list[Option]:
    """The options of a question, labelled in the translator's language."""
    syn = SYNONYMS.get(question, {})
    if question == "state":
        values = [*STATES, "none"]
        return [
            Option(v, STATES[v] if v in STATES else t("state.none"), (v.lower(), *syn.get(v, ())))
            for v in values
        ]
    if question == "district":
        return [
            *(Option(k, name, (k.lower(), *syn.get(k, ()))) for k, name in MV_DISTRICTS.items()),
            Option("skip", t("district.skip"), syn["skip"]),
        ]
    if question == "language":
        return [
            *(Option(k, name, (k, *syn.get(k, ()))) for k, name in LANGUAGES.items()),
            Option("other", t("language.other"), syn["other"]),
        ]
    more = SYNONYMS_MORE.get(question, {})
    return [Option(v, t(f"{question}.{v}"), (*words, *more.get(v, ()))) for v, words in syn.items()]


#: Words that negate the option named right after them ("nicht rechts", "not in prison").
_NEGATORS = frozenset(
    {"nicht", "kein", "keine", "keinen", "keiner", "keinem", "nie", "niemals", "not", "no"}
    | {"never", "isn't", "aren't", "wasn't", "don't", "nor"}
)
#: "nicht mehr rechts" / "no longer": still about that scene, not a negation of it.
_STILL = frozenset({"mehr", "longer", "anymore", "more"})
#: "nicht X, sondern Y": the option after the contrast word is meant.
_CONTRAST = frozenset({"sondern", "but", "instead", "stattdessen", "eher", "rather"})
#: "X oder Y" names two options: ambiguous, ask again.
_EITHER = frozenset({"oder", "or", "bzw", "beziehungsweise", "und", "and", "entweder", "either"})
_CLAUSE = re.compile(r"[,;.!?:()]+")
_NEG_WINDOW = 3


@dataclass(frozen=True, slots=True)
class Hit:
    """One option named in a text: where (token positions) and by how long a word."""

    option: Option
    start: int
    end: int
    length: int
    negated: bool
    word: str = ""


def tokens(text: str) -> list[str]:
    """Folded words; ``|`` marks a clause border (comma, full stop) that negation never
    crosses ("Nein, ich bin im Gefängnis" negates nothing)."""
    clauses = _CLAUSE.split(unicodedata.normalize("NFKC", text))
    return " | ".join(f for f in (fold(c) for c in clauses) if f).split()


def _negated(words: list[str], start: int) -> bool:
    for i in range(start - 1, max(-1, start - 1 - _NEG_WINDOW), -1):
        if words[i] == "|" or words[i] in _CONTRAST:
            return False
        if words[i] in _NEGATORS:
            return not (i + 1 < len(words) and words[i + 1] in _STILL)
    return False


def _starts(token: str, word: str) -> bool:
    """A word start: a short word only with a short ending ("sons", "nazis"), so "son"
    is not read in "sondern" nor "haft" in "Haftbefehl"."""
    if len(word) < 5:
        return token.startswith(word) and len(token) <= len(word) + 2
    return token.startswith(word)


def hits(text: str, options: list[Option], *, min_len: int = 3) -> list[Hit]:
    """Every option a text names (a label, synonym or word start, at a word border).

    A hit inside a longer hit of another option is dropped ("Sachsen-Anhalt" is not
    "Sachsen"); each hit knows whether a negation stands right before it.
    """
    words = tokens(text)
    found: list[Hit] = []
    for opt in options:
        for word in {fold(opt.label), *opt.synonyms}:
            parts = word.split()
            if not parts or len(word) < min_len:
                continue
            n = len(parts)
            for i in range(len(words) - n + 1):
                window = words[i : i + n]
                if window[:-1] == parts[:-1] and _starts(window[-1], parts[-1]):
                    found.append(Hit(opt, i, i + n, len(word), _negated(words, i), word))
    return [
        h
        for h in found
        if not any(
            o.option is not h.option
            and o.length > h.length
            and o.start <= h.start
            and h.end <= o.end
            for o in found
        )
    ]


def _yes_no(options: list[Option]) -> bool:
    return {o.value for o in options} == {"yes", "no"}


def pick(text: str, options: list[Option], *, min_len: int = 3) -> Option | None:
    """The one option a free text means, or None if it names none or several.

    Negated options do not count ("nicht rechts"; for a yes/no question "nicht im
    Gefängnis" is a no); after "sondern"/"but" only what follows counts; two options
    joined by "oder"/"or" are ambiguous; otherwise the longest word wins.
    """
    words = tokens(text)
    found = hits(text, options, min_len=min_len)
    if _yes_no(options):
        no = next(o for o in options if o.value == "no")
        found = [
            replace(h, option=no, negated=False) if h.negated and h.option.value == "yes" else h
            for h in found
        ]
    found = [h for h in found if not h.negated]
    contrast = [i for i, w in enumerate(words) if w in _CONTRAST]
    if contrast and any(h.start > contrast[-1] for h in found):
        found = [h for h in found if h.start > contrast[-1]]
    if not found:
        return None
    named = {id(h.option) for h in found}
    if len(named) > 1:
        for a in found:
            for b in found:
                if (
                    a.option is not b.option
                    and a.end <= b.start
                    and any(w in _EITHER for w in words[a.end : b.start])
                ):
                    return None
    best = max(h.length for h in found)
    top = {id(h.option): h.option for h in found if h.length == best}
    return next(iter(top.values())) if len(top) == 1 else None


def exact(text: str, options: list[Option]) -> Option | None:
    """A whole answer: the option's number, label, value or a synonym (no interpretation)."""
    n = fold(text)
    if not n:
        return None
    if n.isdigit():
        i = int(n) - 1
        return options[i] if 0 <= i < len(options) else None
    for opt in options:
        if n == fold(opt.label) or n == opt.value.casefold() or n in opt.synonyms:
            return opt
    return None


def match(text: str, options: list[Option], *, partial: bool = True) -> Option | None:
    """Understand a typed answer: its number, its label, a synonym, or a word in it.

    Ambiguous input (two options fit equally well, or "X oder Y") returns None, and so
    does a negated option ("nicht rechts"). With ``partial`` False only the whole answer
    counts (number, label or synonym), never a word in it.
    """
    whole = exact(text, options)
    if whole is not None or not partial:
        return whole
    return pick(text, options)
