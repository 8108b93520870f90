"""Red-team review: a crisis written by editing a message is never seen.

People correct and extend what they sent: "bin grad draußen" edited to "bin grad auf der
Brücke und will springen". Telegram delivers that as ``edited_message`` (Matrix: an
``m.replace`` event), and both transports drop edits entirely
(bot/transports/telegram/updates.py: "edited messages ... not for the core";
matrix transport: "edits would re-answer a question"). No numbers, no urgent mark.

What should happen: an edit is not answered as an intake answer, but it is run through
the crisis detector; a danger in it gets the numbers and marks the case urgent.
"""

from __future__ import annotations

from bot.transports.telegram.updates import parse_update


def test_attack_edited_message_with_crisis_words_reaches_the_core() -> None:
    raw = {
        "update_id": 9001,
        "edited_message": {
            "message_id": 17,
            "date": 1_790_000_000,
            "edit_date": 1_790_000_060,
            "chat": {"id": 5_550_000_001, "type": "private"},
            "from": {"id": 5_550_000_001, "is_bot": False, "first_name": "P"},
            "text": "bin grad auf der Brücke und will springen",
        },
    }
    incoming = parse_update(raw)
    assert incoming.message is not None, "the edit is dropped before crisis detection"
