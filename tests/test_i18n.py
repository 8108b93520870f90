"""German and English catalogs are complete and consistent."""

from __future__ import annotations

import string

import pytest

from config.i18n import catalog, pick_locale, translator


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
