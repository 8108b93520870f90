"""Greeting, privacy notice and consent: everything said before the person agrees.

Nothing is stored before consent. Declining leaves contacts (and, per region, the
regional ones) and erases the chat's state.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from config.i18n import Translator
from config.messages import InboundMessage
from handlers.base import Effect, Reply, Transition
from handlers.intake.contacts import listed_contacts, national_contacts
from handlers.intake.questions import ask, question_reply
from handlers.intake.states import REFERRAL_KEYS, IntakeContext, State
from handlers.transparency import privacy_notice


def greeting(t: Translator, ctx: IntakeContext, platform: str = "", facts: str = "") -> list[Reply]:
    """Greeting, privacy notice (who runs the bot, what a case keeps, what the platform
    itself can see) and consent: all of it before the person agrees to anything.

    ``facts`` (see handlers.understand.pack) is what the first message told us: it rides
    in the consent button, so it is used only after a yes and never stored before.
    """
    retention = ctx.retention
    notice = privacy_notice(t, "privacy.notice", retention, ctx.controller)
    key = f"privacy.platform.{platform}"
    if platform and t(key) != key:
        notice += "\n" + t(key)
    if platform == "telegram" and retention.get("matrix"):
        notice += "\n" + t("privacy.platform.telegram.matrix", **retention)
    consent = question_reply(State.CONSENT, t)
    buttons = consent.buttons
    if facts:
        buttons = tuple(
            tuple(
                replace(b, data=f"{b.data}:{facts}") if b.data == "consent:yes" else b for b in row
            )
            for row in buttons
        )
    return [Reply(t("greeting")), Reply(f"{notice}\n\n{consent.text}", buttons)]


def consent_answer(
    ctx: IntakeContext, value: str, profile: dict[str, Any], t: Translator, replies: list[Reply]
) -> Transition:
    """The answer to the consent question: yes, more details, or no (contacts, erase)."""
    if value == "yes":
        kept = {k: profile[k] for k in REFERRAL_KEYS if k in profile}
        profile = {**kept, "consent": True, "history": []}
        return ask(State.SAFETY, profile, t, [*replies, Reply(t("consent.thanks"))])
    if value == "more":
        consent = question_reply(State.CONSENT, t)
        details = privacy_notice(t, "privacy.details", ctx.retention, ctx.controller)
        return Transition(
            State.CONSENT.value,
            profile,
            [*replies, Reply(f"{details}\n\n{consent.text}", consent.buttons)],
        )
    text = t("consent.declined", contacts=national_contacts(ctx.directory, t))
    regions = question_reply(State.STATE, t, with_back=False).buttons
    buttons = tuple(tuple(replace(b, data="region:" + b.data[6:]) for b in row) for row in regions)
    return Transition(State.NEW.value, {}, [*replies, Reply(text, buttons)], [Effect("erase")])


def declined_region(ctx: IntakeContext, msg: InboundMessage, t: Translator) -> Transition:
    """Contacts for a region picked after declining consent; nothing is stored."""
    region = (msg.button or "").partition(":")[2]
    regional = [p for p in ctx.directory.programmes if region in p.states and not p.national]
    national = [p for p in ctx.directory.programmes if p.national]
    lines = [line for line in (listed_contacts(p, t) for p in regional) if line]
    key = "declined.contacts" if lines else "declined.contacts.none"
    lines += [line for line in (listed_contacts(p, t) for p in national) if line]
    lines.append(t("crisis.short"))
    text = t(key, contacts="\n".join(lines))
    return Transition(State.NEW.value, {}, [Reply(text)], [Effect("erase")])
