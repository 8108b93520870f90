"""Phrase patterns over lemmas and stems, with negation, idioms and context.

How a message is read:

1. ``normalise`` (NFKC, case-fold), then split into words; punctuation only marks
   clause and sentence ends.
2. Every word is mapped (cached, bounded) to the lexicon *atoms* it satisfies in
   the languages written in its script: a lemma/stem key, an exact word, or a word
   prefix (compounds: "Selbstmordgedanken"). All languages share one atom space.
3. A cheap pre-filter: patterns are indexed by their most specific term; a message
   holding no such atom stops here (most ordinary messages).
4. Phrase patterns: terms in order, each within ``gap`` words of the previous one
   (or in any order inside a window). A match is dropped when
   - a negation word stands in its clause, up to ``before`` words ahead or between
     its terms ("ich will NICHT sterben"), unless the phrase itself contains it
     ("nicht mehr leben");
   - an ``unless`` word stands in the same sentence (hunting, kitchen, history lesson),
     or an ``unless_clause`` word in the same clause ("mich" next to "umbringen");
   - it overlaps an idiom ("ich könnte ihn umbringen", "killing it"); an idiom never
     reaches across a sentence end;
   - it is a danger to others in a sentence that laughs ("lol", "хаха", "هههه", 😂).
5. Of overlapping matches the one with more terms wins (it says more); of the rest
   the most urgent danger by ``URGENCY``.
6. When nothing was found and the text spells words out letter by letter
   ("S T E R B E N"), it is read once more with those letters joined.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import yaml

from handlers.crisis.analysis import MORPH, SCRIPTS, analyser, fold, forms, normalise, script_of


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
#: Token -> atoms cache size. Bounded: strangers' messages must not grow
#: memory; 50,000 distinct words cover far more than a day of real traffic.
CACHE_SIZE = 50_000

_WORD = re.compile(r"\w+(?:['\-]\w+)*")
_SENTENCES = re.compile(r"[.!?\n؟]")
_CLAUSES = re.compile(r"[,;:،؛]")
_EMPTY: frozenset[int] = frozenset()
#: A hedge ("not sure", "can't promise") lifts negations up to this many words after it.
HEDGE_REACH = 10
#: How near the negation must stand to a hedge word to make it a hedge.
HEDGE_NEGATION = 2
_IDIOM = "idiom"
_AR_CONJUNCTIONS = frozenset("وف")
#: Arabic article and the prepositions written onto it ("الحبوب", "بالحبوب", "للانتحار").
_AR_ARTICLES = ("بال", "كال", "ال", "لل")
#: Runs of four or more single letters with spaces between them ("I C H   W I L L
#: S T E R B E N"): read a second time with the letters joined, a wider gap
#: (2+ spaces) keeping the words apart. Only when the first reading finds nothing,
#: so real one-letter words ("и я в опасности") are never lost.
_SPACED = re.compile(r"(?<!\w)\w(?!\w)(?:[ \t\u00a0]+\w(?!\w)){3,}")
_WIDE = re.compile(r"[ \t\u00a0]{2,}")
_GAP = re.compile(r"[ \t\u00a0]")
#: Combining marks left after NFKC: Arabic vowel signs ("يُشنقون"), Cyrillic stress
#: marks ("убью\u0301"). Python's \w does not match them, so they would split a word
#: in two; they are dropped before the text is split into words.
_MARKS = re.compile("[\u0300-\u036f\u0483-\u0487\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
#: Laughing emoji: like a laughter word, they mark a sentence as a joke.
_LAUGH_EMOJI = re.compile("[\U0001f602\U0001f923\U0001f606\U0001f639\U0001f605\U0001f61d]")


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
    unless_clause: frozenset[int]
    phrase: str
    #: Only when a hedge stands before it in the sentence ("I can't promise I won't ...").
    hedged: bool
    #: All terms in one sentence (co-occurrence entries with a wide ``gap``).
    sentence: bool
    #: The term that indexes the pattern: the one whose shortest word is longest,
    #: so pronouns and particles ("ich", "me", "=beni") never make a candidate alone.
    anchor: frozenset[int]
    #: Atoms a match can start from: the first term, or any term when unordered.
    firsts: frozenset[int]


@dataclass(slots=True)
class Lexicon:
    """One language's compiled lexicon."""

    language: str
    ids: Iterator[int]  # shared by all languages: one atom space, one index
    keys: dict[str, int] = field(default_factory=dict)
    #: Russian/Ukrainian: folded word form -> lemma keys (precomputed lexemes)
    forms: dict[str, set[str]] = field(default_factory=dict)
    exact: dict[str, int] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)
    prefix_lengths: tuple[int, ...] = ()
    negation: frozenset[int] = _EMPTY
    boundaries: frozenset[int] = _EMPTY
    laughter: frozenset[int] = _EMPTY
    hedges: frozenset[int] = _EMPTY  # negated before them: "not sure"
    #: Words that negate a hedge but are no negation elsewhere: "can't" in "can't promise"
    #: ("I can't stop thinking about killing myself" must stay a danger).
    hedge_negation: frozenset[int] = _EMPTY
    patterns: tuple[Pattern, ...] = ()

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
            if self.language in MORPH:
                for form in forms(self.language, value, norm):
                    self.forms.setdefault(form, set()).add(value)
        if not value:
            raise ValueError(f"{self.language}: empty lexicon word {word!r}")
        if value not in table:
            table[value] = next(self.ids)
        return table[value]

    def words(self, spec: str) -> frozenset[int]:
        """Atoms of space- or ``|``-separated alternatives."""
        return frozenset(self.atom(w) for w in spec.replace("|", " ").split())

    def token_atoms(self, token: str) -> frozenset[int]:
        """Every atom a message token satisfies (uncached; see ``_atoms``)."""
        surface = fold(token, self.language)
        if self.language in MORPH:
            lemmas: Iterable[str] = self.forms.get(surface, ())
        else:
            lemmas = analyser(self.language)(token)
        found = {self.keys[k] for k in lemmas if k in self.keys}
        surfaces = [surface]
        if self.language == "ar" and len(surface) > 3 and surface[0] in _AR_CONJUNCTIONS:
            # "and"/"so" are written onto the next word ("وسأطعنه"); Snowball keeps
            # them on verbs, so the word is also looked up without them.
            surfaces.append(surface[1:])
        if self.language == "ar":
            # The article (and a preposition on it) is part of the written word:
            # "الكثير" must satisfy "كثير*" as "كثير" does.
            for form in list(surfaces):
                for article in _AR_ARTICLES:
                    if form.startswith(article) and len(form) - len(article) >= 3:
                        surfaces.append(form[len(article) :])
                        break
        for form in surfaces:
            if form in self.exact:
                found.add(self.exact[form])
            for n in self.prefix_lengths:
                if n > len(form):
                    break
                hit = self.prefixes.get(form[:n])
                if hit is not None:
                    found.add(hit)
        return frozenset(found) if found else _EMPTY


