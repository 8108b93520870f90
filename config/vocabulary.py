"""The fixed vocabulary shared by intake, routing, storage and statistics."""

from __future__ import annotations

import enum


class Audience(enum.StrEnum):
    """Who is writing."""

    SELF = "self"
    RELATIVE = "relative"
    PROFESSIONAL = "professional"
    AFFECTED = "affected"


class Scene(enum.StrEnum):
    """Which scene the request is about."""

    RIGHT = "right"
    LEFT = "left"
    ISLAMIST = "islamist"
    CONSPIRACY = "conspiracy"
    OTHER = "other"


class Incident(enum.StrEnum):
    """What an affected person experienced."""

    VIOLENCE = "violence"
    ANTISEMITISM = "antisemitism"
    OTHER = "other"


class Kind(enum.StrEnum):
    """What a programme does; routing matches audiences to kinds."""

    EXIT = "exit"
    PREVENTION = "prevention"
    ADVICE = "advice"
    VICTIM_SUPPORT = "victim_support"
    INCIDENT_DOCUMENTATION = "incident_documentation"
    COORDINATION = "coordination"
    HOTLINE = "hotline"
    CLEARING = "clearing"


#: The 16 federal states (ISO 3166-2:DE suffixes) in German.
STATES: dict[str, str] = {
    "BW": "Baden-Württemberg",
    "BY": "Bayern",
    "BE": "Berlin",
    "BB": "Brandenburg",
    "HB": "Bremen",
    "HH": "Hamburg",
    "HE": "Hessen",
    "MV": "Mecklenburg-Vorpommern",
    "NI": "Niedersachsen",
    "NW": "Nordrhein-Westfalen",
    "RP": "Rheinland-Pfalz",
    "SL": "Saarland",
    "SN": "Sachsen",
    "ST": "Sachsen-Anhalt",
    "SH": "Schleswig-Holstein",
    "TH": "Thüringen",
}
#: A programme with this state code serves all of Germany.
NATIONAL = "DE"

#: Districts (Landkreise and kreisfreie Städte) of Mecklenburg-Vorpommern.
MV_DISTRICTS: dict[str, str] = {
    "HRO": "Rostock (Stadt)",
    "SN": "Schwerin",
    "LRO": "Landkreis Rostock",
    "LUP": "Ludwigslust-Parchim",
    "MSE": "Mecklenburgische Seenplatte",
    "NWM": "Nordwestmecklenburg",
    "VG": "Vorpommern-Greifswald",
    "VR": "Vorpommern-Rügen",
}

#: Languages a person may prefer for counselling (code -> own name).
LANGUAGES: dict[str, str] = {
    "de": "Deutsch",
    "en": "English",
    "ar": "العربية",
    "tr": "Türkçe",
    "ru": "Русский",
    "uk": "Українська",
    "fa": "فارسی",
}
