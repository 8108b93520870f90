"""Six complete catalogs (de, en, ru, uk, ar, tr): same keys and placeholders, plural
forms and dates per locale, right-to-left Arabic, the crisis protocol first."""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from config.i18n import (
    CRISIS_KEYS,
    FSI,
    LANGUAGE_NAMES,
    LOCALES_DIR,
    PDI,
    SUPPORTED,
    catalog,
    entries,
    pick_locale,
    placeholders,
    plural_keys,
    translator,
)


def plural_specs(text: str) -> set[str]:
    """Plural keys a template uses ("{hours:#n.hours}" -> "n.hours")."""
    return {s[1:] for _, _, s, _ in string.Formatter().parse(text) if s and s.startswith("#")}


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_same_keys_in_both_languages() -> None:
    de, en = catalog("de"), catalog("en")
    assert set(de) == set(en)
    assert len(de) > 100


@pytest.mark.parametrize("key", sorted(catalog("de")))
def test_text_present_and_placeholders_match(key: str) -> None:
    de, en = catalog("de")[key], catalog("en")[key]
    assert de.strip()
    assert en.strip()
    assert fields(de) == fields(en)


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (None, "de"),
        ("de", "de"),
        ("de-AT", "de"),
        ("en-US", "en"),
        ("ar", "ar"),
        ("ru-RU", "ru"),
        ("uk", "uk"),
        ("tr_TR", "tr"),
        ("fr", "en"),
        ("", "de"),
    ],
)
def test_pick_locale(hint: str | None, expected: str) -> None:
    assert pick_locale(hint) == expected


def test_translator_formats_and_falls_back() -> None:
    t = translator("en")
    assert "{" not in t("route.info", text="x")
    assert t("no.such.key") == "no.such.key"


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_catalog_has_every_crisis_key(locale: str) -> None:
    """A person in danger reads the protocol in their language (issue 11)."""
    texts = catalog(locale)
    missing = [k for k in CRISIS_KEYS if not texts.get(k, "").strip()]
    assert missing == []
    for key in CRISIS_KEYS:
        assert fields(texts[key]) == fields(catalog("en")[key]), key


@pytest.mark.parametrize("locale", [c for c in SUPPORTED if c not in ("de", "en")])
def test_drafted_catalogs_are_marked_for_review_and_complete(locale: str) -> None:
    """Issue 12 part 1: every text in the person's language, no English fallback; the
    header says a native speaker has not reviewed it yet."""
    from config.i18n import LOCALES_DIR

    head = (LOCALES_DIR / f"{locale}.po").read_text(encoding="utf-8")[:1200]
    assert "X-Review-State: machine-drafted, native review pending" in head
    t = translator(locale)
    assert t.locale == locale
    for key in ("greeting", "consent.question", "route.case", "help.person", "crisis"):
        assert t(key) != translator("en")(key), key


@pytest.mark.parametrize("locale", SUPPORTED)
@pytest.mark.parametrize(
    "key", ["crisis.suicide", "crisis.self_harm", "crisis.threat", "crisis.others"]
)
def test_crisis_numbers_come_in_the_first_two_lines(locale: str, key: str) -> None:
    head = "\n".join(catalog(locale)[key].splitlines()[:2])
    expected = {
        "crisis.suicide": "0800 111 0 111",
        "crisis.self_harm": "0800 111 0 111",
        "crisis.threat": "110",
        "crisis.others": "110",
    }[key]
    assert expected in head
    assert "112" in catalog(locale)["crisis.medical"].splitlines()[0]


#: Words a lock screen must not show in the first line (privacy check 19), per language.
GIVEAWAYS = {
    "de": ("ausstieg", "extrem", "szene", "programm"),
    "en": ("exit", "extrem", "scene", "programme"),
    "ru": ("экстрем", "сцен", "выход", "программ"),
    "uk": ("екстрем", "сцен", "вихід", "програм"),
    "ar": ("تطرف", "متطرف", "الخروج", "برنامج"),
    "tr": ("aşırı", "radikal", "çevre", "program"),
}


@pytest.mark.parametrize("locale", sorted(GIVEAWAYS))
def test_first_line_of_crisis_texts_gives_nothing_away(locale: str) -> None:
    texts = catalog(locale)
    for key in CRISIS_KEYS:
        first = texts[key].splitlines()[0].casefold()
        assert not [w for w in GIVEAWAYS[locale] if w in first], (key, first)


# ---------------------------------------------------------------- six languages (issue 12)

LOCALES = SUPPORTED  # a language added to config.i18n is checked here at once


@pytest.mark.parametrize("locale", LOCALES)
def test_every_catalog_has_the_same_keys_and_placeholders(locale: str) -> None:
    """Catalog completeness: six languages, the same keys, the same placeholders (plural
    specs included), no empty text."""
    german, texts = entries("de"), entries(locale)
    assert sorted(set(german) - set(texts)) == []
    assert sorted(set(texts) - set(german)) == []
    for key, text in texts.items():
        forms = (text,) if isinstance(text, str) else text
        reference = german[key]
        ref = reference if isinstance(reference, str) else reference[-1]
        assert isinstance(text, str) == isinstance(reference, str), key
        for form in forms:
            assert form.strip(), key
            if isinstance(text, str):
                assert placeholders(form) == placeholders(ref), key
            else:  # a plural form may spell the number out ("ساعتين"): only {n} is allowed
                assert placeholders(form) <= {"n"}, key


