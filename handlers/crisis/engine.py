"""Phrase patterns over lemmas and stems, with negation, idioms and context.

How a message is read:

1. ``normalise`` (NFKC, case-fold), then split into words; punctuation only marks
   clause and sentence ends.
2. For each language whose script occurs in the message, every word is mapped
   (cached, bounded) to the lexicon *atoms* it satisfies: a lemma/stem key, an
   exact word, or a word prefix (for compounds: "Selbstmordgedanken").
3. A cheap pre-filter: no atom of any danger phrase in the message -> next language.
4. Phrase patterns: terms in order, each within ``gap`` words of the previous one
   (or in any order inside a window). A match is dropped when
   - a negation word stands in its clause, up to ``before`` words ahead or between
     its terms ("ich will NICHT sterben"), unless the phrase itself contains it
     ("nicht mehr leben");
   - an ``unless`` word stands in the same sentence (hunting, kitchen, history lesson);
   - it overlaps an idiom ("ich könnte ihn umbringen", "killing it").
5. Of overlapping matches the one with more terms wins (it says more); of the rest
   the most urgent danger by ``URGENCY``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from handlers.crisis.analysis import SCRIPTS, analyser, fold, normalise, script_of


class Danger(enum.StrEnum):
    """What kind of danger a message signals (decides the crisis reply and the staff mark)."""

    SUICIDE = "suicide"  # wish to die, suicidal intent
    SELF_HARM = "self_harm"  # hurting oneself
    THREAT = "threat"  # threat or violence by others (incl. being found, followed, waited for)
    OTHERS = "others"  # danger to others (attack plans, weapons with intent)
    MEDICAL = "medical"  # acute medical danger (overdose)


#: Most urgent first, when one message signals several dangers. An overdose kills
#: within the hour and needs 112 at once; then the writer's own life (suicide), then
#: violence against the writer (110, safety now), then danger to others (110);
#: self-harm last because the suicide reply's numbers cover it too.
URGENCY: tuple[Danger, ...] = (
    Danger.MEDICAL,
    Danger.SUICIDE,
    Danger.THREAT,
    Danger.OTHERS,
    Danger.SELF_HARM,
)
_RANK = {d: i for i, d in enumerate(URGENCY)}

LEXICON_DIR = Path(__file__).parent / "lexicon"
#: Token -> atoms cache size per language. Bounded: strangers' messages must not grow
#: memory; 50,000 distinct words cover far more than a day of real traffic.
CACHE_SIZE = 50_000

_TOKEN = re.compile(r"\w+(?:['\-]\w+)*|[.!?;:,\n]")
_SENTENCE_END = frozenset(".!?\n")
_CLAUSE_END = frozenset(",;:")
_EMPTY: frozenset[int] = frozenset()
_IDIOM = "idiom"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One lexicon entry, compiled: atom sets per term."""

    danger: Danger | None  # None: an idiom that cancels what it overlaps
    terms: tuple[frozenset[int], ...]
    gap: int
    any_order: bool
    negatable: bool
    before: int
    after: int
    unless: frozenset[int]
    phrase: str


@dataclass(slots=True)
class Lexicon:
    """One language's compiled lexicon."""

    language: str
    keys: dict[str, int] = field(default_factory=dict)
    exact: dict[str, int] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)
    prefix_lengths: tuple[int, ...] = ()
    negation: frozenset[int] = _EMPTY
    boundaries: frozenset[int] = _EMPTY
    patterns: tuple[Pattern, ...] = ()
    #: atom -> patterns whose first term holds it (the pre-filter's index)
    index: dict[int, tuple[int, ...]] = field(default_factory=dict)
    _next: int = 0

    def atom(self, word: str) -> int:
        """The atom id of a lexicon word (``w`` lemma/stem, ``w*`` prefix, ``=w`` exact)."""
        norm = normalise(word)
        if norm.endswith("*"):
            table, value = self.prefixes, fold(norm[:-1], self.language)
        elif norm.startswith("="):
            table, value = self.exact, fold(norm[1:], self.language)
        else:
            keys = analyser(self.language)(norm)
            # A lexicon word written as a lemma stays itself ("міст" is also a form
            # of "місто"); otherwise its first reading.
            table, value = self.keys, norm if norm in keys else keys[0]
        if not value:
            raise ValueError(f"{self.language}: empty lexicon word {word!r}")
        if value not in table:
            table[value] = self._next
            self._next += 1
        return table[value]

    def words(self, spec: str) -> frozenset[int]:
        """Atoms of space- or ``|``-separated alternatives."""
        return frozenset(self.atom(w) for w in spec.replace("|", " ").split())

    def token_atoms(self, token: str) -> frozenset[int]:
        """Every atom a message token satisfies (uncached; see ``_atoms``)."""
        found = {self.keys[k] for k in analyser(self.language)(token) if k in self.keys}
        surface = fold(token, self.language)
        if surface in self.exact:
            found.add(self.exact[surface])
        for n in self.prefix_lengths:
            if n > len(surface):
                break
            hit = self.prefixes.get(surface[:n])
            if hit is not None:
                found.add(hit)
        return frozenset(found) if found else _EMPTY


