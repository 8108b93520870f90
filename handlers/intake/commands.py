"""The commands a person can use during the intake and in a case (start, help, language,
back, delete, pause, who, vanish), and the "really delete?" question.
"""

from __future__ import annotations

from typing import Any

from config.i18n import Translator
from config.messages import InboundMessage
from config.register import addressed
from handlers.base import Effect, Reply, Transition
from handlers.intake.consent import greeting
from handlers.intake.echo import confirm_answer, confirm_reply
from handlers.intake.handover import authority_again
from handlers.intake.questions import answer_of, ask, language_chooser, question, question_reply
from handlers.intake.states import QUESTIONS, IntakeContext, State, state_or
from handlers.intake.words import language_choice


def run_command(
    ctx: IntakeContext,
    command: str,
    state: State,
    profile: dict[str, Any],
    t: Translator,
    arg: str = "",
    platform: str = "",
) -> Transition:
    """What a command does in this state (``arg``: the rest of the message, e.g. a language)."""
    if command == "start":
        if state in (State.CASE,):
            return Transition(state.value, profile, [Reply(t("start.has_case"))])
        effects = [Effect("restart")]
        if arg:
            effects.append(Effect("referral", {"code": arg[:24]}))
        return Transition(State.CONSENT.value, {}, greeting(t, ctx, platform), effects)
    if command == "vanish":
        return Transition(state.value, profile, [], [Effect("vanish")])
    if command in ("pause", "resume"):
        if state is not State.CASE:
            return Transition(state.value, profile, [Reply(t("followup.none"))])
        return Transition(state.value, profile, [], [Effect("followups", {"action": command})])
    if command == "help":
        text = t("help.person")
        if platform == "matrix":  # Element: "!" or the plain word, never "/"
            text += "\n\n" + t("help.person.matrix")
        return Transition(state.value, profile, [Reply(text)])
    if command == "who":
        if state is State.CASE:
            return Transition(state.value, profile, [], [Effect("who")])
        key = "referred.again" if state is State.REFERRED else "who.none"
        return Transition(state.value, profile, [Reply(t(key))])
    if command == "language":
        target = language_choice(arg)
        if target is None:  # no (known) language named: offer all six by their own names
            return Transition(state.value, profile, [language_chooser(t)])
        new_t = addressed(target, profile.get("audience"))
        replies = [Reply(new_t("language.switched"))]
        if state is State.CONSENT:  # consent is informed only in a language the person reads
            replies.append(greeting(new_t, ctx, platform)[-1])
        elif state in QUESTIONS:
            replies.append(question(state, profile, new_t))
        elif state is State.CONFIRM:
            echoed = {k: profile[k] for k in profile.get("echo") or [] if k in profile}
            replies.append(confirm_reply(echoed, new_t))
        elif state is State.AUTHORITY:
            replies.append(authority_again(ctx, profile, new_t))
        return Transition(state.value, profile, replies, [Effect("set_locale", {"locale": target})])
    if command == "delete":
        if state is State.NEW or (state is State.CONSENT and not profile.get("consent")):
            return Transition(State.NEW.value, {}, [Reply(t("delete.nothing"))], [Effect("erase")])
        confirm = question_reply(State.DELETE, t, with_back=False)
        back_to = profile.get("return", State.CONSENT.value) if state is State.DELETE else state
        return Transition(State.DELETE.value, {**profile, "return": str(back_to)}, [confirm])
    if command == "back" and state is State.CONFIRM:  # back from an echo: correct it
        return confirm_answer(profile, "no", t, [])
    if command == "back" and state is State.AUTHORITY and profile.pop("via", None):
        return Transition(State.REFERRED.value, profile, [Reply(t("referred.again"))])
    if command == "back" and state is State.AUTHORITY:
        profile.pop("pending", None)
        if profile.get("history"):
            profile["history"].pop()
        return ask(State.MESSAGE, profile, t, [])
    if command == "back":
        history = profile.get("history") or []
        if state not in QUESTIONS or not history:
            if state in QUESTIONS:
                return ask(state, profile, t, [Reply(t("nav.back.none"))])
            return Transition(state.value, profile, [Reply(t("nav.back.none"))])
        previous = state_or(history.pop(), state)
        profile.pop(previous.value, None)  # asked again: no stale answer on another path
        return ask(previous, profile, t, [])
    return Transition(state.value, profile, [Reply(t("error.unknown_command"))])


def confirm_delete(
    ctx: IntakeContext,
    profile: dict[str, Any],
    msg: InboundMessage,
    t: Translator,
    replies: list[Reply],
) -> Transition:
    """The answer to "really delete?": erase, or back to where the person was."""
    answer = answer_of(State.DELETE, msg, t)
    if answer is None or (replies and not msg.button):
        # A crisis text is no wrong answer (and no "yes"): numbers, then the question again.
        confirm = question_reply(State.DELETE, t, with_back=False)
        wrong = [] if replies else [Reply(t("error.not_understood"))]
        return Transition(State.DELETE.value, profile, [*replies, *wrong, confirm])
    if answer.value == "yes":
        return Transition(State.NEW.value, {}, replies, [Effect("erase", {"receipt": True})])
    back = state_or(profile.pop("return", State.CONSENT.value), State.CONSENT)
    replies.append(Reply(t("delete.cancelled")))
    if back in QUESTIONS:
        replies.append(question(back, profile, t))
    elif back is State.CONFIRM:
        echoed = {k: profile[k] for k in profile.get("echo") or [] if k in profile}
        replies.append(confirm_reply(echoed, t))
    elif back is State.AUTHORITY:
        replies.append(authority_again(ctx, profile, t))
    return Transition(back.value, profile, replies)