@pytest.mark.parametrize("locale", LOCALES)
def test_plural_entries_have_the_locales_number_of_forms(locale: str) -> None:
    """Babel's plural rule per locale: Russian and Ukrainian three forms, Arabic six."""
    from babel.messages.plurals import get_plural

    texts = entries(locale)
    plurals = plural_keys(texts)
    assert {"n.hours", "n.days", "n.hours.after", "n.days.after"} <= plurals
    head = (LOCALES_DIR / f"{locale}.po").read_text(encoding="utf-8")[:1500]
    assert get_plural(locale).plural_forms in head
    for key in plurals:
        assert len(texts[key]) == get_plural(locale).num_plurals, key
    for key in {k for v in texts.values() if isinstance(v, str) for k in plural_specs(v)}:
        assert key in plurals, key


@pytest.mark.parametrize(
    ("locale", "count", "expected"),
    [
        ("de", 1, "nach 1 Tag"),
        ("de", 30, "nach 30 Tagen"),
        ("en", 1, "after 1 day"),
        ("ru", 1, "через 1 день"),
        ("ru", 3, "через 3 дня"),
        ("ru", 11, "через 11 дней"),
        ("ru", 21, "через 21 день"),
        ("uk", 2, "через 2 дні"),
        ("uk", 5, "через 5 днів"),
        ("ar", 1, "بعد يوم واحد"),
        ("ar", 2, "بعد يومين"),
        ("ar", 5, "بعد 5 أيام"),
        ("ar", 30, "بعد 30 يومًا"),
        ("tr", 30, "30 gün sonra"),
    ],
)
def test_numbers_take_the_locales_plural_form(locale: str, count: int, expected: str) -> None:
    assert translator(locale).n("n.days.after", count) == expected
    who = {"operator": "X", "privacy_contact": "Y", "privacy_url": "https://z", "case_fields": "-"}
    notice = translator(locale)(
        "privacy.notice", intake_hours=48, held_days=count, case_days=90, **who
    )
    assert expected in notice
    assert "{" not in notice


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de", "3. Dezember 2026"),
        ("en", "December 3, 2026"),
        ("ru", "3 декабря 2026"),
        ("uk", "3 грудня 2026"),
        ("tr", "3 Aralık 2026"),
        ("ar", "3 ديسمبر 2026"),
    ],
)
def test_dates_are_written_per_locale(locale: str, expected: str) -> None:
    day = date(2026, 12, 3)
    assert expected in translator(locale)("inactive.warning", date=day)
    at = datetime(2026, 12, 3, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    when = translator(locale)("crisis.closed", when=at)
    assert "09:30" in when
    assert "{" not in when


def _first_strong(line: str) -> str | None:
    """The bidi class of a line's first strong character, skipping isolated runs (as the
    Unicode bidi algorithm does when it picks a paragraph's direction)."""
    depth = 0
    for ch in line:
        if ch == FSI:
            depth += 1
        elif ch == PDI:
            depth = max(0, depth - 1)
        elif depth == 0:
            kind = unicodedata.bidirectional(ch)
            if kind in ("L", "R", "AL"):
                return kind
    return None


def test_arabic_lines_start_right_to_left() -> None:
    """Telegram and Element pick each paragraph's direction from its first strong letter:
    every Arabic line must start with an Arabic letter (a command or number comes after
    the words, "من يقرأ؟ /who"), or the line is laid out left to right."""
    wrong = {}
    for key, text in catalog("ar").items():
        sample = re.sub(r"\{[^}]*\}", "", text)
        for line in sample.splitlines():
            arabic = any(unicodedata.bidirectional(c) in ("R", "AL") for c in line)
            if arabic and _first_strong(line) != "AL":
                wrong[key] = line
    assert wrong == {}


def test_arabic_isolates_latin_values_but_not_arabic_ones() -> None:
    """A case code inside Arabic text is wrapped in U+2068/U+2069 (first-strong isolate)
    so "K-AB12" keeps its order and does not drag the colon and words around it; Arabic
    values stay bare (isolated content does not count for a line's direction)."""
    t = translator("ar")
    text = t(
        "route.case",
        reasons=t("reason.audience.self"),
        code="K-AB12",
        availability=t("availability.response", hours=24),
    )
    assert f"{FSI}K-AB12{PDI}" in text
    assert FSI + t("reason.audience.self") not in text
    for line in text.splitlines():
        assert _first_strong(line) == "AL", line
    assert FSI not in translator("de")("route.case", reasons="x", code="K-AB12", availability="")


def test_language_names_are_their_own() -> None:
    assert [LANGUAGE_NAMES[c] for c in LOCALES] == [
        "Deutsch",
        "English",
        "Русский",
        "Українська",
        "العربية",
        "Türkçe",
    ]
    for locale in LOCALES:
        assert catalog(locale)[f"language.switch.{locale}"] == LANGUAGE_NAMES[locale]