def _compile(language: str, data: dict[str, object], ids: Iterator[int]) -> Lexicon:
    lex = Lexicon(language, ids)

    def entries(name: str) -> list[dict[str, object]]:
        raw = data.get(name) or []
        if not isinstance(raw, list):
            raise ValueError(f"{language}: {name} must be a list")
        for entry in raw:
            if not isinstance(entry, dict) or not str(entry.get("why", "")).strip():
                raise ValueError(f"{language}: every {name} entry needs a 'why': {entry!r}")
        return raw

    lex.negation = frozenset().union(*(lex.words(str(e["words"])) for e in entries("negation")))
    lex.boundaries = frozenset().union(*(lex.words(str(e["words"])) for e in entries("boundaries")))
    lex.laughter = frozenset().union(*(lex.words(str(e["words"])) for e in entries("laughter")))
    lex.hedges = frozenset().union(*(lex.words(str(e["words"])) for e in entries("hedges")))
    lex.hedge_negation = frozenset().union(
        *(lex.words(str(e.get("negated_by", ""))) for e in entries("hedges"))
    )
    patterns = []
    for entry in entries("patterns"):
        kind = str(entry["danger"])
        phrase = str(entry["phrase"])
        sources = phrase.split()
        terms = tuple(lex.words(term) for term in sources)
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
                unless_clause=lex.words(str(entry.get("unless_clause", ""))),
                phrase=phrase,
                hedged=bool(entry.get("hedged", False)),
                sentence=entry.get("scope") == "sentence",
                firsts=frozenset().union(*terms) if entry.get("order") == "any" else terms[0],
                anchor=terms[
                    max(
                        range(len(sources)),
                        key=lambda i: min(len(w.strip("=*")) for w in sources[i].split("|")),
                    )
                ],
            )
        )
    lex.patterns = tuple(patterns)
    lex.prefix_lengths = tuple(sorted({len(p) for p in lex.prefixes}))
    return lex