def _compile(language: str, data: dict[str, object]) -> Lexicon:
    lex = Lexicon(language)

    def entries(name: str) -> list[dict[str, object]]:
        raw = data.get(name) or []
        if not isinstance(raw, list):
            raise ValueError(f"{language}: {name} must be a list")
        for entry in raw:
            if not isinstance(entry, dict) or not str(entry.get("why", "")).strip():
                raise ValueError(f"{language}: every {name} entry needs a 'why': {entry!r}")
        return raw

    lex.negation = frozenset().union(*(lex.words(str(e["words"])) for e in entries("negation")))
    lex.boundaries = frozenset().union(
        *(lex.words(str(e["words"])) for e in entries("boundaries"))
    )
    patterns = []
    for entry in entries("patterns"):
        kind = str(entry["danger"])
        phrase = str(entry["phrase"])
        terms = tuple(lex.words(term) for term in phrase.split())
        if not terms:
            raise ValueError(f"{language}: empty phrase in {entry!r}")
        patterns.append(
            Pattern(
                danger=None if kind == _IDIOM else Danger(kind),
                terms=terms,
                gap=int(str(entry.get("gap", 3))),
                any_order=entry.get("order") == "any",
                negatable=bool(entry.get("negatable", True)),
                before=int(str(entry.get("before", 3))),
                # Verb-final languages (Turkish) negate after the phrase.
                after=int(str(entry.get("after", data.get("after", 0)))),
                unless=lex.words(str(entry.get("unless", ""))),
                phrase=phrase,
            )
        )
    lex.patterns = tuple(patterns)
    index: dict[int, list[int]] = {}
    for i, p in enumerate(lex.patterns):
        for a in p.terms[0]:
            index.setdefault(a, []).append(i)
        if p.any_order:  # any term can come first
            for term in p.terms[1:]:
                for a in term:
                    index.setdefault(a, []).append(i)
    lex.index = {a: tuple(dict.fromkeys(ps)) for a, ps in index.items()}
    lex.prefix_lengths = tuple(sorted({len(p) for p in lex.prefixes}))
    return lex


@lru_cache(maxsize=None)
def lexicons() -> dict[str, Lexicon]:
    """All compiled lexicons, loaded once per process."""
    out = {}
    for language in SCRIPTS:
        with (LEXICON_DIR / f"{language}.yaml").open(encoding="utf-8") as f:
            out[language] = _compile(language, yaml.safe_load(f))
    return out


@lru_cache(maxsize=CACHE_SIZE)
def _atoms(language: str, token: str) -> frozenset[int]:
    return lexicons()[language].token_atoms(token)


@dataclass(frozen=True, slots=True)
class Match:
    """Where one pattern matched (word positions), for overlap resolution."""

    pattern: Pattern
    positions: tuple[int, ...]


def _ordered(p: Pattern, atoms: list[frozenset[int]], start: int) -> tuple[int, ...] | None:
    positions = [start]
    for term in p.terms[1:]:
        last = positions[-1]
        nxt = next(
            (j for j in range(last + 1, min(len(atoms), last + p.gap + 2)) if atoms[j] & term),
            None,
        )
        if nxt is None:
            return None
        positions.append(nxt)
    return tuple(positions)


def _unordered(p: Pattern, atoms: list[frozenset[int]], anchor: int) -> tuple[int, ...] | None:
    window = p.gap + len(p.terms)
    lo, hi = max(0, anchor - window), min(len(atoms), anchor + window + 1)
    used: list[int] = []
    for term in p.terms:
        pos = next(
            (
                j
                for j in sorted(range(lo, hi), key=lambda j: abs(j - anchor))
                if j not in used and atoms[j] & term
            ),
            None,
        )
        if pos is None:
            return None
        used.append(pos)
    return tuple(sorted(used))


