"""Which replies may be merged into one message, and how (coalescing).

When a destination waits for its platform's limit (a Telegram staff group may take
20 messages a minute), relays about one case pile up in its queue. Instead of
waiting in line one by one they go out as one message: the texts in order, each
as it was (with its own case header), separated by a blank line.

Only plain texts to staff about a case merge, and only with texts to the same
address about the same case of the same programme: never a message to a person,
never one with buttons, an attachment, an invitation, a crisis flag or a special
kind, so a merge never changes who sees what, or what can be pressed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from config.messages import OutboundMessage, OutKind

#: Merged texts stay below one Telegram message (4,096), so a merge is one send.
MERGE_LIMIT = 3500
SEPARATOR = "\n\n"


def mergeable(message: OutboundMessage) -> bool:
    """A plain text to staff about a case (a relay, a note): may share a message."""
    return (
        message.kind is OutKind.TEXT
        and message.case_code is not None
        and message.programme is not None
        and message.contact_id is None
        and not message.urgent
        and not message.buttons
        and not message.refs
        and not message.invite
        and message.copy_from is None
    )


def topic(message: OutboundMessage) -> tuple[object, ...]:
    """What two messages must share to be merged (the same topic of one case)."""
    return (message.address, message.case_code, message.programme, message.protect)


def merged(messages: Sequence[OutboundMessage]) -> OutboundMessage:
    """One message with the texts of ``messages`` (all :func:`mergeable`, one topic).

    The send key (Matrix: the transaction id) names every part: a merge of other
    parts after a crash is a new message, never mistaken for this one.
    """
    first = messages[0]
    if len(messages) == 1:
        return first
    keys = "|".join(m.send_key or "" for m in messages)
    key = None
    if all(m.send_key for m in messages):
        key = "m" + hashlib.sha256(keys.encode()).hexdigest()[:32]
    return replace(first, text=SEPARATOR.join(m.text for m in messages), send_key=key)
