"""Typed answers understood: the echo ("Ich habe verstanden: ...") and its confirmation.

Free text may answer several questions at once (see handlers.understand); what was
read is echoed so a misreading costs one tap.
"""

from __future__ import annotations

from typing import Any

from config.i18n import Translator
from config.messages import Button
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES, Audience
from handlers.base import Effect, Reply, Transition
from handlers.intake.questions import ask, question
from handlers.intake.states import State, next_open, state_or
from handlers.options import options_for
from handlers.understand import FACTS

#: Labels of understood facts in the echo ("Ich habe verstanden: ...").
_ECHO_KEYS = {"audience": "reason.audience", "scene": "reason.scene", "incident": "reason.incident"}


def known_facts(facts: dict[str, Any]) -> dict[str, str]:
    """Pre-filled facts that fit together (no prison answer unless about oneself, ...)."""
    out = {k: str(v) for k, v in facts.items() if k in FACTS}
    if out.get("audience") != Audience.SELF:
        out.pop("prison", None)
    if out.get("audience") != Audience.AFFECTED:
        out.pop("incident", None)
    if out.get("state") != "MV":
        out.pop("district", None)
    return out


def echo_facts(
    profile: dict[str, Any],
    facts: dict[str, str],
    asked: State,
    t: Translator,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """Take understood facts and ask "Stimmt das?" (yes / correct it)."""
    have = {k: profile[k] for k in FACTS if k in profile}
    facts = {k: v for k, v in known_facts({**have, **facts}).items() if k not in profile}
    if not facts:
        return ask(asked, profile, t, [*replies, Reply(t("error.not_understood"))])
    history = profile.setdefault("history", [])
    for key in FACTS:  # asked order, so "zurück" walks back through them
        if key in facts:
            profile[key] = facts[key]
            history.append(key)
    profile["echo"] = [k for k in FACTS if k in facts]
    profile["echo_at"] = asked.value
    return Transition(State.CONFIRM.value, profile, [*replies, confirm_reply(facts, t)], effects)


def echo_text(facts: dict[str, str], t: Translator) -> str:
    """What was understood, in the reader's words (never the first line of a message)."""
    parts = []
    for key in FACTS:
        value = facts.get(key)
        if value is None:
            continue
        if key in _ECHO_KEYS:
            parts.append(t(f"{_ECHO_KEYS[key]}.{value}"))
        elif key == "state":
            parts.append(STATES.get(value, value))
        elif key == "district":
            parts.append(MV_DISTRICTS.get(value, value))
        elif key == "prison":
            parts.append(t(f"echo.prison.{value}"))
        else:
            parts.append(t("echo.language", language=LANGUAGES.get(value, value)))
    return ", ".join(parts)


def confirm_reply(facts: dict[str, str], t: Translator) -> Reply:
    """The echo with its two buttons."""
    buttons = tuple(
        (Button(o.label, f"confirm:{o.value}"),) for o in options_for(State.CONFIRM.value, t)
    )
    return Reply(t("confirm.question", facts=echo_text(facts, t)), buttons)


def confirm_answer(
    profile: dict[str, Any], answer: str | None, t: Translator, replies: list[Reply]
) -> Transition:
    """The answer to an echo: ``yes`` goes on, ``no`` drops what was read and asks again."""
    echoed = [k for k in profile.get("echo") or [] if k in FACTS]
    asked = state_or(profile.get("echo_at"), State.AUDIENCE)
    if answer is None:
        again = confirm_reply({k: profile[k] for k in echoed if k in profile}, t)
        return Transition(
            State.CONFIRM.value, profile, [*replies, Reply(t("error.not_understood")), again]
        )
    profile.pop("echo", None)
    profile.pop("echo_at", None)
    if answer == "no":  # the correction: drop what was read and ask one by one
        history = profile.setdefault("history", [])
        for key in echoed:
            profile.pop(key, None)
            if key in history:
                history.remove(key)
        return ask(asked, profile, t, [*replies, Reply(t("confirm.redo"))])
    nxt = next_open(profile)
    return Transition(nxt.value, profile, [*replies, question(nxt, profile, t)])
