"""Translations: gettext catalogs (``config/locales/<lang>.po``) read once via Babel.

Message ids are stable keys (``intake.consent.question``). Six languages are complete:
German (first), English, Russian, Ukrainian, Arabic (right-to-left) and Turkish; a test
checks that every catalog has the same keys and placeholders. The four drafted
catalogs say in their header (``X-Review-State``) that a native speaker has not yet
reviewed them; docs/LANGUAGES.md says how a programme can have that done.

Numbers and dates are rendered per locale inside the templates:

- ``{hours:#n.hours}``: the value is a count, rendered with the plural key
  ``n.hours`` (gettext ``msgid_plural`` entries, Babel's plural rule of the locale;
  Russian and Ukrainian have three forms, Arabic six);
- a :class:`~datetime.datetime` or :class:`~datetime.date` value is rendered with
  ``babel.dates`` in the reader's locale (weekday, day, month, time).

In Arabic every one-line value put into a template (a case code, an alias, a number)
is wrapped in Unicode isolates (U+2068 ... U+2069) so that Latin or numeric runs do not
reorder the right-to-left sentence around them.
"""

from __future__ import annotations

import gettext
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_skeleton, format_time
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
SUPPORTED = ("de", "en", "ru", "uk", "ar", "tr")
DEFAULT = "de"
#: Each language by its own name (what the language buttons show).
LANGUAGE_NAMES: dict[str, str] = {
    "de": "Deutsch",
    "en": "English",
    "ru": "Русский",
    "uk": "Українська",
    "ar": "العربية",
    "tr": "Türkçe",
}
#: Languages written right to left.
RTL = frozenset({"ar"})
FSI, PDI = "\u2068", "\u2069"
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
    "crisis.delayed",
    "crisis.closed.unknown",
    "limits.slow_down",
    "limits.busy",
    "limits.case_cap",
    "error.generic",
)

Text = str | tuple[str, ...]


@cache
def entries(locale: str) -> dict[str, Text]:
    """Every entry of a locale: a text, or the plural forms of a ``msgid_plural`` key."""
    with (LOCALES_DIR / f"{locale}.po").open("rb") as fh:
        cat = read_po(fh, locale=locale)
    out: dict[str, Text] = {}
    for m in cat:
        if not m.id:
            continue
        if isinstance(m.id, (list, tuple)):
            forms = tuple(str(s) for s in (m.string or ()))
            if any(forms):
                out[str(m.id[0])] = forms
        elif isinstance(m.string, str) and m.string:
            out[str(m.id)] = m.string
    return out


#: Marks a name may end in ("JUMP!", "API e.V."): a full stop after it is not repeated.
NAME_END_MARKS = ".!?…"
_FORMATTER = string.Formatter()


def after_name(name: str, following: str) -> str:
    """The text that follows ``name``, without a mark the name already ends in.

    ``"bei " + name + after_name(name, ". Danke")``: "bei JUMP! Danke", "bei API e.V.
    Danke" - never "JUMP!." or "e.V..". Other punctuation stays ("e.V.,", "JUMP!:").
    """
    if not following or not name or name[-1] not in NAME_END_MARKS:
        return following
    first = following[0]
    if (first == "." and not following.startswith("..")) or (first == name[-1] in "!?"):
        return following[1:]
    return following


def fill(
    text: str, params: Mapping[str, Any], formatter: string.Formatter = _FORMATTER
) -> str:
    """``text.format(**params)`` (with a locale's ``formatter``: plurals, dates, isolates),
    with :func:`after_name` applied after every placeholder.

    One rule for every name in every catalog: "Deine Anfrage ist bei {programme}." reads
    "... bei JUMP!" for a programme called "JUMP!".
    """
    out: list[str] = []
    previous = ""
    for literal, field, spec, conversion in _FORMATTER.parse(text):
        out.append(after_name(previous, literal) if previous else literal)
        if field is None:
            previous = ""
            continue
        value, _ = formatter.get_field(field, (), params)
        value = formatter.convert_field(value, conversion)
        previous = formatter.format_field(value, spec or "")
        out.append(previous)
    return "".join(out)


@cache
def catalog(locale: str) -> dict[str, str]:
    """The key -> text mapping of a locale (plural keys give their last form)."""
    return {k: v if isinstance(v, str) else v[-1] for k, v in entries(locale).items()}


