"""Which of the six languages a first message is written in (lingua-language-detector).

Used only for the first free-text messages of a new contact (before consent), never on
the hot path of a running case. The detector is built once, lazily, for the six
supported languages only, in lingua's low-accuracy mode: about 15 MB and a fraction of
a millisecond per message (docs/LANGUAGES.md has the numbers), where the high-accuracy
models cost about 280 MB and seconds to load.

Low-accuracy mode confuses short Russian and Ukrainian sentences (and reads
"Ich will mich umbringen" as English): letters and a few everyday words that only one
language has decide first, the model only when they do not. A guess below
:data:`MIN_CONFIDENCE`, or Latin text shorter than two words, is no guess: the platform
hint (or German) stays, and the person can choose with ``/language`` at any time.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import LanguageDetector

MIN_CONFIDENCE = 0.7
_UK_LETTERS = frozenset("іїєґ")
_RU_LETTERS = frozenset("ыэъё")
#: Everyday words found in only one of the two languages (as whole words).
_UK_WORDS = frozenset(
    [
        "що",
        "це",
        "як",
        "мені",
        "тобі",
        "вона",
        "вони",
        "його",
        "її",
        "привіт",
        "дякую",
        "так",
        "ні",
        "піти",
        "син",
        "донька",
        "боюся",
        "допоможіть",
        "допомога",
        "потрібна",
        "потрібно",
        "звідси",
        "з",
        "зі",
        "де",
        "чому",
    ]
)
_RU_WORDS = frozenset(
    [
        "что",
        "это",
        "как",
        "мне",
        "тебе",
        "она",
        "они",
        "его",
        "её",
        "привет",
        "спасибо",
        "да",
        "нет",
        "уйти",
        "сын",
        "дочь",
        "боюсь",
        "помогите",
        "помощь",
        "нужна",
        "нужно",
        "отсюда",
        "из",
        "где",
        "почему",
        "здравствуйте",
    ]
)
#: The same for the three Latin-script languages: the low-accuracy model reads
#: "Ich will mich umbringen" as English (0.92), so everyday words and letters go first.
_LATIN_WORDS = {
    "de": frozenset(
        [
            "ich",
            "mich",
            "mir",
            "mein",
            "meine",
            "nicht",
            "und",
            "ist",
            "bin",
            "der",
            "die",
            "das",
            "ein",
            "eine",
            "hallo",
            "hilfe",
            "brauche",
            "will",
            "raus",
            "bitte",
            "sohn",
            "tochter",
            "wir",
            "sie",
            "kann",
            "aus",
            "bei",
            "mit",
            "von",
            "zu",
            "auf",
        ]
    ),
    "en": frozenset(
        [
            "i",
            "me",
            "my",
            "the",
            "and",
            "is",
            "am",
            "not",
            "a",
            "an",
            "hello",
            "help",
            "need",
            "want",
            "out",
            "please",
            "son",
            "daughter",
            "we",
            "they",
            "can",
            "you",
        ]
    ),
    "tr": frozenset(
        [
            "ben",
            "bana",
            "benim",
            "bir",
            "ve",
            "değil",
            "merhaba",
            "yardım",
            "istiyorum",
            "lütfen",
            "oğlum",
            "kızım",
            "biz",
            "onlar",
            "var",
            "yok",
        ]
    ),
}
_LATIN_LETTERS = {"de": frozenset("äöüß"), "tr": frozenset("ğşı")}
_WORD = re.compile(r"\w+")
_lock = threading.Lock()


@cache
def _detector() -> LanguageDetector:
    from lingua import Language, LanguageDetectorBuilder

    languages = (
        Language.GERMAN,
        Language.ENGLISH,
        Language.RUSSIAN,
        Language.UKRAINIAN,
        Language.ARABIC,
        Language.TURKISH,
    )
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


def warm_up() -> None:
    """Build the detector and load its models now (start-up), not on a first message."""
    with _lock:
        _detector().compute_language_confidence_values("Hallo Привіт مرحبا Merhaba hello")


def _script(text: str) -> str:
    """``arabic``, ``cyrillic``, ``latin`` or ``""``: the script of most letters."""
    counts = {"arabic": 0, "cyrillic": 0, "latin": 0}
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        for script in counts:
            if name.startswith(script.upper()):
                counts[script] += 1
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ""


def _cyrillic(text: str, model_guess: str | None) -> str:
    letters = set(text)
    uk, ru = bool(letters & _UK_LETTERS), bool(letters & _RU_LETTERS)
    if uk != ru:
        return "uk" if uk else "ru"
    words = _WORD.findall(text)
    uk_words = sum(w in _UK_WORDS for w in words)
    ru_words = sum(w in _RU_WORDS for w in words)
    if uk_words != ru_words:
        return "uk" if uk_words > ru_words else "ru"
    return model_guess or "ru"


def detect_language(text: str) -> str | None:
    """The language code of ``text`` (``de``, ``en``, ``ru``, ``uk``, ``ar``, ``tr``),
    or None when the text says too little to be sure."""
    text = text.strip().casefold()
    if not text or text[:1] in "/!":
        return None
    script = _script(text)
    if script == "arabic":
        return "ar"  # of the six, only Arabic is written in Arabic script
    if script not in ("cyrillic", "latin"):
        return None
    with _lock:  # lingua's detector is not documented as thread-safe
        values = _detector().compute_language_confidence_values(text)
    best = values[0] if values else None
    guess = best.language.iso_code_639_1.name.lower() if best is not None else None
    if script == "cyrillic":
        return _cyrillic(text, guess if guess in ("ru", "uk") else None)
    words = _WORD.findall(text)
    if len(words) < 2:
        return None
    marked = _latin(text, words)
    if marked is not None:
        return marked
    if best is None or best.value < MIN_CONFIDENCE:
        return None
    return guess if guess in ("de", "en", "tr") else None


def _latin(text: str, words: list[str]) -> str | None:
    """German, English or Turkish by their own letters and everyday words, if one of
    them clearly leads; else None (the model decides)."""
    letters = set(text)
    scores = {
        lang: 2 * bool(letters & _LATIN_LETTERS.get(lang, frozenset()))
        + sum(w in vocabulary for w in words)
        for lang, vocabulary in _LATIN_WORDS.items()
    }
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (top, first), (_, second) = ranked[0], ranked[1]
    return top if first > second else None
