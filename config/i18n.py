"""Translations: gettext catalogs (``config/locales/<lang>.po``) read once via Babel.

Message ids are stable keys (``intake.consent.question``); German is the first
language, English is complete. A test checks both catalogs have the same keys
and placeholders. Russian, Ukrainian, Arabic and Turkish carry at least every
key of the crisis protocol (:data:`CRISIS_KEYS`, machine-drafted, review by a
native speaker pending); any other key falls back to English there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
SUPPORTED = ("de", "en", "ru", "uk", "ar", "tr")
DEFAULT = "de"
#: Keys every catalog must have: what a person in danger reads (a test checks it).
CRISIS_KEYS = (
    "crisis",
    "crisis.short",
    "crisis.suicide",
    "crisis.self_harm",
    "crisis.threat",
    "crisis.others",
    "crisis.medical",
    "crisis.contact.question",
    "crisis.contact.yes",
    "crisis.contact.opened",
    "crisis.case.alerted",
    "crisis.case.alerted_team",
    "crisis.closed",
    "crisis.closed.unknown",
    "limits.slow_down",
    "limits.busy",
    "limits.case_cap",
    "error.generic",
)


@cache
def catalog(locale: str) -> dict[str, str]:
    """The key -> text mapping of a locale (read once per process)."""
    with (LOCALES_DIR / f"{locale}.po").open("rb") as fh:
        cat = read_po(fh, locale=locale)
    return {str(m.id): str(m.string) for m in cat if m.id and isinstance(m.string, str)}


def pick_locale(hint: str | None, default: str = DEFAULT) -> str:
    """Choose the UI language from a platform hint (``de``, ``ru-RU``, ...); else English.

    Without a hint the default (German) applies.
    """
    if not hint:
        return default
    base = hint.split("-")[0].split("_")[0].lower()
    return base if base in SUPPORTED else "en"


class Translator:
    """Renders keys in one locale; a missing key falls back to English (German only for
    German: a person who reads neither gets the language they more likely read), then
    the key itself."""

    __slots__ = ("_fallback", "_texts", "locale")

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in SUPPORTED else DEFAULT
        self._texts = catalog(self.locale)
        self._fallback = catalog("de" if self.locale == "de" else "en")

    def __call__(self, key: str, **params: Any) -> str:
        text = self._texts.get(key) or self._fallback.get(key) or key
        return text.format(**params) if params else text


@cache
def translator(locale: str) -> Translator:
    """A shared translator per locale."""
    return Translator(locale)
