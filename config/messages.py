"""Platform-neutral messages: what transports hand to the core and get back.

A plain type shared by every layer, so it lives in the lowest one (config): storage,
handlers and bot import it without reaching up (docs/ARCHITECTURE.md).

Nothing here knows about Telegram or Matrix. Fields that identify a person
(``sender_id``, the address, message text) are excluded from ``repr`` so a
stray log line cannot leak them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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


class OutKind(enum.StrEnum):
    """What an outbound message asks the transport to do.

    * ``TEXT``: send text (with optional buttons).
    * ``CASE_OPENED``: announce a new case in a staff room; a transport with
      threads (Telegram forum topics) may open one for the case and return it.
    * ``CASE_CLAIMED``: a counsellor took the case; a transport with case rooms
      (Matrix) may create one, inviting ``invite``, and return it.
    * ``VANISH``: delete the listed message ``refs`` in the person's chat (as far
      as the platform allows); no text is sent.
    * ``FORGET``: a case's thread (topic / case room) has passed its retention:
      leave, close or delete it as far as the platform allows; no text is sent.
    * ``CLOSE``: a case moved to another programme: close its thread of the old
      programme (``address``) so that programme reads nothing more of it (Telegram:
      close the forum topic; Matrix: remove the staff from the case room, then
      leave and forget it); no text is sent.
    * ``COPY``: copy the platform message ``refs[0]`` of chat ``copy_from`` into
      ``address`` with ``text`` as its label (photos, voice, files: relayed, never
      stored, never forwarded). Across platforms only the label can be sent.
    * ``LEAVE``: leave the group / room ``address`` (the bot was added to a chat
      that is not a configured staff room or case room); no text is sent.
    """

    TEXT = "text"
    CASE_OPENED = "case_opened"
    CASE_CLAIMED = "case_claimed"
    VANISH = "vanish"
    FORGET = "forget"
    COPY = "copy"
    LEAVE = "leave"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Address:
    """Where to send a reply: a chat (and optionally a thread / topic in it).

    ``account``: in a person's chat, the person's own platform account (from the sealed
    address), so a transport can check who else could read the chat. Never rendered,
    not part of equality, not kept in the outbox.
    """

    platform: Platform
    chat_id: str = field(repr=False)
    thread_id: str | None = field(default=None, repr=False)
    account: str | None = field(default=None, repr=False, compare=False)


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
        message_ref: the platform's id of this message in its chat (for /vanish).
        edited: the new text of a message sent before (Telegram ``edited_message``,
            Matrix ``m.replace``): never an answer, never relayed again; only a danger
            in it counts (crisis numbers, urgent mark).
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
    message_ref: str | None = field(default=None, repr=False)
    edited: bool = False


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message for a transport to render and send.

    Attributes:
        address: where it goes (a person's chat or a staff room / thread).
        text: plain text; transports escape it for their markup.
        buttons: rows of buttons.
        urgent: a crisis reply: bypasses every queue and limit.
        protect: ask the platform to prevent forwarding / saving (person chats).
        kind: see :class:`OutKind`.
        case_code: the case a staff-side message is about (thread routing).
        programme: the programme whose staff a staff-side message is for; a case's
            threads are kept per programme, so after a transfer the new programme's
            messages never land in the old programme's topic or room.
        contact_id: internal id of the person a message goes to (opaque; lets the
            core remember platform message refs for /vanish). Never rendered.
        refs: platform message ids to delete (``VANISH``).
        invite: staff account ids to invite into a case room (``CASE_CLAIMED``;
            staff-side only, never in messages to a person).
        copy_from: the chat an attachment to copy came from (``COPY``).
        send_key: the same for every attempt to send this one reply (set for replies
            kept in the outbox); transports with idempotent sends (Matrix transaction
            ids) use it so a retry after a crash is not delivered twice.
    """

    address: Address
    text: str = field(repr=False)
    buttons: tuple[tuple[Button, ...], ...] = ()
    urgent: bool = False
    protect: bool = True
    kind: OutKind = OutKind.TEXT
    case_code: str | None = None
    programme: str | None = None
    contact_id: str | None = field(default=None, repr=False)
    refs: tuple[str, ...] = field(default=(), repr=False)
    invite: tuple[str, ...] = field(default=(), repr=False)
    copy_from: Address | None = field(default=None, repr=False)
    send_key: str | None = field(default=None, repr=False)

    @property
    def flat_buttons(self) -> list[Button]:
        """All buttons in reading order."""
        return [b for row in self.buttons for b in row]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a transport reports after sending.

    Attributes:
        ref: the platform's id of the sent message (kept encrypted for /vanish).
        thread: where the case's staff conversation now lives (a forum topic or a
            case room), when the transport created one for ``CASE_OPENED`` /
            ``CASE_CLAIMED``.
    """

    ref: str | None = field(default=None, repr=False)
    thread: Address | None = None


def outbound_to_dict(m: OutboundMessage) -> dict[str, Any]:
    """A JSON-ready form of an outbound message (for the encrypted outbox)."""
    return {
        "a": [m.address.platform.value, m.address.chat_id, m.address.thread_id],
        "t": m.text,
        "b": [[[b.label, b.data] for b in row] for row in m.buttons],
        "u": m.urgent,
        "p": m.protect,
        "k": m.kind.value,
        "c": m.case_code,
        "g": m.programme,
        "i": m.contact_id,
        "r": list(m.refs),
        "v": list(m.invite),
        "f": (
            [m.copy_from.platform.value, m.copy_from.chat_id, m.copy_from.thread_id]
            if m.copy_from
            else None
        ),
    }


def outbound_from_dict(d: dict[str, Any]) -> OutboundMessage:
    """Inverse of :func:`outbound_to_dict`."""
    platform, chat, thread = d["a"]
    return OutboundMessage(
        address=Address(Platform(platform), chat, thread),
        text=d["t"],
        buttons=tuple(tuple(Button(label, data) for label, data in row) for row in d["b"]),
        urgent=bool(d["u"]),
        protect=bool(d["p"]),
        kind=OutKind(d["k"]),
        case_code=d["c"],
        programme=d.get("g"),
        contact_id=d["i"],
        refs=tuple(d["r"]),
        invite=tuple(d["v"]),
        copy_from=(Address(Platform(d["f"][0]), d["f"][1], d["f"][2]) if d.get("f") else None),
    )
