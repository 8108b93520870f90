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

from bot.transports.telegram.updates import ALLOWED_UPDATES, parse_update
from config.i18n import translator
from tests.world import World, texts

DE = translator("de")


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


def test_edited_message_is_marked_and_relays_nothing_again() -> None:
    raw = {
        "update_id": 9002,
        "edited_message": {
            "message_id": 18,
            "date": 1_790_000_000,
            "edit_date": 1_790_000_060,
            "chat": {"id": 5_550_000_001, "type": "private"},
            "from": {"id": 5_550_000_001, "is_bot": False, "first_name": "P"},
            "caption": "neu",
            "photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}],
        },
    }
    msg = parse_update(raw).message
    assert msg is not None
    assert (msg.edited, msg.attachment, msg.message_ref) == (True, None, None)
    assert "edited_message" in ALLOWED_UPDATES


async def test_edit_into_a_crisis_gets_numbers_and_marks_the_case_urgent(world: World) -> None:
    w = world
    code = await w.open("p1")
    w.t.pop("alpha-room")
    await w.t.push("p1", "bin grad auf der Brücke und will springen", edited=True)
    got = w.t.pop("p1")
    assert got[0].urgent
    assert got[0].text == DE("crisis.suicide")
    assert DE("crisis.case.alerted") in texts(got)
    room = w.t.pop("alpha-room")
    assert any(code in m.text and m.urgent for m in room), texts(room)
    assert all("Brücke" not in m.text for m in room), "an edit is not relayed"
    case = await w.case(code)
    assert (case.urgent, case.danger) == (True, "suicide")


async def test_edit_without_danger_is_neither_answered_nor_relayed(world: World) -> None:
    w = world
    await w.open("p1")
    w.t.pop("alpha-room")
    await w.t.push("p1", "ich meinte eigentlich Dienstag", edited=True)
    assert w.t.pop("p1") == []
    assert w.t.pop("alpha-room") == []


async def test_edit_during_intake_is_no_answer(world: World) -> None:
    w = world
    got = await w.person("p1", "/start")
    await w.t.push("p1", "ja", edited=True)  # typed anew it would answer the consent question
    assert w.t.pop("p1") == []
    await w.t.push("p1", "ich will mich umbringen", edited=True)
    crisis = w.t.pop("p1")
    assert crisis, "the numbers go out before consent too"
    assert crisis[0].urgent
    assert got, "precondition: the greeting was shown"


async def test_a_staff_edit_is_never_run_again(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    await w.t.push("a1", f"/r {code} ich will springen", chat="a1", edited=True)
    await w.t.push("a1", f"/r {code} ich will springen", chat="alpha-room", group=True, edited=True)
    assert w.t.pop("p1") == []
    assert w.t.pop("a1") == []