def _matches(
    lex: Lexicon,
    atoms: list[frozenset[int]],
    negated: list[bool],
    clause: list[int],
    sentence: list[int],
) -> Iterator[Match]:
    present = frozenset().union(*atoms)
    candidates = sorted({i for a in present for i in lex.index.get(a, ())})
    for i in candidates:
        p = lex.patterns[i]
        if not all(term & present for term in p.terms):
            continue
        firsts = p.terms if p.any_order else p.terms[:1]
        starts = [j for j, a in enumerate(atoms) if any(a & t for t in firsts)]
        for start in starts:
            found = (_unordered if p.any_order else _ordered)(p, atoms, start)
            if found is None:
                continue
            if p.unless and any(
                atoms[j] & p.unless
                for j in range(len(atoms))
                if sentence[j] in {sentence[k] for k in found}
            ):
                continue
            if p.negatable and p.danger is not None:
                clauses = {clause[k] for k in found}
                scope = range(max(0, found[0] - p.before), min(len(atoms), found[-1] + p.after + 1))
                if any(j not in found and clause[j] in clauses and negated[j] for j in scope):
                    continue
            yield Match(p, found)
            break  # one match per pattern is enough to decide


def _scan(
    words: list[str], sentence: list[int], clause: list[int]
) -> list[Match]:
    """Every pattern match of every language whose script occurs in the words."""
    scripts = [script_of(w) for w in words]
    present = set(scripts)
    lexes = lexicons()
    atoms = {
        language: [_atoms(language, w) if s == script else _EMPTY for w, s in zip(words, scripts)]
        for language, script in SCRIPTS.items()
        if script in present
    }
    # Negation and clause-breaking words count whichever language they come from:
    # people mix languages, and a German "nicht" must not be ignored because the
    # danger word was English ("ich bin nicht suicidal").
    negated = [False] * len(words)
    shift = [0] * len(words)
    for language, row in atoms.items():
        lex = lexes[language]
        for j, a in enumerate(row):
            if a & lex.negation:
                negated[j] = True
            if a & lex.boundaries:
                shift[j] = 1
    if any(shift):
        acc = 0
        local = []
        for j in range(len(words)):
            acc += shift[j]
            local.append(clause[j] + acc)
        clause = local
    matches: list[Match] = []
    for language, row in atoms.items():
        if any(row):
            matches.extend(_matches(lexes[language], row, negated, clause, sentence))
    return matches


def detect(text: str) -> Danger | None:
    """The most urgent danger a message signals (see ``URGENCY``), or None."""
    if not text:
        return None
    words: list[str] = []
    sentence: list[int] = []
    clause: list[int] = []
    s = c = 0
    for m in _TOKEN.finditer(normalise(text)):
        t = m.group()
        if t in _SENTENCE_END:
            s += 1
            c += 1
        elif t in _CLAUSE_END:
            c += 1
        else:
            words.append(t)
            sentence.append(s)
            clause.append(c)
    if not words:
        return None
    return _decide(_scan(words, sentence, clause))


def _decide(matches: list[Match]) -> Danger | None:
    idioms = [set(m.positions) for m in matches if m.pattern.danger is None]
    dangers = [
        m
        for m in matches
        if m.pattern.danger is not None and not any(i & set(m.positions) for i in idioms)
    ]
    best: Danger | None = None
    for m in dangers:
        span = set(m.positions)
        if any(
            len(o.pattern.terms) > len(m.pattern.terms) and span & set(o.positions)
            for o in dangers
        ):
            continue  # a longer phrase over the same words says more
        danger = m.pattern.danger
        assert danger is not None
        if best is None or _RANK[danger] < _RANK[best]:
            best = danger
    return best


def is_crisis(text: str) -> bool:
    """Whether a message signals danger to life or violence."""
    return detect(text) is not None


def explain(text: str) -> list[tuple[str, str]]:
    """(category or "idiom", phrase) of every pattern that matched: for lexicon work."""
    words = [m.group() for m in _TOKEN.finditer(normalise(text))]
    words = [t for t in words if t not in _SENTENCE_END and t not in _CLAUSE_END]
    zeros = [0] * len(words)
    return [(str(m.pattern.danger or _IDIOM), m.pattern.phrase) for m in _scan(words, zeros, zeros)]
