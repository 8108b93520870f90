"""What handlers return: replies for the person and effects for the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.messages import Button


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to the person who wrote (the router adds the address)."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class Effect:
    """Something the services must do inside the same transaction.

    ``kind`` is one of: ``open_case`` (data: route, message), ``relay`` (text),
    ``mark_urgent``, ``erase``, ``set_locale`` (locale).
    """

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Transition:
    """A handler's decision: the next state, the new profile, replies and effects."""

    state: str
    profile: dict[str, Any]
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
