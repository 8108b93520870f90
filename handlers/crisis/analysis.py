"""Per-language token analysis: which lemma or stem keys a token stands for.

Stemming and lemmatising come from maintained libraries, not hand-written suffix
rules: Snowball stemmers (PyStemmer, C) for German, English, Turkish and Arabic,
pymorphy3 dictionaries for Russian and Ukrainian (their inflection is too rich for
a stemmer: "убью" -> "убить"; the lexicon's lemmas are expanded into all their
forms once, see ``forms``). simplemma was measured and left out: its German
dictionary alone costs ~110 MB of memory and its Turkish lemmas merge "öl" (die)
with "öldür" (kill).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache

import pymorphy3
import Stemmer

#: Languages with a lexicon, and the script their tokens are written in.
SCRIPTS: dict[str, str] = {
    "de": "latin",
    "en": "latin",
    "tr": "latin",
    "ru": "cyrillic",
    "uk": "cyrillic",
    "ar": "arabic",
}

# Arabic: short vowels, tatweel and hamza-carrying alef variants are written or
# left out at will; compare without them (the usual light normalisation).
_AR_MARKS = re.compile("[\u064b-\u0652\u0670\u0640]")
_AR_FOLD = str.maketrans(
    {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"}
)
# Turkish and German are often typed on keyboards without their letters
# ("olmek istiyorum", "toeten"); prefixes compare on a folded form.
_LATIN_FOLD = str.maketrans(
    {
        "ç": "c",
        "ğ": "g",
        "ı": "i",
        "ö": "o",
        "ş": "s",
        "ü": "u",
        "â": "a",
        "î": "i",
        "û": "u",
        "ä": "a",
        "é": "e",
    }
)
_APOSTROPHES = ("’", "ʼ", "`", "‘")


def normalise(text: str) -> str:
    """Case-fold and compose Unicode so look-alike forms compare equal.

    Also drops the combining dot that case-folding Turkish "İ" leaves behind and
    unifies apostrophes (Ukrainian "вб'ю" is written with three different ones).
    """
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u0307", "")
    # str.replace runs in C; translate() with a dict looks up every character.
    for apostrophe in _APOSTROPHES:
        folded = folded.replace(apostrophe, "'")
    return folded


def fold(token: str, language: str) -> str:
    """The surface form prefixes and exact words are compared on."""
    if language == "ar":
        return _AR_MARKS.sub("", token).translate(_AR_FOLD)
    if SCRIPTS[language] == "latin":
        return token.translate(_LATIN_FOLD)
    return token.replace("ё", "е")  # "ё" is mostly typed as "е"


def script_of(token: str) -> str:
    """The script of a token, judged by its first letter (cheap, good enough to route)."""
    c = token[0]
    if c < "\u0250":
        return "latin"
    if "\u0400" <= c <= "\u04ff":
        return "cyrillic"
    if "\u0600" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f":
        return "arabic"
    return "other"


def _snowball(name: str, language: str) -> Callable[[str], tuple[str, ...]]:
    stemmer = Stemmer.Stemmer(name)

    def keys(token: str) -> tuple[str, ...]:
        # Arabic and Turkish stem the folded form: both are often typed without
        # their diacritics/letters, and lexicon and message must fold alike.
        return (stemmer.stemWord(fold(token, language) if language in ("ar", "tr") else token),)

    return keys


#: Languages whose lexicon words are expanded into all their forms at load time.
MORPH = frozenset({"ru", "uk"})


@cache
def _morph_analyser(language: str) -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer(lang=language)


def forms(language: str, lemma: str, word: str) -> set[str]:
    """Every inflected form of a lemma (pymorphy3's lexeme), folded.

    Russian and Ukrainian messages are matched by looking their words up in these
    precomputed forms, not by analysing each word: pymorphy3 guesses unknown words
    at ~0.4 ms each, so a flood of made-up Cyrillic words would cost milliseconds
    per message; a dictionary lookup costs nothing.
    """
    analyser = _morph_analyser(language)
    parses = [p for p in analyser.parse(word) if p.normal_form == lemma] or analyser.parse(word)
    out = {fold(word, language), fold(lemma, language)}
    for p in parses:
        out.update(fold(f.word.replace("ʼ", "'"), language) for f in p.lexeme)
    return out


def _morph(language: str) -> Callable[[str], tuple[str, ...]]:
    analyser = _morph_analyser(language)

    def keys(token: str) -> tuple[str, ...]:
        # Every reading's lemma: "стали" is both "стать" and "сталь"; patterns need
        # all terms anyway, so an extra reading costs precision only in theory.
        return tuple(dict.fromkeys(p.normal_form.replace("ʼ", "'") for p in analyser.parse(token)))

    return keys


@cache
def analyser(language: str) -> Callable[[str], tuple[str, ...]]:
    """Token -> lemma/stem keys for one language (built once per process)."""
    if language in ("ru", "uk"):
        return _morph(language)
    names = {"de": "german", "en": "english", "tr": "turkish", "ar": "arabic"}
    return _snowball(names[language], language)
