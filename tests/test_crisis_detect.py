"""Crisis detection (issue 11, part 1): each observation of the issue as a test.

The corpus test (test_crisis_corpus.py) measures recall and false alarms; these
pin down the behaviour the issue names: inflection and phrasing, six languages,
negation, idioms, names and substrings, weapons and history without intent, the
urgency order, the lexicon's reviewability and the detector's bounds.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml

import handlers.safety as safety
from handlers.crisis import engine
from handlers.safety import URGENCY, Danger, detect, is_crisis

S, H, T, OT, M = Danger.SUICIDE, Danger.SELF_HARM, Danger.THREAT, Danger.OTHERS, Danger.MEDICAL


# ----------------------------------------------------------------- misses before issue 11
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        # threats by the scene: being found, followed, waited for, "you will pay"
        ("Die wissen, wo ich wohne", T),
        ("Sie haben gesagt, ich werde dafür büßen, dass ich gegangen bin", T),
        ("Seit ich raus bin, werde ich verfolgt", T),
        ("Vor meiner Wohnung warten zwei von denen auf mich", T),
        ("they told me I'd pay for leaving", T),
        ("someone from the old crew is waiting for me outside", T),
        ("Sie haben gedroht, mich umzubringen", T),
        # suicidal intent without one of the old stems
        ("Am liebsten wäre ich tot", S),
        ("Ich denke darüber nach, mir das Leben zu nehmen", S),
        ("there's no point anymore, I'd be better off dead", S),
        ("Meine Tochter redet davon, sich umzubringen", S),
        # self-harm in the first person
        ("Ich ritze mich seit dem Ausstieg jeden Tag", H),
        ("i've been cutting myself since I left", H),
        # danger to others
        ("Wir planen einen Anschlag auf das Flüchtlingsheim", OT),
        ("ich stech ihn ab wenn ich ihn sehe", OT),
        ("I want to shoot them all at the rally", OT),
        # overdose
        ("Ich hab eine Überdosis genommen", M),
        ("I took way too many painkillers and feel sick", M),
        ("Mein Freund hat zu viele Pillen geschluckt und ist nicht mehr ansprechbar", M),
        # Russian, Ukrainian, Arabic, Turkish, inflected
        ("хочу покончить с собой", S),
        ("они сказали, что убьют меня, если я уйду", T),
        ("я убью его", OT),
        ("за мною стежать", T),
        ("я вбʼю себе", S),  # modifier apostrophe, as phones type it
        ("سأقتل نفسي", S),
        ("يلاحقونني", T),
        ("وسأقتلهم", OT),  # "and" written onto the verb
        ("kendimi öldürmek istiyorum", S),
        ("olmek istiyorum", S),  # typed without Turkish letters
        ("İntihar etmeyi düşünüyorum", S),  # dotted capital İ
        ("bir kutu hap içtim", M),
        ("ＳＵＩＺＩＤ", S),  # full-width letters
    ],
)
def test_detects_danger_as_people_write_it(text: str, danger: Danger) -> None:
    assert detect(text) == danger


# ------------------------------------------------------------ false alarms before issue 11
@pytest.mark.parametrize(
    "text",
    [
        # idioms
        "Ich könnte ihn umbringen, wenn er wieder zu spät kommt",
        "Die Hitze bringt mich um",
        "that band is killing it",
        "This traffic is killing me",
        "I could kill for a pizza right now",
        "я бы его убил, он опять опоздал",
        "الحر يقتلني اليوم",
        # letters of a word inside names and other words
        "Herr Messerschmidt vom Jugendamt hat mir Ihre Nummer gegeben",
        "Ich habe viele Skills gelernt",
        "Mein Sohn spielt ständig Killerspiele",
        "Die Stimmung war bombe",
        "Gunnar hat mir von euch erzählt",
        "Waffenstillstand im Streit mit meinem Vater",
        "hapisten yeni çıktım",  # "hap" (pill) inside "hapis" (prison)
        # weapons without threat or intent
        "Ich schneide das Gemüse mit dem großen Messer",
        "Mein Onkel geht auf die Jagd und hat einen Waffenschein",
        "my dad has hunting rifles for deer season",
        "у отца охотничье ружьё, он ходит на охоту",
        "Gun",
        # past attacks, history lessons
        "Im Geschichtsunterricht ging es um den Anschlag auf das Oktoberfest 1980",
        "we studied the 9/11 attacks in history class",
        "Ich habe ein Buch über Selbstmordattentäter gelesen",
        # negation
        "ich will nicht sterben",
        "I'm not going to hurt anyone",
        "Ich bin nicht in Gefahr",
        "я не собираюсь никого убивать",
        "kimseyi öldürmeyeceğim",
        "tehlikede değilim",
        "لن أقتل أحدا",
        # leaving the scene, in so many words
        "Hallo, ich will raus aus der Szene",
        "I want to leave the scene",
    ],
)
def test_no_alarm_without_danger(text: str) -> None:
    assert detect(text) is None


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("Keine Ahnung, ich will einfach sterben", S),  # negation in another clause
        ("No, I want to die", S),
        ("Ich will nicht mehr leben", S),  # the negation is the statement
        ("I don't want to live anymore", S),
        ("не хочу больше жить", S),
        ("yaşamak istemiyorum artık", S),
        ("لم أعد أريد أن أعيش", S),
    ],
)
def test_negation_does_not_reach_too_far(text: str, danger: Danger) -> None:
    assert detect(text) == danger


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        # "me"/"myself" rule out danger to others only next to the verb, not in
        # another clause of the sentence (found by the held-out evaluation)
        ("Mir reicht es, ich werde ihn umbringen", OT),
        ("у меня дома лежит нож, и я собираюсь зарезать его завтра", OT),
        ("у мене є ніж, і я збираюся зарізати його", OT),
        ("I told myself to calm down, but I will kill him", OT),
        ("لا أحد يسمعني، سأقتلهم", OT),  # Arabic comma ends the clause
        # "tot" (dead) is not "töten" (to kill), although Snowball stems both to "tot"
        ("Ich will einfach tot sein", S),
    ],
)
def test_exclusions_stay_in_their_clause(text: str, danger: Danger) -> None:
    assert detect(text) == danger


# ------------------------------------------------------------------------- categories
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("Ich will mich umbringen", S),
        ("Die wollen mich umbringen", T),  # who does it decides, not the verb
        ("ich werde ihn umbringen", OT),
        ("I will kill myself", S),
        ("They said they'll kill me", T),
        ("I'm going to kill him", OT),
    ],
)
def test_who_does_it_decides_the_category(text: str, danger: Danger) -> None:
    assert detect(text) == danger


def test_urgency_order_is_complete_and_documented() -> None:
    assert sorted(URGENCY) == sorted(Danger)
    assert URGENCY[0] == Danger.MEDICAL


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("Ich habe 30 Tabletten genommen, ich will sterben", M),
        ("They know where I live and I want to die", S),
        ("Sie verfolgen mich. Ich werde sie alle erschießen", T),
        ("Ich ritze mich. Ich will sterben", S),
        ("I've been cutting myself. I'm going to kill him", OT),
    ],
)
def test_several_dangers_give_the_most_urgent(text: str, danger: Danger) -> None:
    assert detect(text) == danger


# -------------------------------------------------------------------------- interface
def test_safety_keeps_the_interface() -> None:
    assert {"Danger", "detect", "is_crisis", "normalise"} <= set(safety.__all__)
    assert is_crisis("Ich will mich umbringen")
    assert not is_crisis("")
    assert safety.normalise("ＳＵＩＺＩＤ") == "suizid"


@pytest.mark.parametrize("text", ["", "   ", "🙂🙂", "...", "\u200b", "1234"])
def test_empty_or_wordless_text_is_no_danger(text: str) -> None:
    assert detect(text) is None


# ----------------------------------------------------------------------------- lexicon
def test_every_lexicon_entry_says_why_it_is_there() -> None:
    for language in engine.SCRIPTS:
        data = yaml.safe_load((engine.LEXICON_DIR / f"{language}.yaml").read_text("utf-8"))
        assert data["language"] == language
        kinds = {e["danger"] for e in data["patterns"]}
        assert kinds >= {*Danger, "idiom"} - {"idiom"}, language
        for section in ("negation", "patterns"):
            for entry in data[section]:
                assert str(entry.get("why", "")).strip(), (language, entry)


def test_an_entry_without_why_is_refused() -> None:
    data = {"language": "en", "patterns": [{"danger": "suicide", "phrase": "die"}]}
    with pytest.raises(ValueError, match="why"):
        engine._compile("en", data, iter(range(10)))


def test_an_unknown_category_is_refused() -> None:
    data = {"language": "en", "patterns": [{"danger": "sad", "phrase": "x", "why": "y"}]}
    with pytest.raises(ValueError, match="sad"):
        engine._compile("en", data, iter(range(10)))


# ------------------------------------------------------------------------------ bounds
@contextmanager
def no_gc() -> Iterator[None]:
    """Time without the cyclic GC: its pauses depend on what the rest of the test
    session left on the heap (the fuzz tests), not on the detector."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_token_cache_is_bounded() -> None:
    info = engine._atoms.cache_info()
    assert info.maxsize == engine.CACHE_SIZE


