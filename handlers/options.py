"""Answer options of the intake questions and how typed answers are understood."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

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
            "get out",
            "myself",
            "selbst",
            "ich selbst",
        ),
        "relative": (
            "angehoerig",
            "eltern",
            "mutter",
            "vater",
            "mama",
            "papa",
            "sohn",
            "tochter",
            "freund",
            "freundin",
            "partner",
            "bruder",
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
        ),
    },
    "incident": {
        "violence": ("gewalt", "bedroh", "angriff", "geschlagen", "violence", "threat", "attack"),
        "antisemitism": ("antisemit", "juedisch", "juden", "jewish", "antisemitic", "antisemitism"),
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


def match(text: str, options: list[Option], *, partial: bool = True) -> Option | None:
    """Understand a typed answer: its number, its label, a synonym or a word start.

    Ambiguous input (two options fit equally well) returns None. With ``partial``
    False only the whole answer counts (number, label or synonym), never a word in it.
    """
    n = fold(text)
    if not n:
        return None
    if n.isdigit():
        i = int(n) - 1
        return options[i] if 0 <= i < len(options) else None
    for opt in options:
        if n == fold(opt.label) or n == opt.value.casefold() or n in opt.synonyms:
            return opt
    if not partial:
        return None
    best: tuple[int, Option] | None = None
    tie = False
    padded = f" {n}"
    for opt in options:
        for word in (fold(opt.label), *opt.synonyms):
            if len(word) >= 3 and f" {word}" in padded:
                if best is None or len(word) > best[0]:
                    best, tie = (len(word), opt), False
                elif len(word) == best[0] and best[1] is not opt:
                    tie = True
    if best is None or tie:
        return None
    return best[1]
