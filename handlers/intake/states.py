"""The intake's states, their order and the context its decisions read.

``next_question`` is the path through the questions (who writes decides which come);
``next_open`` skips what the person's own words already answered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from config.directory import Directory
from config.settings import DEMO_OPERATOR, OperatorSettings
from config.vocabulary import Audience
from handlers.understand import FACTS

MAX_TEXT = 4000
#: Profile keys allowed before consent: where a deep link came from (no personal data).
REFERRAL_KEYS = ("ref", "source")


class State(enum.StrEnum):
    """Conversation states of a person."""

    NEW = "new"
    CONSENT = "consent"
    SAFETY = "safety"
    AUDIENCE = "audience"
    INCIDENT = "incident"
    SCENE = "scene"
    STATE = "state"
    DISTRICT = "district"
    PRISON = "prison"
    LANGUAGE = "language"
    MESSAGE = "message"
    CONFIRM = "confirm"
    AUTHORITY = "authority"
    CASE = "case"
    REFERRED = "referred"
    DELETE = "delete"


#: Question states in order; ``back`` walks the recorded history instead.
QUESTIONS = (
    State.CONSENT,
    State.SAFETY,
    State.AUDIENCE,
    State.INCIDENT,
    State.SCENE,
    State.STATE,
    State.DISTRICT,
    State.PRISON,
    State.LANGUAGE,
    State.MESSAGE,
)
INTAKE_STATES = frozenset({State.NEW, State.CONFIRM, *QUESTIONS, State.AUTHORITY})
#: Questions whose answer free text may already give (see handlers.understand).
FACT_STATES = frozenset(State(k) for k in FACTS)


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What intake decisions may read besides the message."""

    directory: Directory
    retention: dict[str, Any]
    relay_attachments: bool = False
    #: Who runs the bot, told before consent (the app passes the checked settings).
    controller: OperatorSettings = DEMO_OPERATOR


def next_question(state: State, profile: dict[str, Any]) -> State:
    """The question after ``state`` on the path the answers so far lead."""
    audience = profile.get("audience")
    if state is State.CONSENT:
        return State.SAFETY
    if state is State.SAFETY:
        return State.AUDIENCE
    if state is State.AUDIENCE:
        return State.INCIDENT if audience == Audience.AFFECTED else State.SCENE
    if state is State.INCIDENT:  # which scene decides who helps after an attack, too
        return State.SCENE
    if state is State.SCENE:
        return State.STATE
    if state is State.STATE and profile.get("state") == "MV":
        return State.DISTRICT
    if state in (State.STATE, State.DISTRICT):
        return State.PRISON if audience == Audience.SELF else State.LANGUAGE
    if state is State.PRISON:
        return State.LANGUAGE
    return State.MESSAGE


def next_open(profile: dict[str, Any]) -> State:
    """The first question on the person's path that has no answer yet."""
    state = State.SAFETY
    while True:
        state = next_question(state, profile)
        if state not in FACT_STATES or state.value not in profile:
            return state


def state_or(value: object, default: State) -> State:
    """A stored state name, or ``default`` if it is not one (never trust stored data blindly)."""
    try:
        return State(str(value))
    except ValueError:
        return default
