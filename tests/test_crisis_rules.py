"""Crisis detection rules added for H7b (issue 11): hedges, sentence-scoped
co-occurrence, reported speech, and the look-alikes they must not catch.

Each rule is general (it reads structure, not one sentence); the dev corpus holds
the phrasings it was built from, these tests pin the rule itself down, with the
control that shows it can fail.
"""

from __future__ import annotations

import pytest

from handlers.crisis import engine
from handlers.crisis.engine import explain
from handlers.safety import Danger, detect

S, H, T, OT, M = Danger.SUICIDE, Danger.SELF_HARM, Danger.THREAT, Danger.OTHERS, Danger.MEDICAL


# ----------------------------------------------------------------------------- hedges
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("I'm not sure I won't hurt myself", H),
        ("I can't promise I won't hurt myself tonight", H),
        ("ich weiß nicht, ob ich mir nichts antue", S),
        ("ich kann nicht versprechen, dass ich mir nichts antue", S),
        ("не уверен, что не сделаю что-то с собой", S),
        ("не впевнений, що не зроблю щось із собою", S),
    ],
)
def test_a_hedged_negation_is_no_denial(text: str, danger: Danger) -> None:
    assert detect(text) == danger


@pytest.mark.parametrize(
    "text",
    [
        "I won't hurt myself",
        "I'm sure I won't hurt myself",  # no negation before "sure": no hedge
        "I promise I won't hurt myself",
        "ich tu mir nichts an",
        "ich bin sicher, dass ich mir nichts antue",
        "я ничего с собой не сделаю",
    ],
)
def test_a_plain_or_confident_negation_still_cancels(text: str) -> None:
    assert detect(text) is None


def test_a_hedged_entry_needs_its_hedge() -> None:
    # "keep myself safe" is the counsellors' safety question; only doubt is a danger
    assert detect("I'm not sure I can keep myself safe tonight") == S
    assert detect("I can keep myself safe tonight") is None
    assert detect("I'll keep myself safe, promise") is None


def test_cant_counts_as_negation_only_for_a_hedge() -> None:
    # "can't" is no negation in general: "I can't stop thinking about killing myself"
    assert detect("I can't stop thinking about killing myself") == S
    assert engine.HEDGE_NEGATION == 2


# ------------------------------------------------------- co-occurrence within a sentence
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("there is no future for me, it's hopeless", S),
        ("ich hab keine zukunft, alles hoffnungslos", S),
        ("у меня нет будущего, всё безнадёжно", S),
        ("gelecegim yok, umutsuzum", S),
        ("I gave my dog to my sister, I won't need him soon", S),
        ("my brother keeps buying weapons and says the day is coming", OT),
    ],
)
def test_two_cues_in_one_sentence_signal_danger(text: str, danger: Danger) -> None:
    assert detect(text) == danger
    assert any(kind == str(danger) for kind, _ in explain(text))


@pytest.mark.parametrize(
    "text",
    [
        "No future plans yet. The last game was hopeless.",  # cues in two sentences
        "it's hopeless",  # one cue alone
        "I gave away my old clothes to the charity shop",
        "my brother collects weapons for the museum, the day of the fair is coming",
        "keine Zukunft für die Szene, alles hoffnungslos dort",
    ],
)
def test_one_cue_or_cues_across_sentences_are_no_danger(text: str) -> None:
    assert detect(text) is None


def test_sentence_scope_is_what_separates_the_two() -> None:
    joined = "there is no future for me, it's hopeless"
    split = "there is no future for me. it's hopeless"
    assert detect(joined) == S
    assert detect(split) is None


# ----------------------------------------------------------- reported speech of relatives
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("my son told me he wants to end it", S),
        ("she said she's going to end it tonight", S),
        ("mein Sohn sagt, er will nicht mehr leben", S),
        ("sie hat gesagt, sie macht heute nacht schluss", S),
        ("сын сказал что не хочет больше жить", S),
        ("она сказала, что сегодня ночью покончит со всем", S),
        ("oğlum artık yaşamak istemediğini söyledi", S),
        ("ابني قال إنه لا يريد أن يعيش بعد الآن", S),
        ("he says they will all pay for what they did to him", OT),
    ],
)
def test_a_relative_reporting_words_is_a_danger(text: str, danger: Danger) -> None:
    assert detect(text) == danger


@pytest.mark.parametrize(
    "text",
    [
        "he said he'd end it with his girlfriend",
        "er hat gesagt er macht schluss mit seiner freundin",
        "он сказал, что расстанется со своей девушкой",
    ],
)
def test_ending_a_relationship_is_no_danger(text: str) -> None:
    assert detect(text) is None


# ------------------------------------------------------ who knows the address decides
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("my mum knows where I live, she visits every Sunday", None),
        ("they know where my mum lives", T),
        ("meine mutter weiß wo ich wohne", None),
        ("die wissen wo meine mutter wohnt", T),
        ("мама знает, где я живу", None),
        ("они знают, где живёт моя мама", T),
    ],
)
def test_family_knowing_the_address_is_no_threat(text: str, danger: Danger | None) -> None:
    assert detect(text) == danger


# ------------------------------------------------------------------------ self-harm
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("I burned my arm with a cigarette again", H),
        ("i bang my head against the wall when it gets too much", H),
        ("ich schlage mich selbst wenn ich was falsch mache", H),
        ("бьюсь головой об стену", H),
        ("أخدش ذراعي حتى تنزف", H),  # self-harm, not the medical "bleeding"
        ("kendimi cezalandırıyorum", H),
    ],
)
def test_self_harm_by_burning_hitting_punishing(text: str, danger: Danger) -> None:
    assert detect(text) == danger


@pytest.mark.parametrize(
    "text",
    [
        "I burned the toast again",
        "I punished myself enough for the past, now I want to move on",
        "ضربت رأسي بالخزانة هذا الصباح",
        "kocam eskiden gruptaydı, şimdi intikamdan korkuyor",
    ],
)
def test_accidents_and_the_past_are_no_self_harm(text: str) -> None:
    assert detect(text) is None


# -------------------------------------------------------------------------- the schema
def test_a_hedge_entry_without_why_is_refused() -> None:
    data = {"language": "en", "hedges": [{"words": "sure"}], "patterns": []}
    with pytest.raises(ValueError, match="why"):
        engine._compile("en", data, iter(range(10)))


def test_hedged_and_scope_options_are_compiled() -> None:
    data = {
        "language": "en",
        "patterns": [
            {"danger": "suicide", "phrase": "a b", "hedged": True, "scope": "sentence", "why": "x"}
        ],
    }
    (p,) = engine._compile("en", data, iter(range(100))).patterns
    assert p.hedged
    assert p.sentence