@pytest.mark.parametrize("alphabet", ["abcdefghijklmnopqrstuvwxyz", "абвгдежзиклмнопрстуфхцчшщ"])
def test_made_up_words_stay_cheap(alphabet: str) -> None:
    """A flood of never-seen words (every one a cache miss) must not cost milliseconds."""
    rng = random.Random(11)
    texts = [" ".join("".join(rng.choices(alphabet, k=7)) for _ in range(8)) for _ in range(200)]
    with no_gc():
        start = time.thread_time()
        for text in texts:
            detect(text)
        mean = (time.thread_time() - start) / len(texts)
    assert mean < 0.5e-3, f"{mean * 1e6:.0f} us per message of 8 new words"


def test_a_huge_message_stays_cheap() -> None:
    text = "ich gehe morgen in die Schule und dann nach Hause " * 2_000  # ~100 kB
    detect(text)  # warm
    with no_gc():
        start = time.thread_time()
        assert detect(text + " Ich will mich umbringen") == S
        assert time.thread_time() - start < 1.0


# ---------------------------------------------- how people type (red-team review, H7)
@pytest.mark.parametrize(
    ("text", "danger"),
    [
        # spaced-out letters are read a second time with the letters joined
        ("I C H   W I L L   M I C H   U M B R I N G E N", S),
        ("i want to k i l l  m y s e l f", S),
        # combining marks no longer split a word ("يُشنقون", a stress mark in "убью́")
        ("سَأَقْتُلُهُم جميعاً", OT),
        ("я убью\u0301 его", OT),
        # the Arabic article on a word satisfies the word's prefix entry
        ("بلعت الكثير من الأقراص", Danger.MEDICAL),
    ],
)
def test_typing_habits_do_not_hide_danger(text: str, danger: Danger) -> None:
    assert detect(text) == danger


def test_one_letter_words_are_not_joined_when_the_first_reading_finds_danger() -> None:
    # "и я в опасности": three real one-letter words; the first reading finds the threat
    assert detect("и я в опасности") == T


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("I want to die lol", S),  # laughter never cancels danger to the writer
        ("they said they'll kill me haha", T),
        ("я хочу умереть хахаха", S),
        ("I'm not kidding, I'll kill him", OT),  # "kidding" is no laughter
    ],
)
def test_laughter_cancels_only_a_joke_about_others(text: str, danger: Danger) -> None:
    assert detect(text) == danger


@pytest.mark.parametrize(
    "text",
    [
        "I'll kill you if you're late lol",
        "ich bring dich um, wenn du wieder zu spät kommst 😂",
        "сейчас как убью тебя ахаха",
    ],
)
def test_a_laughing_joke_about_others_is_no_danger(text: str) -> None:
    assert detect(text) is None


def test_an_idiom_does_not_reach_into_the_next_sentence() -> None:
    # "dead tired" cancels "dead"; "dead. Tired" is two sentences, and the wish stays
    assert detect("i'm dead tired") is None
    assert detect("I want to be dead. Tired of everything") == S
