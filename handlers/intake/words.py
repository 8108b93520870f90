"""What a person types that is not an answer: commands, plain words, calls for help.

``/start``, ``!start`` and the plain word all count (Element intercepts unknown
/commands and owns /help, and a plain word is what most people try first).
"""

from __future__ import annotations

from config.i18n import LANGUAGE_NAMES, SUPPORTED
from config.messages import InboundMessage

_COMMANDS = {
    "start": "start",
    "help": "help",
    "hilfe": "help",
    "delete": "delete",
    "loeschen": "delete",
    "löschen": "delete",
    "language": "language",
    "sprache": "language",
    "back": "back",
    "zurueck": "back",
    "zurück": "back",
    "vanish": "vanish",
    "verschwinden": "vanish",
    "pause": "pause",
    "pausieren": "pause",
    "resume": "resume",
    "fortsetzen": "resume",
    "who": "who",
    "wer": "who",
}
_BACK_WORDS = frozenset({"zurück", "zurueck", "back"})
#: Whole messages that work as a command without ``/`` or ``!``: Element intercepts
#: unknown /commands and owns /help, and a plain word is what most people try first.
#: Not "vanish" (it acts at once, no confirmation): that one needs its prefix.
_PLAIN_WORDS = {
    "hilfe": "help",
    "help": "help",
    "befehle": "help",
    "commands": "help",
    "löschen": "delete",
    "loeschen": "delete",
    "delete": "delete",
    "alles löschen": "delete",
    "delete everything": "delete",
    "sprache": "language",
    "language": "language",
    "pause": "pause",
    "pausieren": "pause",
    "fortsetzen": "resume",
    "resume": "resume",
    "start": "start",
    "neustart": "start",
    "neu starten": "start",
    "restart": "start",
    # The other catalog languages: help, delete, language, who, back.
    "помощь": "help",
    "удалить": "delete",
    "язык": "language",
    "кто": "who",
    "назад": "back",
    "допомога": "help",
    "видалити": "delete",
    "мова": "language",
    "хто": "who",
    "مساعدة": "help",
    "حذف": "delete",
    "اللغة": "language",
    "رجوع": "back",
    "yardım": "help",
    "sil": "delete",
    "dil": "language",
    "kim": "who",
    "geri": "back",
}
#: In a case (or as the message for one) a lone "Hilfe" is a plea: it is passed on, not answered
#: with the command list.
_PLEAS = frozenset({"help"})
#: "back" in the other four languages (the texts tell people to type it).
_BACK_WORDS_MORE = frozenset({"назад", "رجوع", "geri"})
#: Plain words that ask who reads along (Element intercepts unknown /commands).
_WHO_WORDS = frozenset(
    {"wer", "who", "wer bist du", "wer liest mit", "wer ist da", "who are you", "who is reading"}
)
#: Language names a person may type (own names, and the German and English ones).
_LANGUAGE_WORDS = {
    **{name.casefold(): code for code, name in LANGUAGE_NAMES.items()},
    "german": "de",
    "englisch": "en",
    "russian": "ru",
    "russisch": "ru",
    "ukrainian": "uk",
    "ukrainisch": "uk",
    "arabic": "ar",
    "arabisch": "ar",
    "turkish": "tr",
    "türkisch": "tr",
    "turkce": "tr",
}
#: Plain words that ask to erase everything: a person who panics should not need to know
#: a command (and Element intercepts /delete). Matched as the whole message, after
#: dropping "bitte"/"please", so "die Bilder löschen ..." in a longer message is no request.
_DELETE_WORDS = frozenset(
    {
        "löschen",
        "loeschen",
        "alles löschen",
        "alles loeschen",
        "lösch alles",
        "lösche alles",
        "loesch alles",
        "loesche alles",
        "daten löschen",
        "meine daten löschen",
        "alle daten löschen",
        "delete",
        "delete all",
        "delete everything",
        "delete my data",
        "erase everything",
    }
)
_POLITE = frozenset({"bitte", "please", "jetzt", "now", "sofort"})


def command_of(msg: InboundMessage, *, in_case: bool = False) -> str | None:
    """The command in a message (``/start``, ``!start`` or the plain word), normalised.

    ``in_case``: the person talks to a counsellor, so a plea ("Hilfe") is text.
    """
    text = msg.text.strip()
    if msg.button and msg.button.startswith("cmd:"):
        return msg.button[4:]
    if msg.button and msg.button.startswith("lang:"):
        return "language"
    if text[:1] in "/!" and len(text) > 1:
        word = text[1:].split(maxsplit=1)[0].split("@")[0].casefold()
        known = _COMMANDS.get(word) or _PLAIN_WORDS.get(word)
        if text[0] == "!" and known is None and (in_case or not word.isalpha() or text[1] == " "):
            return None  # "!!!", "! ja" or "!wichtig" to a counsellor: text, not a command
        return known or word
    if text.casefold() in _BACK_WORDS or text.casefold() in _BACK_WORDS_MORE:
        return "back"
    words = " ".join(text.casefold().rstrip("?!. ").split())
    if words in _WHO_WORDS:
        return "who"
    plain = _PLAIN_WORDS.get(words)
    if plain is not None and not (in_case and plain in _PLEAS):
        return plain
    said = text.casefold().replace(",", " ").rstrip("?!. ").split()
    tokens = [w for w in said if w not in _POLITE]
    if " ".join(tokens) in _DELETE_WORDS:
        return "delete"
    return None


def language_choice(arg: str) -> str | None:
    """The language a ``/language`` argument names (code, own or German/English name)."""
    word = arg.strip().casefold()
    if word in SUPPORTED:
        return word
    return _LANGUAGE_WORDS.get(word)


#: Plain calls for help typed at "are you in danger?": they mean "yes, right now".
HELP_WORDS = frozenset(
    {
        "hilfe", "hilfe bitte", "bitte hilfe", "hilf mir", "helft mir", "hilfe hilfe",
        "ja hilfe", "notfall", "sos", "help", "help me", "please help", "help please",
        "emergency", "yes help",
    }
)  # fmt: skip


def asks_for_help(text: str) -> bool:
    """A bare call for help ("Hilfe!", "help me"), punctuation and case ignored."""
    words = "".join(c if c.isalnum() else " " for c in text.casefold()).split()
    return " ".join(words) in HELP_WORDS
