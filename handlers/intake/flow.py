"""The intake's one decision: (state, profile, message) -> Transition.

Crisis first, then "contact me now", attachments and over-long texts, commands, and
then the step the person's state names (``_STEPS``: greeting, echo, case, referral,
authority choice, delete; every question: ``_answered``). Pure: nothing is stored here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.i18n import Translator
from config.messages import InboundMessage
from config.register import addressed
from handlers.base import Effect, Reply, Transition
from handlers.intake.commands import confirm_delete, run_command
from handlers.intake.consent import consent_answer, declined_region, greeting
from handlers.intake.crisis import (
    CONTACT_NOW,
    contact_now,
    crisis_reply,
    danger_of,
    danger_of_button,
    offers_contact,
    urgent_case,
)
from handlers.intake.echo import confirm_answer, echo_facts, known_facts
from handlers.intake.handover import (
    authority_choice,
    authority_reply,
    finish,
    referral_warned,
    to_profile,
)
from handlers.intake.questions import answer_of, ask, question
from handlers.intake.states import (
    FACT_STATES,
    INTAKE_STATES,
    MAX_TEXT,
    IntakeContext,
    State,
    next_open,
    state_or,
)
from handlers.intake.words import asks_for_help, command_of, language_choice
from handlers.options import Option, exact, options_for
from handlers.routing import Route, chat_fallback
from handlers.safety import Danger, detect
from handlers.understand import pack, state_of, understand, unpack

#: What a person may choose for check-ins (buttons ``followup:<action>``).
_FOLLOWUP_ACTIONS = frozenset({"less", "pause", "resume", "stop"})


def step(
    ctx: IntakeContext,
    state_name: str,
    profile: dict[str, Any],
    locale: str,
    msg: InboundMessage,
    audience: str | None = None,
    previous: str | None = None,
) -> Transition:
    """Decide the next step of a person's conversation.

    ``audience`` is the open case's (the answers are dropped once a case opens): it keeps
    the register ("du" / "Sie") the person was addressed with during the intake.
    ``previous`` is the person's last message if it came moments ago: people chat in
    fragments ("ich will mich" / "umbringen"), so danger is looked for in both joined.
    """
    tr = _step(ctx, state_name, profile, locale, msg, audience, previous)
    if tr.state == State.MESSAGE.value:
        t = addressed(locale, tr.profile.get("audience") or audience)
        tr.replies = [referral_warned(ctx, r, tr.profile, t) for r in tr.replies]
    offer = [r for r in tr.replies if offers_contact(r)]
    if offer:
        # The "contact me now" question goes last: it is what a lock screen and the chat
        # list show, and where options are typed as numbers (Matrix), "1" picks it.
        tr.replies = [r for r in tr.replies if not offers_contact(r)] + offer[:1]
    return tr


@dataclass(frozen=True, slots=True)
class _Turn:
    """One message in one state: what each step reads, and the replies and effects so
    far (the crisis numbers and the urgent mark come first)."""

    ctx: IntakeContext
    state: State
    profile: dict[str, Any]
    msg: InboundMessage
    t: Translator
    danger: Danger | None
    replies: list[Reply]
    effects: list[Effect]


def _step(
    ctx: IntakeContext,
    state_name: str,
    profile: dict[str, Any],
    locale: str,
    msg: InboundMessage,
    audience: str | None = None,
    previous: str | None = None,
) -> Transition:
    """What comes before any state's own step: crisis, "contact me now", attachments,
    over-long texts and commands; then the step of the person's state."""
    t = addressed(locale, profile.get("audience") or audience)
    state = state_or(state_name, State.NEW)
    profile = dict(profile)
    if "history" in profile:  # never mutate the caller's list: it compares old and new
        profile["history"] = list(profile["history"])
    replies: list[Reply] = []
    effects: list[Effect] = []
    # After routing the answers are dropped (minimisation); a case implies consent.
    consented = bool(profile.get("consent")) or state in (State.CASE, State.REFERRED)
    # Asked "really delete?" from an open case: it still exists (and holds the danger).
    has_case = state is State.CASE or (
        state is State.DELETE and profile.get("return") == State.CASE.value
    )
    consented = consented or has_case or profile.get("return") == State.REFERRED.value

    # Crisis first: numbers even for an over-long message or a caption.
    danger = detect(msg.text) if msg.text else None
    if danger is None and previous and msg.text and not msg.button and not command_of(msg):
        danger = detect(f"{previous} {msg.text}")
    if danger is not None:
        replies.append(crisis_reply(t, danger))
        if consented:
            effects.append(Effect("mark_urgent", {"danger": danger.value}))
            if not has_case:
                profile["danger"] = danger.value  # encrypted; the case opened later keeps it
        if state is State.SAFETY and not msg.button and not command_of(msg):
            # Danger typed as the answer to "are you in danger?" is a "yes, right now".
            profile.setdefault("history", []).append(state.value)
            return urgent_case(ctx, profile, t, danger, replies, effects)
        if state not in (State.CASE, State.MESSAGE, State.DELETE):
            replies.append(contact_now(t, danger))

    if msg.button and (msg.button == CONTACT_NOW or msg.button.startswith(CONTACT_NOW + ":")):
        if state is State.NEW:  # no notice was shown to this chat yet: no informed consent
            return Transition(
                State.CONSENT.value, {}, [*replies, *greeting(t, ctx, msg.platform.value)]
            )
        if state in INTAKE_STATES or state is State.REFERRED:
            return urgent_case(ctx, profile, t, danger_of_button(msg.button), replies, effects)
        return Transition(state.value, profile, [*replies, Reply(t("start.has_case"))], effects)

    if msg.attachment:
        if state is State.CASE and ctx.relay_attachments and msg.message_ref:
            effects.append(Effect("relay_attachment", {"kind": msg.attachment}))
            return Transition(state.value, profile, replies, effects)
        return Transition(state.value, profile, [*replies, Reply(t("error.attachment"))], effects)
    if len(msg.text) > MAX_TEXT:
        too_long = Reply(t("error.too_long", max=MAX_TEXT))
        return Transition(state.value, profile, [*replies, too_long], effects)

    command = command_of(msg, in_case=state in (State.CASE, State.MESSAGE))
    arg = msg.text.strip().partition(" ")[2].strip() if msg.text else ""
    if msg.button and msg.button.startswith("lang:"):
        arg = msg.button[5:]
    elif command is None and state is State.CONSENT and language_choice(msg.text):
        command, arg = "language", msg.text  # "Русский" typed at consent: switch, ask again
    if command is not None:
        result = run_command(ctx, command, state, profile, t, arg, msg.platform.value)
        result.replies[:0] = replies
        result.effects[:0] = effects
        return result

    turn = _Turn(ctx, state, profile, msg, t, danger, replies, effects)
    return _STEPS.get(state, _answered)(turn)


