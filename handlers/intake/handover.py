"""Routing the answers to a programme and handing over to casework.

A programme run by a state authority is named first and the person chooses: continue,
another programme, or its contact details only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from config.i18n import Translator
from config.messages import Button, InboundMessage
from config.vocabulary import Audience, Incident, Scene
from handlers.base import Effect, Reply, Transition
from handlers.intake.contacts import listed_contacts
from handlers.intake.states import IntakeContext, State
from handlers.routing import Profile, Route, chat_fallback, route, without_authority

#: Choices before a hand-over to a programme run by a state authority.
AUTHORITY_CHOICES = ("continue", "alternative", "contacts")


def to_profile(profile: dict[str, Any], locale: str = "de") -> Profile:
    """Turn stored answers into a routing profile; without an answer about the language
    of counselling, the language the person reads here (``locale``) is theirs."""
    state = profile.get("state")
    district = profile.get("district")
    return Profile(
        audience=Audience(profile.get("audience", Audience.SELF)),
        scene=Scene(profile["scene"]) if profile.get("scene") else None,
        state=state if state and state != "none" else None,
        district=district if district and district != "skip" else None,
        in_prison={"yes": True, "no": False}.get(profile.get("prison", "")),
        language=(
            profile["language"] if profile.get("language") not in (None, "other") else locale
        ),
        incident=Incident(profile["incident"]) if profile.get("incident") else None,
        preferred=profile.get("ref"),
        source=profile.get("source"),
    )


def referral_warned(
    ctx: IntakeContext, reply: Reply, profile: dict[str, Any], t: Translator
) -> Reply:
    """The message question, warned first when the answers lead to a programme that takes
    no chats: what the person writes next would not be passed on (route.unsent), and
    they should know that before they write it, not after."""
    if not any(b.data == "message:skip" for row in reply.buttons for b in row):
        return reply
    if route(ctx.directory, to_profile(profile)).opens_case:
        return reply
    return replace(reply, text=f"{t('message.referral_only')}\n{reply.text}")


def finish(
    ctx: IntakeContext,
    profile: dict[str, Any],
    text: str | None,
    t: Translator,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """After the last question: tell about a state authority first, else open the case."""
    prof = to_profile(profile, t.locale)
    result = route(ctx.directory, prof)
    if result.opens_case and result.programme.state_authority:
        # Told before a word goes there; the typed message waits (encrypted, intake expiry).
        if text:
            profile["pending"] = text
        reply = authority_reply(result, without_authority(ctx.directory, prof), t)
        return Transition(State.AUTHORITY.value, profile, [*replies, reply], effects)
    return open_case(result, prof, profile, text, replies, effects)


def open_case(
    result: Route,
    prof: Profile,
    profile: dict[str, Any],
    text: str | None,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """Hand over to casework: a case, or a referral when the programme takes no chats."""
    data = {"route": result, "message": text, "profile": prof, "danger": profile.get("danger")}
    effects.append(Effect("open_case", data))  # the kind of danger told during the intake
    nxt = State.CASE if result.opens_case else State.REFERRED
    return Transition(nxt.value, profile, replies, effects)


def authority_reply(result: Route, other: Route | None, t: Translator) -> Reply:
    """One sentence on who runs the programme, and the choice: continue, another
    programme (when routing has one that takes chats), or contact details only."""
    programme = result.programme
    text = t(
        "authority.notice",
        programme=programme.name,
        authority=programme.operator_name or programme.name,
    )
    rows = [(Button(t("authority.button.continue"), "authority:continue"),)]
    if other is not None:
        text += "\n" + t("authority.part.alternative", alternative=other.programme.name)
        rows.append((Button(t("authority.button.alternative"), "authority:alternative"),))
    rows.append((Button(t("authority.button.contacts"), "authority:contacts"),))
    rows.append((Button(t("nav.back"), "cmd:back"),))
    return Reply(f"{text}\n\n{t('authority.question')}", tuple(rows))


def authority_choice(
    ctx: IntakeContext,
    profile: dict[str, Any],
    msg: InboundMessage,
    t: Translator,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """The person's choice before a hand-over to a state authority's programme."""
    prof = to_profile(profile, t.locale)
    result, other = _authority_routes(ctx, profile, prof)
    choice = _authority_answer(msg, t, other is not None)
    if choice is None or (replies and not msg.button):  # a crisis text is no choice
        again = [] if replies else [Reply(t("error.not_understood"))]
        reply = authority_reply(result, other, t)
        return Transition(State.AUTHORITY.value, profile, [*replies, *again, reply], effects)
    text = profile.pop("pending", None)
    profile.pop("via", None)
    if choice == "contacts":
        programme = result.programme
        contacts = listed_contacts(programme, t) or t("contact.none")
        replies.append(Reply(t("authority.contacts", programme=programme.name, contacts=contacts)))
        if text:  # nothing typed is dropped silently
            replies.append(Reply(t("route.unsent")))
        return Transition(State.NEW.value, {}, replies, [*effects, Effect("erase")])
    chosen = replace(other, step="chosen") if choice == "alternative" and other else result
    return open_case(chosen, prof, profile, text, replies, effects)


def _authority_routes(
    ctx: IntakeContext, profile: dict[str, Any], prof: Profile
) -> tuple[Route, Route | None]:
    """The route the choice is about and the alternative, worked out again (the directory
    may have been reloaded): the intake's route, or the chat team a referred person asked
    for (no alternative there: that team is the directory's last resort)."""
    fallback = chat_fallback(ctx.directory) if profile.get("via") == "chat" else None
    if fallback is not None:
        return Route(fallback, "fallback", (("fallback", "directory"),)), None
    return route(ctx.directory, prof), without_authority(ctx.directory, prof)


def authority_again(ctx: IntakeContext, profile: dict[str, Any], t: Translator) -> Reply:
    """The authority notice and choice once more (after a language switch or /delete)."""
    return authority_reply(*_authority_routes(ctx, profile, to_profile(profile, t.locale)), t)


def _authority_answer(msg: InboundMessage, t: Translator, alternative: bool) -> str | None:
    offered = [c for c in AUTHORITY_CHOICES if alternative or c != "alternative"]
    if msg.button:
        prefix, _, value = msg.button.partition(":")
        return value if prefix == State.AUTHORITY.value and value in offered else None
    typed = msg.text.strip().casefold()
    labels = {t(f"authority.button.{c}").casefold(): c for c in offered}
    numbered = {str(i): c for i, c in enumerate(offered, 1)}
    return labels.get(typed) or numbered.get(typed)
