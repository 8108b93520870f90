"""Danger during the intake: numbers at once, "contact me now", the urgent case.

A danger message gets the numbers for its category at every step, then (without a
case) one button: "should someone contact you now?". Pressing it, or answering "yes,
right now" to the safety question, opens an urgent case at once with only what is
known; the remaining questions are skipped.
"""

from __future__ import annotations

from typing import Any

from config.directory import Directory
from config.i18n import Translator
from config.messages import Button
from config.vocabulary import Kind
from handlers.base import Effect, Reply, Transition
from handlers.intake.handover import to_profile
from handlers.intake.states import REFERRAL_KEYS, IntakeContext, State
from handlers.routing import Profile, Route, route
from handlers.safety import Danger

#: Button data prefix of "yes, contact me now" (the category travels in the button:
#: nothing is stored before that press, which is the consent).
CONTACT_NOW = "crisis:contact"


def crisis_reply(t: Translator, danger: Danger | None = None) -> Reply:
    """Emergency numbers for the kind of danger (all of them if unknown); never queued."""
    return Reply(t(f"crisis.{danger.value}" if danger else "crisis"), urgent=True)


def contact_now(t: Translator, danger: Danger | None) -> Reply:
    """The one-button question: should someone contact the person now?"""
    data = f"{CONTACT_NOW}:{danger.value}" if danger else CONTACT_NOW
    return Reply(t("crisis.contact.question"), ((Button(t("crisis.contact.yes"), data),),))


def danger_of_button(button: str) -> Danger | None:
    """The category carried by a contact-now button (None if absent or unknown)."""
    return danger_of(button[len(CONTACT_NOW) + 1 :])


def danger_of(value: str) -> Danger | None:
    """A danger category from button data or the profile (None if absent or unknown)."""
    try:
        return Danger(value) if value else None
    except ValueError:
        return None


def offers_contact(reply: Reply) -> bool:
    """Whether a reply is the "contact me now" question."""
    return any(b.data.startswith(CONTACT_NOW) for row in reply.buttons for b in row)


def urgent_case(
    ctx: IntakeContext,
    profile: dict[str, Any],
    t: Translator,
    danger: Danger | None,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """Open an urgent case at once with only what is known; skip the other questions.

    Before consent the press of "contact me now" is the consent, for this case and
    only what it carries: the urgent mark, the kind of danger, a referral link.
    """
    if not profile.get("consent"):
        profile = {k: profile[k] for k in REFERRAL_KEYS if k in profile}
        profile["consent"] = True
    known = danger.value if danger else profile.get("danger")
    prof = to_profile(profile, t.locale)
    result = urgent_route(ctx.directory, prof)
    if not any(e.kind == "mark_urgent" for e in effects):
        effects.append(Effect("mark_urgent", {"danger": known}))
    effects.append(
        Effect(
            "open_case",
            {
                "route": result,
                "message": None,
                "profile": prof,
                "danger": known,
                "audience_known": "audience" in profile,
            },
        )
    )
    replies.append(Reply(t("crisis.contact.opened")))
    nxt = State.CASE if result.opens_case else State.REFERRED
    return Transition(nxt.value, profile, replies, effects)


def urgent_route(directory: Directory, profile: Profile) -> Route:
    """Where an urgent case goes: the usual route if counsellors chat there, else the
    state's coordination office if it chats, else the first chatting fallback."""
    result = route(directory, profile)
    if result.opens_case:
        return result
    for p in directory.programmes:
        if p.kind is Kind.COORDINATION and profile.state in p.states and p.chat_enabled:
            return Route(p, "coordination", (("state", profile.state or ""),))
    for pid in directory.fallback:
        p = directory.by_id[pid]
        if p.chat_enabled:
            return Route(p, "fallback", (("fallback", "directory"),))
    return result