def _first_message(turn: _Turn) -> Transition:
    """A new chat: the greeting and consent (or contacts for a region after a decline)."""
    ctx, msg, t = turn.ctx, turn.msg, turn.t
    if msg.button and msg.button.startswith("region:"):
        return declined_region(ctx, msg, t)
    # A frightened first message carries facts too ("raus aus der rechten Szene, die
    # wissen wo ich wohne"): keep them, and the kind of danger, for after the yes.
    facts = pack(understand(msg.text, t), t) if msg.text else ""
    if turn.danger is not None:
        facts = f"{facts}:{turn.danger.value}"
    hello = greeting(t, ctx, msg.platform.value, facts)
    return Transition(State.CONSENT.value, {}, [*turn.replies, *hello])


def _confirming(turn: _Turn) -> Transition:
    """The answer to an echo ("Stimmt das?")."""
    said = answer_of(State.CONFIRM, turn.msg, turn.t)
    if turn.replies and not turn.msg.button:
        said = None  # a crisis text is no answer ("Nein, ich will nicht mehr leben")
    result = confirm_answer(turn.profile, said.value if said else None, turn.t, turn.replies)
    result.effects[:0] = turn.effects
    return result


def _in_case(turn: _Turn) -> Transition:
    """In a case: text goes to the counsellor; buttons answer a transfer or check-ins."""
    msg, t, profile, replies, effects = turn.msg, turn.t, turn.profile, turn.replies, turn.effects
    state = turn.state
    if msg.button and msg.button.startswith("consent:"):
        # An old consent keyboard pressed after an (urgent) case opened: answer, kindly.
        key = "consent.after_case.no" if msg.button == "consent:no" else "start.has_case"
        return Transition(state.value, profile, [*replies, Reply(t(key))], effects)
    if msg.button and msg.button.startswith("transfer:"):
        effects.append(Effect("transfer_answer", {"yes": msg.button == "transfer:yes"}))
    elif msg.button and msg.button.startswith("followup:"):
        action = msg.button.partition(":")[2]
        if action in _FOLLOWUP_ACTIONS:
            effects.append(Effect("followups", {"action": action}))
    elif msg.text.strip():
        effects.append(Effect("relay", {"text": msg.text}))
    return Transition(state.value, profile, replies, effects)


def _referred(turn: _Turn) -> Transition:
    """Referred with contacts: the person may still ask for the chat team."""
    ctx, msg, t, profile = turn.ctx, turn.msg, turn.t, turn.profile
    replies, effects = turn.replies, turn.effects
    fallback = chat_fallback(ctx.directory)
    if msg.button == "referred:chat" and fallback is not None and profile.get("audience"):
        prof = to_profile(profile, t.locale)
        chat = Route(fallback, "fallback", (("fallback", "directory"),))
        if fallback.state_authority:  # told first, as after the questions
            profile["via"] = "chat"
            reply = authority_reply(chat, None, t)
            return Transition(State.AUTHORITY.value, profile, [*replies, reply], effects)
        effects.append(Effect("open_case", {"route": chat, "message": None, "profile": prof}))
        return Transition(State.CASE.value, profile, replies, effects)
    return Transition(turn.state.value, profile, [*replies, Reply(t("referred.again"))], effects)


