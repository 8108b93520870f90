"""H7c (issue 11): the rules added after the blind third held-out part.

* past-and-resolved: a danger told with a time-ago marker in its clause and a
  resolution after it (same or next sentence) is history, not a present danger;
  scoped per match, so a present danger elsewhere in the message stays;
* hyperbole with an inanimate subject ("this exam will kill me") is no threat, a
  person as the subject still is;
* Russian, Ukrainian and Arabic typed in Latin letters reach their lexicons;
* "=w*" in a lexicon is the prefix "w*" (it silently never matched before).

The sentences are written for these tests, not taken from any corpus part.
"""

from __future__ import annotations

import pytest

from handlers.crisis import engine
from handlers.safety import Danger, detect


# ------------------------------------------------------------ past and resolved
@pytest.mark.parametrize(
    "text",
    [
        "Two years ago I tried to kill myself, today I'm stable and working again",
        "I overdosed in 2015. Since then I'm clean and stable",
        "They threatened me a long time ago, years ago actually. It's quiet now",
        "Vor fünf Jahren wollte ich mich umbringen, heute geht es mir gut",
        "Damals haben sie mich bedroht. Jetzt hab ich Ruhe",
        "Десять лет назад хотел покончить с собой, сейчас всё хорошо",
        "Колись мені погрожували, зараз спокійно",
        "5 yıl önce intihar etmeyi düşündüm, şimdi iyiyim",
        "من عشر سنين هددوني، هلأ مرتاح",
    ],
)
def test_a_past_event_told_as_over_is_no_danger(text: str) -> None:
    assert detect(text) is None


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        # the same past attempt, no resolution: still a danger (it may be ongoing)
        ("Two years ago I tried to kill myself and I still think about it", Danger.SUICIDE),
        # a resolution, but no time-ago marker: yesterday is not history
        ("I tried to kill myself yesterday, now I'm fine", Danger.SUICIDE),
        # the resolution is negated
        ("They threatened me years ago and it's not quiet now", Danger.THREAT),
        # a present danger in another sentence is not cancelled by the told past
        (
            "Two years ago I tried to kill myself, now I'm fine. But tonight I want to die",
            Danger.SUICIDE,
        ),
        (
            "Vor drei Jahren haben sie mich bedroht, jetzt ist Ruhe. "
            "Seit gestern wissen sie, wo ich wohne",
            Danger.THREAT,
        ),
        # a present danger in another clause after "but"
        (
            "Years ago they threatened me and it was quiet, but now they know where I live",
            Danger.THREAT,
        ),
    ],
)
def test_the_past_rule_never_cancels_a_present_danger(text: str, danger: Danger) -> None:
    assert detect(text) is danger


def test_past_and_resolved_words_are_compiled() -> None:
    data = {
        "language": "en",
        "past": [{"words": "ago", "why": "x"}],
        "resolved": [{"words": "fine", "why": "x"}],
        "patterns": [],
    }
    lex = engine._compile("en", data, iter(range(100)))
    assert lex.past
    assert lex.resolved
    with pytest.raises(ValueError, match="why"):
        engine._compile("en", {"past": [{"words": "ago"}], "patterns": []}, iter(range(10)))


# ------------------------------------------------------ inanimate-subject hyperbole
@pytest.mark.parametrize(
    "text",
    [
        "this thesis deadline is going to kill me",
        "that series finale killed me, what an ending",
        "die Klausur morgen bringt mich um",
        "эта пробка меня убьёт, стою час",
        "ця черга мене вб'є",
        "bu sınav beni gebertecek",
        "هالزحمة رح تموتني",
    ],
)
def test_hyperbole_with_a_thing_as_subject_is_no_danger(text: str) -> None:
    assert detect(text) is None


@pytest.mark.parametrize(
    "text",
    ["this guy is going to kill me", "они меня убьют", "bu adamlar beni öldürecek"],
)
def test_a_person_as_subject_stays_a_threat(text: str) -> None:
    assert detect(text) is Danger.THREAT


# ------------------------------------------------------------ Latin letters
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("ya ne hochu zhit bolshe", Danger.SUICIDE),
        ("bdi ... baddi mout, khalas", Danger.SUICIDE),
        ("el jama3a 3arfin wein bet ahli", Danger.THREAT),
        ("drug ne dyshit, chto delat", Danger.MEDICAL),
    ],
)
def test_cyrillic_and_arabic_in_latin_letters(text: str, danger: Danger) -> None:
    assert detect(text) is danger


@pytest.mark.parametrize(
    "text",
    [
        "sam7ni, ana mit2akher shway",  # "excuse me, I'm a bit late"
        "hab ne Frage zum Termin morgen",
        "ya hochu kofe",
    ],
)
def test_latin_lookups_do_not_alarm_on_ordinary_chat(text: str) -> None:
    assert detect(text) is None


def test_non_latin_lexicons_with_latin_entries_are_consulted_for_latin_words() -> None:
    by_script = engine.compiled().by_script
    assert {lex.language for lex in by_script["latin"]} >= {"de", "en", "tr", "ru", "uk", "ar"}


def test_an_exact_prefix_is_a_prefix() -> None:
    data = {"patterns": [{"danger": "threat", "phrase": "=foo* bar", "why": "x"}]}
    lex = engine._compile("en", data, iter(range(100)))
    assert "foo" in lex.prefixes
    assert lex.token_atoms("foobar") & lex.patterns[0].terms[0]
