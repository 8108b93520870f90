"""Answer options of the intake questions and how typed answers are understood."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

from config.i18n import Translator
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES

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


# Extra words people type, per question and value (German and English).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "consent": {
        "yes": ("ja", "yes", "ok", "okay", "einverstanden", "agree", "i agree", "zustimmen"),
        "more": ("mehr", "more", "info", "details", "datenschutz", "privacy"),
        "no": ("nein", "no", "nicht einverstanden", "disagree", "ablehnen"),
    },
    "safety": {
        "yes": ("ja", "yes", "gefahr", "danger", "ja gerade"),
        "no": ("nein", "no", "nein danke", "alles ok", "keine gefahr", "not in danger"),
    },
    "audience": {
        "self": (
            "ich",
            "raus",
            "aussteigen",
            "ausstieg",
            "aussteiger",
            "exit",
            "leave",
            "want out",
            "get out",
            "myself",
            "selbst",
            "ich selbst",
        ),
        "relative": (
            "angehoerig",
            "eltern",
            "mutter",
            "muetter",
            "vater",
            "vaeter",
            "mama",
            "papa",
            "sohn",
            "soehne",
            "tochter",
            "toechter",
            "freund",
            "freundin",
            "partner",
            "bruder",
            "brueder",
            "schwester",
            "familie",
            "relative",
            "mother",
            "father",
            "parent",
            "friend",
            "son",
            "daughter",
            "family",
            "sorgen",
            "worried",
        ),
        "professional": (
            "beruf",
            "beruflich",
            "lehrer",
            "lehrerin",
            "sozialarbeit",
            "schule",
            "bewaehrungshilfe",
            "polizei",
            "arbeitgeber",
            "jugendamt",
            "teacher",
            "social worker",
            "professional",
            "probation",
            "employer",
            "police",
            # people who meet someone through their work ("I'm a trainer in a company")
            "trainer",
            "ausbilder",
            "coach",
            "betrieb",
            "firma",
            "unternehmen",
            "kollege",
            "kollegin",
            "company",
            "workplace",
            "colleague",
            "erzieher",
            "sozialarbeiter",
            "streetwork",
            "jugendarbeit",
            "youth work",
            "school",
        ),
        "affected": (
            "betroffen",
            "opfer",
            "angegriffen",
            "victim",
            "affected",
            "attacked",
            "angefeindet",
            "bedroht worden",
            # What people write when it happened to them ("ich wurde beleidigt und
            # angespuckt"); "geschlagen" stays out: people leaving a scene say it too.
            "beleidigt",
            "beschimpft",
            "angespuckt",
            "bespuckt",
            "angepoebelt",
            "attackiert",
            "insulted",
            "spat at",
            "harassed",
        ),
    },
    "incident": {
        "violence": ("gewalt", "bedroh", "angriff", "geschlagen", "violence", "threat", "attack"),
        "antisemitism": (
            "antisemit",
            "juedisch",
            "juden",
            "jewish",
            "antisemitic",
            "antisemitism",
            "kippa",
            "synagoge",
            "synagogue",
        ),
        "other": ("anderes", "sonstiges", "other", "something else", "rassis", "racis"),
    },
    "scene": {
        "right": (
            "rechts",
            "rechtsextrem",
            "rechte",
            "nazi",
            "neonazi",
            "npd",
            "afd",
            "right",
            "far right",
            "right wing",
        ),
        "left": (
            "links",
            "linksextrem",
            "linke",
            "antifa",
            "autonome",
            "left",
            "far left",
            "left wing",
        ),
        "islamist": (
            "islam",
            "islamist",
            "islamistisch",
            "salafi",
            "salafist",
            "dschihad",
            "jihad",
            "religioes",
            "religion",
            "religious",
            "is",
        ),
        "conspiracy": (
            "verschwoerung",
            "reichsbuerger",
            "querdenk",
            "selbstverwalter",
            "qanon",
            "conspiracy",
            "sovereign citizen",
        ),
        "other": (
            "anderes",
            "weiss nicht",
            "unsicher",
            "keine ahnung",
            "other",
            "unsure",
            "dont know",
            "don't know",
            "not sure",
        ),
    },
    "state": {
        "MV": ("mecklenburg", "meck pomm", "mecklenburg vorpommern", "vorpommern", "m v"),
        "NW": ("nrw", "nordrhein", "westfalen", "north rhine", "north rhine westphalia"),
        "BY": ("bavaria", "bayern"),
        "BW": ("baden", "wuerttemberg", "baden wuerttemberg"),
        "NI": ("lower saxony", "niedersachsen"),
        "SN": ("saxony", "sachsen"),
        "ST": ("saxony anhalt", "sachsen anhalt", "anhalt"),
        "TH": ("thuringia", "thueringen"),
        "HE": ("hesse", "hessen"),
        "RP": ("rhineland", "rheinland", "rheinland pfalz", "rhineland palatinate", "pfalz"),
        "SH": ("schleswig", "holstein", "schleswig holstein"),
        "BB": ("brandenburg",),
        "BE": ("berlin",),
        "HB": ("bremen", "bremerhaven"),
        "HH": ("hamburg",),
        "SL": ("saarland", "saar"),
        "none": ("keine angabe", "ausland", "none", "abroad", "no answer", "weiss nicht"),
    },
    "district": {
        "HRO": ("rostock stadt", "hansestadt rostock"),
        "SN": ("schwerin",),
        "LRO": ("landkreis rostock", "guestrow", "bad doberan"),
        "LUP": ("ludwigslust", "parchim", "ludwigslust parchim"),
        "MSE": ("seenplatte", "neubrandenburg", "waren", "mecklenburgische seenplatte"),
        "NWM": ("nordwestmecklenburg", "wismar"),
        "VG": ("greifswald", "vorpommern greifswald", "anklam", "pasewalk"),
        "VR": ("ruegen", "stralsund", "vorpommern ruegen"),
        "skip": ("ueberspringen", "skip", "keine angabe", "weiter", "next"),
    },
    "prison": {
        "yes": ("ja", "yes", "haft", "knast", "gefaengnis", "jva", "prison", "jail"),
        "no": ("nein", "no", "nicht in haft", "not in prison"),
        # Optional (docs/PRIVACY.md): asked only to find a programme that works in prisons.
        "skip": (
            "moechte ich nicht sagen",
            "will ich nicht sagen",
            "sag ich nicht",
            "sage ich nicht",
            "keine angabe",
            "ueberspringen",
            "skip",
            "rather not say",
            "i'd rather not say",
            "prefer not to say",
        ),
    },
    "language": {
        "de": ("deutsch", "german"),
        "en": ("englisch", "english"),
        "ar": ("arabisch", "arabic"),
        "tr": ("tuerkisch", "turkish"),
        "ru": ("russisch", "russian"),
        "uk": ("ukrainisch", "ukrainian"),
        "fa": ("persisch", "farsi", "persian", "dari"),
        "other": ("andere", "other"),
    },
    "confirm": {
        "yes": ("ja", "yes", "stimmt", "richtig", "genau", "passt", "that's right", "right"),
        "no": (
            "nein",
            "no",
            "korrigieren",
            "stimmt nicht",
            "falsch",
            "correct it",
            "wrong",
            "not right",
        ),
    },
    "message": {"skip": ("nein", "no", "nein danke", "no thanks", "weiter", "skip", "nichts")},
    "delete": {
        "yes": ("ja", "yes", "loeschen", "delete"),
        "no": ("nein", "no", "abbrechen", "cancel"),
    },
}


_YES = ("да", "так", "نعم", "evet")
_NO = ("нет", "ні", "لا", "hayır", "hayir")
#: The same short answers in Russian, Ukrainian, Arabic and Turkish ("да" at consent must
#: be understood); folded like typed text.
SYNONYMS_MORE: dict[str, dict[str, tuple[str, ...]]] = {
    "consent": {
        "yes": (*_YES, "согласен", "согласна", "згоден", "згодна", "موافق", "kabul", "tamam"),
        "more": ("подробнее", "больше", "більше", "детальніше", "المزيد", "daha fazla", "bilgi"),
        "no": (*_NO, "не согласен", "не согласна", "не згоден", "не згодна"),
    },
    "safety": {"yes": _YES, "no": _NO},
    "prison": {"yes": _YES, "no": _NO},
    "delete": {"yes": _YES, "no": (*_NO, "отмена", "скасувати", "إلغاء", "vazgeç")},
    "message": {"skip": (*_NO, "дальше", "далі", "تابع", "devam")},
}


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
