"""Building blocks of the directory schema: texts per language, strict models."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

Locale = Literal["de", "en", "ru", "uk", "ar", "tr"]


class Texts(dict[str, str]):
    """An operator text per language (German and English required, the other four
    optional): a language without its own text reads the English one."""

    def __missing__(self, key: str) -> str:
        if key == "en":
            raise KeyError(key)
        return self["en"]


LocalText = Annotated[dict[Locale, str], AfterValidator(Texts)]


class Strict(BaseModel):
    """A directory model: unknown keys are errors, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def complete(text: LocalText, what: str) -> LocalText:
    """``text`` if it has German and English (the other languages may read English)."""
    if "de" not in text or "en" not in text:
        raise ValueError(f"{what} needs German ('de') and English ('en') text")
    return text


def mentions(text: str, name: str) -> bool:
    """Whether ``text`` contains ``name`` as a word of its own (any case)."""
    pattern = rf"(?<!\w){re.escape(name)}(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None
