"""Pure steps on an inbound message before and around its unit of work: text that can
be stored, the crisis reply key for a message that cannot be handled in full, and the
language of a new contact's first messages."""

from __future__ import annotations

from dataclasses import replace

from config.i18n import SUPPORTED
from config.langdetect import detect_language
from config.messages import InboundMessage
from handlers import intake
from handlers.safety import detect
from storage.models import Contact


def _valid(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates from a JSON escape: cannot be stored
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean(msg: InboundMessage) -> InboundMessage:
    """The message with text fields that can be encoded (cheap when they already can)."""
    fields = (msg.text, msg.sender_id, msg.button or "", msg.locale or "", msg.update_id)
    if all(_valid(f) is f for f in fields):
        return msg
    return replace(
        msg,
        text=_valid(msg.text),
        sender_id=_valid(msg.sender_id),
        button=_valid(msg.button) if msg.button else msg.button,
        locale=_valid(msg.locale) if msg.locale else msg.locale,
        update_id=_valid(msg.update_id),
    )


def crisis_key(msg: InboundMessage) -> str | None:
    """The crisis reply's key for a message that cannot be handled in full (rate limit,
    busy, database down): the category's numbers, or all of them for a pressed
    "contact me now" / "yes, right now" (no case can be opened, so no one would call)."""
    danger = detect(msg.text) if msg.text else None
    if danger is not None:
        return f"crisis.{danger.value}"
    if msg.button and (msg.button.startswith(intake.CONTACT_NOW) or msg.button == "safety:yes"):
        return "crisis"
    return None


#: The script each language is written in (detection switches a consent in progress
#: only across scripts: a person who chose English and types "ja" stays in English).
_SCRIPT = {"de": "latin", "en": "latin", "tr": "latin", "ru": "cyrillic", "uk": "cyrillic"}


def first_language(contact: Contact, msg: InboundMessage) -> InboundMessage:
    """Detect the language of a new contact's first messages (off the hot path: only
    before consent, only free text) and follow it.

    A first message sets the contact's locale, so the greeting is in the person's
    language (a supported platform hint stands, except against Cyrillic or Arabic text).
    At consent, text in another script ("да" under a German notice) asks again in the
    detected language: consent is informed only in a language the person reads. A
    crisis text is never rewritten (its numbers come in the new language).
    """
    new, consent = intake.State.NEW.value, intake.State.CONSENT.value
    if contact.state not in (new, consent) or msg.button or not msg.text:
        return msg
    if intake.command_of(msg) is not None:
        return msg
    found = detect_language(msg.text)
    if found is None or found == contact.locale:
        return msg
    same_script = _SCRIPT.get(found, found) == _SCRIPT.get(contact.locale, contact.locale)
    hint = (msg.locale or "").replace("_", "-").split("-")[0].lower()
    hinted = hint in SUPPORTED and hint == contact.locale  # "fr" -> English is no hint
    if contact.state == new:
        # A supported platform hint stands, unless the text is in a script its language
        # is not written in and that is not Latin (Cyrillic from a German phone): people
        # with a Russian phone may type German or transliterate, the reverse is rare.
        if not hinted or (not same_script and _SCRIPT.get(found, found) != "latin"):
            contact.locale = found
        return msg
    if same_script:
        return msg
    contact.locale = found
    if detect(msg.text) is not None:
        return msg
    return replace(msg, text="", button=f"lang:{found}")
