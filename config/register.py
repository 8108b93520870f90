"""How a person is addressed: one register per audience, consistently.

Decision (issue 12 part 8): people who write about themselves (wanting out, affected by
violence) are addressed informally ("du"), as the greeting does; relatives and
professionals, who write about someone else and often as adults in a role, formally
("Sie"). Before the audience is known the texts use "du". A catalog gives a formal text
as ``<key>.formal``; where it has none, the text needs no register (or the language has
none, as English). Only the person's own catalog is asked: a missing formal text never
falls back to another language.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from config.i18n import Translator, catalog, translator

#: Audiences addressed formally ("Sie").
FORMAL = frozenset({"relative", "professional"})


class FormalTranslator(Translator):
    """A translator that prefers ``<key>.formal`` where the locale's catalog has it."""

    __slots__ = ()

    def __call__(self, key: str, **params: Any) -> str:
        formal = f"{key}.formal"
        if formal in catalog(self.locale):
            return super().__call__(formal, **params)
        return super().__call__(key, **params)


@cache
def addressed(locale: str, audience: object) -> Translator:
    """The translator for a person: formal for relatives and professionals."""
    if str(audience) in FORMAL:
        return FormalTranslator(locale)
    return translator(locale)