def _choosing(turn: _Turn) -> Transition:
    """The choice before a hand-over to a state authority's programme."""
    return authority_choice(turn.ctx, turn.profile, turn.msg, turn.t, turn.replies, turn.effects)


def _deleting(turn: _Turn) -> Transition:
    """The answer to "really delete?"."""
    result = confirm_delete(turn.ctx, turn.profile, turn.msg, turn.t, turn.replies)
    result.effects[:0] = turn.effects  # a crisis here is still marked urgent
    return result


def _read_answer(turn: _Turn) -> tuple[Option | None, dict[str, str]]:
    """The answer to the question asked (None: not understood), and a town's region
    if a typed place name gave it."""
    state, msg, t = turn.state, turn.msg, turn.t
    answer = answer_of(state, msg, t)
    town: dict[str, str] = {}
    if answer is None and not msg.button and state in (State.STATE, State.DISTRICT):
        region = state_of(msg.text, t, cue=False)  # asked where: a bare "Rostock" will do
        if region is not None and (state is State.STATE or region == ("MV", region[1])):
            town = {"state": region[0], **({"district": region[1]} if region[1] else {})}
            value = town["state"] if state is State.STATE else town.get("district")
            answer = Option(value, "") if value else None
    if turn.replies and not msg.button and state is not State.MESSAGE:
        answer = None  # a crisis text is no answer: "Ich will mich umbringen" is not "Ich ..."
    if state is State.SAFETY and answer is None and not msg.button and asks_for_help(msg.text):
        answer = Option("yes", "")  # "hilfe" at "are you in danger?" is a yes, right now
    if state is State.MESSAGE and answer is None and msg.text.strip() and not msg.button:
        answer = Option("text", "")
    return answer, town


def _consented(turn: _Turn, answer: Option) -> Transition:
    """The answer to the consent question, with what the first message told (if yes)."""
    msg, t = turn.msg, turn.t
    result = consent_answer(turn.ctx, answer.value, turn.profile, t, turn.replies)
    if answer.value == "yes" and msg.button and msg.button.count(":") >= 2:
        # "consent:yes:<facts>[:<danger>]" (see greeting); button data is input.
        parts = msg.button.split(":")
        pre = unpack(parts[2], t)
        if pre:
            result.profile["pre"] = pre
        kind = danger_of(parts[3]) if len(parts) > 3 else None
        if kind is not None:
            result.profile["danger"] = kind.value  # encrypted, like a typed danger
    return result


def _answered(turn: _Turn) -> Transition:
    """An answer to one of the questions: the next open question, an echo of what typed
    words said, an urgent case ("yes, right now"), or the hand-over after the message."""
    ctx, state, profile, msg, t = turn.ctx, turn.state, turn.profile, turn.msg, turn.t
    replies, effects = turn.replies, turn.effects
    answer, town = _read_answer(turn)
    if answer is None:
        if replies:  # crisis text: numbers first, then the same question again
            return Transition(
                state.value, profile, [*replies, question(state, profile, t)], effects
            )
        return ask(state, profile, t, [Reply(t("error.not_understood"))])
    if state is State.CONSENT:
        return _consented(turn, answer)

    profile.setdefault("history", []).append(state.value)
    if state is State.SAFETY:
        pre = profile.pop("pre", None)
        known = known_facts(pre) if isinstance(pre, dict) else {}
        if answer.value == "yes":  # "yes, right now": an urgent case at once, no more questions
            # Route by what the first message already said (a region, say), if anything.
            profile = {**known, **profile}
            kind = danger_of(str(profile.get("danger", "")))  # the first message's kind
            return urgent_case(ctx, profile, t, kind, [*replies, crisis_reply(t, kind)], effects)
        if known:
            return echo_facts(profile, known, State.AUDIENCE, t, replies, effects)
    elif state is State.MESSAGE:
        return finish(
            ctx, profile, msg.text if answer.value == "text" else None, t, replies, effects
        )
    else:
        profile[state.value] = answer.value
        if not msg.button and state in FACT_STATES:
            # Typed: take what else the words say, and echo all of it for a one-tap fix.
            read = {**town, state.value: answer.value, **understand(msg.text, t, profile)}
            if state is State.DISTRICT:
                read.pop("state", None)
            if exact(msg.text, options_for(state.value, t)) is None or len(read) > 1:
                profile.pop(state.value)
                profile["history"].pop()
                return echo_facts(profile, read, state, t, replies, effects)
    nxt = next_open(profile)
    return Transition(nxt.value, profile, [*replies, question(nxt, profile, t)], effects)


#: The step of each state that is not a question (the questions: :func:`_answered`).
_STEPS: dict[State, Callable[[_Turn], Transition]] = {
    State.NEW: _first_message,
    State.CONFIRM: _confirming,
    State.CASE: _in_case,
    State.REFERRED: _referred,
    State.AUTHORITY: _choosing,
    State.DELETE: _deleting,
}