@cache
def plural_rule(locale: str) -> Callable[[int], int]:
    """Babel's gettext plural rule of a locale: count -> index of the form."""
    return gettext.c2py(get_plural(locale).plural_expr)


def pick_locale(hint: str | None, default: str = DEFAULT) -> str:
    """Choose the UI language from a platform hint (``de``, ``ru-RU``, ...); else English.

    Without a hint the default (German) applies.
    """
    if not hint:
        return default
    base = hint.split("-")[0].split("_")[0].lower()
    return base if base in SUPPORTED else "en"


def _rtl_letter(ch: str) -> bool:
    return unicodedata.bidirectional(ch) in ("R", "AL")


def needs_isolate(value: str) -> bool:
    """A one-line value without right-to-left letters (a code, alias, number, link):
    isolated inside right-to-left text so it does not reorder its neighbours. Arabic
    values are left alone: content inside isolates does not count for a line's
    direction, so an isolated Arabic line would be laid out left to right."""
    return bool(value.strip()) and "\n" not in value and not any(map(_rtl_letter, value))


def isolate(value: str) -> str:
    """Wrap a value in first-strong isolates (for right-to-left text)."""
    return f"{FSI}{value}{PDI}"


class _Formatter(string.Formatter):
    def __init__(self, translator: Translator) -> None:
        self._t = translator

    def format_field(self, value: Any, format_spec: str) -> str:
        t = self._t
        if format_spec.startswith("#"):
            text = t.n(format_spec[1:], int(value))
        elif isinstance(value, datetime):
            text = t.datetime(value)
        elif isinstance(value, date):
            text = t.date(value)
        else:
            text = super().format_field(value, format_spec)
        if t.rtl and needs_isolate(text):
            text = isolate(text)
        return text


class Translator:
    """Renders keys in one locale; a missing key falls back to English (German only for
    German: a person who reads neither gets the language they more likely read), then
    the key itself."""

    __slots__ = ("_fallback", "_fmt", "_texts", "locale", "rtl")

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in SUPPORTED else DEFAULT
        self.rtl = self.locale in RTL
        self._texts = entries(self.locale)
        self._fallback = entries("de" if self.locale == "de" else "en")
        self._fmt = _Formatter(self)

    def _raw(self, key: str) -> Text | None:
        return self._texts.get(key) or self._fallback.get(key)

    def __call__(self, key: str, **params: Any) -> str:
        raw = self._raw(key)
        if raw is None:
            return key
        text = raw if isinstance(raw, str) else raw[-1]
        return fill(text, params, self._fmt) if params else text

    def n(self, key: str, count: int, **params: Any) -> str:
        """A plural key for ``count`` (``{n}`` in its forms is the count)."""
        raw = self._raw(key)
        if raw is None:
            return f"{count} {key}"
        if isinstance(raw, str):
            forms: Sequence[str] = (raw,)
            index = 0
        else:
            forms = raw
            index = plural_rule(self.locale if raw is self._texts.get(key) else "en")(count)
        text = forms[min(index, len(forms) - 1)]
        return text.format(n=count, **params)

    def datetime(self, value: datetime) -> str:
        """Weekday, day, month and time in the reader's locale (in the value's zone)."""
        day = format_skeleton("MMMEd", value, locale=self.locale)
        return f"{day} {format_time(value, 'HH:mm', locale=self.locale)}"

    def date(self, value: date) -> str:
        """A date in the reader's locale (day, month name, year)."""
        return format_date(value, "long", locale=self.locale)

    def language_name(self, code: str) -> str:
        """A language by its own name (``Русский``), or the code."""
        return LANGUAGE_NAMES.get(code, code)


@cache
def translator(locale: str) -> Translator:
    """A shared translator per locale."""
    return Translator(locale)


def placeholders(text: str) -> set[str]:
    """Field names (with their plural spec, if any) of a template."""
    return {f"{f}:{s}" if s else f for _, f, s, _ in string.Formatter().parse(text) if f}


def plural_keys(texts: Mapping[str, Text]) -> set[str]:
    """Keys that are plural entries."""
    return {k for k, v in texts.items() if not isinstance(v, str)}
