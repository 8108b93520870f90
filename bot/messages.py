"""Platform-neutral messages: what transports hand to the core and get back.

Nothing here knows about Telegram or Matrix. Fields that identify a person
(``sender_id``, the address, message text) are excluded from ``repr`` so a
stray log line cannot leak them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Platform(enum.StrEnum):
    """Where a message came from or goes to."""

    TELEGRAM = "telegram"
    MATRIX = "matrix"
    CONSOLE = "console"
    MEMORY = "memory"


class ChatKind(enum.StrEnum):
    """Private chat with one person, or a staff group / room."""

    PRIVATE = "private"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Address:
    """Where to send a reply: a chat (and optionally a thread / topic in it)."""

    platform: Platform
    chat_id: str = field(repr=False)
    thread_id: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Button:
    """A choice. ``data`` is short and opaque; it never carries an account id."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One event from a platform, reduced to what the core needs.

    Attributes:
        platform: the source platform.
        sender_id: the platform account id of the sender (never stored in clear).
        address: where replies go.
        text: typed text ("" when a button was pressed).
        button: the ``data`` of a pressed button, if any.
        locale: the platform's language hint (e.g. ``"de"``, ``"en-US"``).
        update_id: a platform-unique id of this event, for de-duplication.
        chat_kind: private chat or staff group / room.
        received_at: when the transport received it (aware UTC).
        attachment: kind of attachment ("photo", "voice", "file"), if any.
    """

    platform: Platform
    sender_id: str = field(repr=False)
    address: Address
    text: str = field(default="", repr=False)
    button: str | None = None
    locale: str | None = None
    update_id: str = field(default="", repr=False)
    chat_kind: ChatKind = ChatKind.PRIVATE
    received_at: datetime | None = None
    attachment: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A reply for a transport to render and send.

    ``buttons`` is a tuple of rows. ``urgent`` marks crisis replies that must
    bypass every queue and limit. ``edit_ref`` lets a transport replace the
    question a button answered instead of sending a new message.
    """

    address: Address
    text: str = field(repr=False)
    buttons: tuple[tuple[Button, ...], ...] = ()
    urgent: bool = False
    protect: bool = True

    @property
    def flat_buttons(self) -> list[Button]:
        """All buttons in reading order."""
        return [b for row in self.buttons for b in row]