@dataclass(frozen=True, slots=True)
class Compiled:
    """All languages' lexicons over one atom space, with the pre-filter's index."""

    lexicons: dict[str, Lexicon]
    by_script: dict[str, tuple[Lexicon, ...]]
    patterns: tuple[Pattern, ...]
    #: atom -> patterns whose anchor term holds it
    index: dict[int, tuple[int, ...]]
    negation: frozenset[int]
    boundaries: frozenset[int]
    laughter: frozenset[int]
    hedges: frozenset[int]
    hedge_negation: frozenset[int]
    starts: frozenset[int]  # every atom in ``index``


@cache
def compiled() -> Compiled:
    """The lexicons, loaded and compiled once per process."""
    ids = itertools.count()
    lexes = {}
    for language in SCRIPTS:
        with (LEXICON_DIR / f"{language}.yaml").open(encoding="utf-8") as f:
            lexes[language] = _compile(language, yaml.safe_load(f), ids)
    patterns = tuple(p for lex in lexes.values() for p in lex.patterns)
    index: dict[int, list[int]] = {}
    for i, p in enumerate(patterns):
        for a in p.anchor:
            index.setdefault(a, []).append(i)
    by_script: dict[str, list[Lexicon]] = {}
    for language, lex in lexes.items():
        by_script.setdefault(SCRIPTS[language], []).append(lex)
    return Compiled(
        lexicons=lexes,
        by_script={k: tuple(v) for k, v in by_script.items()},
        patterns=patterns,
        index={a: tuple(dict.fromkeys(ps)) for a, ps in index.items()},
        negation=frozenset().union(*(lex.negation for lex in lexes.values())),
        boundaries=frozenset().union(*(lex.boundaries for lex in lexes.values())),
        laughter=frozenset().union(*(lex.laughter for lex in lexes.values())),
        hedges=frozenset().union(*(lex.hedges for lex in lexes.values())),
        hedge_negation=frozenset().union(*(lex.hedge_negation for lex in lexes.values())),
        starts=frozenset(index),
    )


def warm() -> None:
    """Load and compile the lexicons and the analysers now (idempotent)."""
    compiled()
    for language in SCRIPTS:
        analyser(language)("")  # the stemmers and analysers are built on first use


def lexicons() -> dict[str, Lexicon]:
    """Every language's compiled lexicon (loads them on first use)."""
    return compiled().lexicons


@lru_cache(maxsize=CACHE_SIZE)
def _atoms(token: str) -> frozenset[int]:
    """Every atom a word satisfies in any language written in its script."""
    found: frozenset[int] = _EMPTY
    for lex in compiled().by_script.get(script_of(token), ()):
        found = found | lex.token_atoms(token)
    return found


@dataclass(frozen=True, slots=True)
class Match:
    """Where one pattern matched (word positions), for overlap resolution."""

    pattern: Pattern
    positions: tuple[int, ...]


Positions = dict[int, list[int]]  # atom -> word positions holding it (ascending)


