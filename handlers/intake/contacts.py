"""Contact lines of programmes, for people who do not want to (or cannot) chat."""

from __future__ import annotations

from typing import Any

from config.directory import Directory, Programme
from config.i18n import Translator


def national_contacts(directory: Directory, t: Translator) -> str:
    """Contact lines of the directory's fallback programmes and the crisis lines."""
    lines = [listed_contacts(directory.by_id[i], t) for i in directory.fallback]
    lines.append(t("crisis.short"))
    return "\n".join(line for line in lines if line)


def listed_contacts(programme: Programme, t: Translator) -> str:
    """A programme's contact line in a list, with the notice the directory attaches to it
    (the chat path shows it before referring; a list must not drop it). Empty if the
    programme published no contact."""
    line = contact_lines(programme, t)
    if line and programme.notice:
        line += "\n" + programme.notice[_lang(t)]
    return line


def _lang(t: Translator) -> Any:
    """The locale a directory text exists in (German and English; others read English)."""
    return t.locale if t.locale in ("de", "en") else "en"


def contact_lines(programme: Programme, t: Translator) -> str:
    """How to reach a programme without the chat, one line (empty if it published none)."""
    c = programme.contact
    parts = [
        *([t("contact.phone", phone=c.phone)] if c.phone else []),
        *(t("contact.email", email=e) for e in c.emails),
        *([t("contact.web", web=c.web)] if c.web else []),
        *([t("contact.postal", postal=c.postal)] if c.postal else []),
        *([t("contact.police")] if c.via_police else []),
    ]
    if not parts:
        return ""
    return f"{programme.name}: {', '.join(parts)}"
