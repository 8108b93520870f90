"""The button questions (consent, safety, audience, scene, region, language, ...):
how they are shown and how a pressed or typed answer is read.
"""

from __future__ import annotations

from typing import Any

from config.i18n import LANGUAGE_NAMES, SUPPORTED, Translator
from config.messages import Button, InboundMessage
from handlers.base import Reply, Transition
from handlers.intake.states import State
from handlers.options import Option, match, options_for

_COLUMNS = {State.STATE: 2, State.DISTRICT: 2, State.LANGUAGE: 2}
_WHOLE_ANSWER = frozenset({State.CONSENT, State.MESSAGE, State.DELETE})


def question_reply(
    state: State, t: Translator, *, with_back: bool = True, audience: object = None
) -> Reply:
    """Render a question with its buttons (worded for the audience where a catalog has
    ``<question>.question.<audience>``, e.g. the scene question for people affected)."""
    opts = options_for(state.value, t)
    per_row = _COLUMNS.get(state, 1)
    rows: list[tuple[Button, ...]] = [
        tuple(Button(o.label, f"{state.value}:{o.value}") for o in opts[i : i + per_row])
        for i in range(0, len(opts), per_row)
    ]
    if state is State.CONSENT:  # consent is informed only in a language the person reads
        other = "en" if t.locale == "de" else "de"
        rows.append(
            (
                Button(t(f"language.switch.{other}"), f"lang:{other}"),
                Button(t("language.button"), "cmd:language"),
            )
        )
    if with_back and state not in (State.CONSENT, State.SAFETY):
        rows.append((Button(t("nav.back"), "cmd:back"),))
    key = f"{state.value}.question"
    if audience and t(f"{key}.{audience}") != f"{key}.{audience}":
        key = f"{key}.{audience}"
    return Reply(t(key), tuple(rows))


def language_chooser(t: Translator) -> Reply:
    """The six languages as buttons, each by its own name."""
    buttons = [Button(LANGUAGE_NAMES[code], f"lang:{code}") for code in SUPPORTED]
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return Reply(t("language.choose"), rows)


def question(state: State, profile: dict[str, Any], t: Translator) -> Reply:
    """A question worded for the person's audience."""
    return question_reply(state, t, audience=profile.get("audience"))


def ask(state: State, profile: dict[str, Any], t: Translator, replies: list[Reply]) -> Transition:
    """Stay in (or go to) ``state`` and ask its question after ``replies``."""
    return Transition(state.value, profile, [*replies, question(state, profile, t)])


def answer_of(state: State, msg: InboundMessage, t: Translator) -> Option | None:
    """The option a pressed button or typed text picks for this question (None: none)."""
    opts = options_for(state.value, t)
    if msg.button:
        prefix, _, value = msg.button.partition(":")
        if state is State.CONSENT:
            value = value.partition(":")[0]  # "consent:yes:<facts>" (see greeting)
        if prefix != state.value:
            return None
        return next((o for o in opts if o.value == value), None)
    if state is State.CONSENT and msg.text.strip().casefold() in ("english", "deutsch"):
        return None
    # Consent must be unambiguous ("I don't agree" is no yes), deleting is final and a
    # message is free text ("ich weiß nicht weiter ..."): only a whole answer counts there.
    return match(msg.text, opts, partial=state not in _WHOLE_ANSWER)