class _Message:
    """Per-message lookups, each built once (keeps long messages linear-ish)."""

    __slots__ = ("_terms", "clause", "hedged", "negated", "pos", "sentence")

    def __init__(
        self,
        pos: Positions,
        negated: list[bool],
        clause: list[int],
        sentence: list[int],
        hedged: list[int],
    ) -> None:
        self.pos, self.negated, self.clause, self.sentence = pos, negated, clause, sentence
        #: Positions of hedges ("not sure", "can't promise", "weiß nicht, ob"), ascending.
        self.hedged = hedged
        self._terms: dict[frozenset[int], list[int]] = {}

    def hedge_before(self, start: int) -> bool:
        """A hedge stands before ``start`` in its sentence, at most ``HEDGE_REACH`` words
        ahead: what follows is a possibility, not a denial."""
        return any(
            start - HEDGE_REACH <= h < start and self.sentence[h] == self.sentence[start]
            for h in self.hedged
        )

    def where(self, term: frozenset[int]) -> list[int]:
        """Ascending word positions satisfying a term."""
        got = self._terms.get(term)
        if got is None:
            hits = [self.pos[a] for a in term.intersection(self.pos)]
            got = hits[0] if len(hits) == 1 else sorted({j for h in hits for j in h})
            self._terms[term] = got
        return got

    def ordered(self, p: Pattern, start: int) -> tuple[int, ...] | None:
        positions = [start]
        for term in p.terms[1:]:
            where = self.where(term)
            last = positions[-1]
            i = bisect.bisect_right(where, last)
            if i == len(where) or where[i] > last + p.gap + 1:
                return None
            positions.append(where[i])
        return tuple(positions)

    def unordered(self, p: Pattern, anchor: int) -> tuple[int, ...] | None:
        window = p.gap + len(p.terms)
        used: list[int] = []
        for term in p.terms:
            where = self.where(term)
            lo = bisect.bisect_left(where, anchor - window)
            hi = bisect.bisect_right(where, anchor + window)
            near = [j for j in where[lo:hi] if j not in used]
            if not near:
                return None
            used.append(min(near, key=lambda j: abs(j - anchor)))
        return tuple(sorted(used))

    def cancelled(self, p: Pattern, found: tuple[int, ...]) -> bool:
        """An ``unless`` word in the sentence, an ``unless_clause`` word in the clause,
        or a negation in the clause's scope (not after a hedge); a ``hedged`` entry
        without a hedge; a ``scope: sentence`` entry across sentences."""
        if p.sentence and self.sentence[found[0]] != self.sentence[found[-1]]:
            return True
        if p.hedged and not self.hedge_before(found[0]):
            return True
        if p.unless:
            sentences = {self.sentence[k] for k in found}
            if any(self.sentence[j] in sentences for j in self.where(p.unless)):
                return True
        clauses = {self.clause[k] for k in found}
        if p.danger is None and len({self.sentence[k] for k in found}) > 1:
            return True  # an idiom is one expression: "I want to be dead. Busy day" is none
        if p.unless_clause and any(self.clause[j] in clauses for j in self.where(p.unless_clause)):
            return True
        if p.negatable and p.danger is not None:
            if self.hedged and self.hedge_before(found[0]):
                return False  # "I can't promise I won't hurt myself": not a denial
            lo = max(0, found[0] - p.before)
            hi = min(len(self.negated), found[-1] + p.after + 1)
            return any(
                self.negated[j] and j not in found and self.clause[j] in clauses
                for j in range(lo, hi)
            )
        return False


def _matches(msg: _Message) -> Iterator[Match]:
    c = compiled()
    candidates = sorted({i for a in msg.pos for i in c.index.get(a, ())})
    for i in candidates:
        p = c.patterns[i]
        if any(term.isdisjoint(msg.pos) for term in p.terms):
            continue
        # Every start is tried (no cap: a long letter must not hide its last line);
        # bisect keeps each try logarithmic, ~20 ms for a 100 kB message.
        for start in msg.where(p.firsts):
            found = msg.unordered(p, start) if p.any_order else msg.ordered(p, start)
            if found is not None and not msg.cancelled(p, found):
                yield Match(p, found)
                break  # one match per pattern is enough to decide


