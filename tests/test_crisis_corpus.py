"""The labelled crisis corpus: recall and false alarms per language and category.

``tests/crisis_corpus/dev`` is what the lexicon was tuned on; ``heldout`` was
written before the detector and ``heldout2`` after the red-team lexicon changes
(H7); both are only evaluated, never tuned to (issue 11).
Figures are printed whatever pytest's capture setting; the test fails below 98 %
recall or above 5 % false alarms in any language.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from handlers.safety import Danger, detect

CORPUS = Path(__file__).parent / "crisis_corpus"
LANGUAGES = ("de", "en", "ru", "uk", "tr", "ar")
MIN_RECALL = 0.98
MAX_FALSE_ALARMS = 0.05


def load(part: str, language: str) -> list[tuple[str, str]]:
    """(label, text) rows of one corpus file; '#' lines are comments."""
    rows = []
    path = CORPUS / part / f"{language}.tsv"
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        assert sep, f"{path}:{n}: expected label<TAB>text"
        assert text.strip(), f"{path}:{n}: empty text"
        assert label == "none" or label in set(Danger), f"{path}:{n}: unknown label {label!r}"
        rows.append((label, text))
    return rows


@dataclass
class Tally:
    """Counts for one language (or all)."""

    danger: int = 0
    detected: int = 0
    right_category: int = 0
    ordinary: int = 0
    false_alarms: int = 0
    per_category: Counter[str] = field(default_factory=Counter)
    per_category_hit: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    def add(self, label: str, got: Danger | None, text: str) -> None:
        if label == "none":
            self.ordinary += 1
            if got is not None:
                self.false_alarms += 1
                self.misses.append(f"false alarm ({got}): {text}")
            return
        self.danger += 1
        self.per_category[label] += 1
        if got is None:
            self.misses.append(f"missed ({label}): {text}")
            return
        self.detected += 1
        self.per_category_hit[label] += 1
        self.right_category += got == label

    @property
    def recall(self) -> float:
        return self.detected / self.danger if self.danger else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.ordinary if self.ordinary else 0.0

    @property
    def category_accuracy(self) -> float:
        return self.right_category / self.detected if self.detected else 1.0


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def report(part: str, tallies: dict[str, Tally]) -> str:
    """The printed table: per language, then recall per category over all languages."""
    lines = [
        f"crisis corpus, {part} part",
        "lang  danger  recall   category  ordinary  false alarms",
    ]
    total = Tally()
    for language, t in tallies.items():
        lines.append(
            f"{language:4}  {t.danger:6}  {_pct(t.recall)}  {_pct(t.category_accuracy)}  "
            f"{t.ordinary:8}  {_pct(t.false_alarm_rate)} ({t.false_alarms})"
        )
        for name in ("danger", "detected", "right_category", "ordinary", "false_alarms"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
        total.per_category.update(t.per_category)
        total.per_category_hit.update(t.per_category_hit)
    lines.append(
        f"all   {total.danger:6}  {_pct(total.recall)}  {_pct(total.category_accuracy)}  "
        f"{total.ordinary:8}  {_pct(total.false_alarm_rate)} ({total.false_alarms})"
    )
    lines.append(
        "recall per category: "
        + ", ".join(
            f"{c} {_pct(total.per_category_hit[c] / total.per_category[c]).strip()}"
            f" ({total.per_category[c]})"
            for c in Danger
            if total.per_category[c]
        )
    )
    for language, t in tallies.items():
        lines.extend(f"  {language}: {m}" for m in t.misses)
    return "\n".join(lines)


HELD_OUT = ("heldout", "heldout2")


@pytest.mark.parametrize("part", ["dev", *HELD_OUT])
def test_corpus_recall_and_false_alarms(part: str, capsys: pytest.CaptureFixture[str]) -> None:
    tallies = {}
    for language in LANGUAGES:
        t = Tally()
        for label, text in load(part, language):
            t.add(label, detect(text), text)
        tallies[language] = t
    with capsys.disabled():
        print("\n" + report(part, tallies))
    for language, t in tallies.items():
        assert t.recall >= MIN_RECALL, f"{part}/{language}: recall {t.recall:.3f}"
        assert t.false_alarm_rate <= MAX_FALSE_ALARMS, (
            f"{part}/{language}: false alarms {t.false_alarm_rate:.3f}"
        )


def test_corpus_size_and_balance() -> None:
    parts = ("dev", *HELD_OUT)
    rows = {part: [r for lang in LANGUAGES for r in load(part, lang)] for part in parts}
    total = sum(len(r) for r in rows.values())
    held_out = sum(len(rows[part]) for part in HELD_OUT)
    assert total >= 400
    # Written first at ~30 % (132 of the 434 planned); the dev part grew with probes
    # while tuning, then a second held-out part was written (H7). Below 15 % the
    # held-out figures would say too little.
    assert 0.15 <= held_out / total <= 0.35
    danger = sum(label != "none" for part in rows.values() for label, _ in part)
    assert 0.4 <= danger / total <= 0.6
    for language in LANGUAGES:  # every category in every language's dev part
        labels = {label for label, _ in load("dev", language)}
        assert labels >= {*Danger, "none"}, language


def test_detection_cost_per_message_is_well_under_a_millisecond() -> None:
    texts = [text for lang in LANGUAGES for _, text in load("dev", lang)]
    for text in texts:  # warm: lexicons loaded, token cache filled
        detect(text)
    rounds = 5
    gc.collect()  # GC pauses depend on what other tests left on the heap, not on detect
    gc.disable()
    try:
        start = time.thread_time()  # CPU time: other processes on a shared machine do not count
        for _ in range(rounds):
            for text in texts:
                detect(text)
        mean = (time.thread_time() - start) / (rounds * len(texts))
    finally:
        gc.enable()
    # The budget is 0.5 ms for the whole core; detection must take a small part of it
    # (measured ~27 us: docs/PERFORMANCE.md).
    assert mean < 0.25e-3, f"mean {mean * 1e6:.0f} us per message"
