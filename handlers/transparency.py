"""What a person is told before consent: who runs the bot and what a case keeps in clear.

The list of what a case keeps is derived from the ``cases`` table itself: every column
has a plain-language label (``privacy.field.<column>``), so a column added without a
label shows up as a raw key and fails the tests instead of going unmentioned.
"""

from __future__ import annotations

from typing import Any

from config.i18n import Translator
from config.settings import OperatorSettings
from storage.models import Case


def case_columns() -> tuple[str, ...]:
    """The columns of a stored case, in table order."""
    return tuple(column.name for column in Case.__table__.columns)


def case_fields(t: Translator) -> str:
    """Everything a case keeps in clear, in the reader's words (labels shared by several
    columns, such as the two hour-precise times, are said once)."""
    labels = (t(f"privacy.field.{name}") for name in case_columns())
    return ", ".join(dict.fromkeys(labels))


def notice_params(
    t: Translator, retention: dict[str, Any], controller: OperatorSettings
) -> dict[str, Any]:
    """Placeholders of the privacy notices: retention, controller, the case's fields."""
    return {
        **retention,
        "operator": controller.name or "",
        "privacy_contact": controller.privacy_contact or "",
        "privacy_url": controller.privacy_url or "",
        "case_fields": case_fields(t),
    }


def privacy_notice(
    t: Translator, key: str, retention: dict[str, Any], controller: OperatorSettings
) -> str:
    """A privacy notice as the person reads it (the translator already drops a doubled
    stop after a name such as "... e.V.": config.i18n.after_name)."""
    return t(key, **notice_params(t, retention, controller))