def _scan(
    words: list[str], sentence: list[int], clause: list[int], joking: set[int]
) -> list[Match]:
    """Every pattern match, all languages at once (one atom space).

    A danger to others in a sentence that laughs ("سأقتلك إذا تأخرت هههه", "I'll kill
    you lol") is a joke between friends and dropped; a danger to the writer is never
    laughed off ("I want to die lol" is how some people say it).
    """
    atoms = [_atoms(w) for w in words]
    c = compiled()
    if not any(a & c.starts for a in atoms):
        return []  # the pre-filter: no word can start any phrase
    # Negation and clause-breaking words count whichever language they come from:
    # people mix languages ("ich bin nicht suicidal").
    negated = [bool(a & c.negation) for a in atoms]
    if any(a & c.boundaries for a in atoms):
        acc = 0
        local = []
        for j, row in enumerate(atoms):
            acc += bool(row & c.boundaries)
            local.append(clause[j] + acc)
        clause = local
    pos: Positions = {}
    for j, row in enumerate(atoms):
        for atom in row:
            pos.setdefault(atom, []).append(j)
    hedged = _hedges(atoms, negated, sentence, c.hedges, c.hedge_negation)
    found = _matches(_Message(pos, negated, clause, sentence, hedged))
    joking = joking | {sentence[j] for j, a in enumerate(atoms) if a & c.laughter}
    if not joking:
        return list(found)
    return [
        m
        for m in found
        if m.pattern.danger is not Danger.OTHERS or sentence[m.positions[0]] not in joking
    ]


def _hedges(
    atoms: list[frozenset[int]],
    negated: list[bool],
    sentence: list[int],
    hedges: frozenset[int],
    hedge_negation: frozenset[int],
) -> list[int]:
    """Positions of hedges: a hedge word ("sure", "promise", "ob", "уверен") with a
    negation at most ``HEDGE_NEGATION`` words before it in its sentence ("not sure",
    "can't promise", "weiß nicht, ob", "не уверен"). "I'm sure I won't" is no hedge.
    (Turkish puts its negation after the hedge and after what it hedges, "... emin
    değilim": not covered.)"""
    if not any(row & hedges for row in atoms):
        return []
    return [
        h
        for h, row in enumerate(atoms)
        if row & hedges
        and any(
            (negated[j] or bool(atoms[j] & hedge_negation)) and sentence[j] == sentence[h]
            for j in range(max(0, h - HEDGE_NEGATION), h)
        )
    ]


Reading = tuple[list[str], list[int], list[int], set[int]]


def _words(text: str) -> Reading:
    """Words of a text with their sentence and clause numbers (splitting in C, not per
    word), and the sentences holding a laughing emoji."""
    words: list[str] = []
    sentence: list[int] = []
    clause: list[int] = []
    joking: set[int] = set()
    c = 0
    for s, part in enumerate(_SENTENCES.split(_MARKS.sub("", normalise(text)))):
        if _LAUGH_EMOJI.search(part):
            joking.add(s)
        for piece in _CLAUSES.split(part):
            found = _WORD.findall(piece)
            words.extend(found)
            sentence.extend([s] * len(found))
            clause.extend([c] * len(found))
            c += 1
    return words, sentence, clause, joking


def _unspaced(text: str) -> str | None:
    """The text with spaced-out letters joined ("S T E R B E N" -> "sterben"), or
    None when it has no such run."""
    if _SPACED.search(text) is None:
        return None
    return _SPACED.sub(
        lambda m: " ".join(_GAP.sub("", piece) for piece in _WIDE.split(m.group())), text
    )


def _matches_of(text: str) -> list[Match]:
    """The matches of a text; a second reading with spaced-out letters joined when the
    first finds no danger."""
    words, sentence, clause, joking = _words(text)
    found = _scan(words, sentence, clause, joking) if words else []
    if any(m.pattern.danger is not None for m in found):
        return found
    joined = _unspaced(text)
    if joined is None:
        return found
    words, sentence, clause, joking = _words(joined)
    return _scan(words, sentence, clause, joking) if words else found


def detect(text: str) -> Danger | None:
    """The most urgent danger a message signals (see ``URGENCY``), or None."""
    if not text:
        return None
    return _decide(_matches_of(text))


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
            len(o.pattern.terms) > len(m.pattern.terms) and span & set(o.positions) for o in dangers
        ):
            continue  # a longer phrase over the same words says more
        danger = m.pattern.danger
        if danger is None:  # idioms were filtered above; keeps the type exact
            continue
        if best is None or _RANK[danger] < _RANK[best]:
            best = danger
    return best


def is_crisis(text: str) -> bool:
    """Whether a message signals danger to life or violence."""
    return detect(text) is not None


def explain(text: str) -> list[tuple[str, str]]:
    """(category or "idiom", phrase) of every pattern that matched: for lexicon work."""
    return [(str(m.pattern.danger or _IDIOM), m.pattern.phrase) for m in _matches_of(text)]
