"""Relay only where the case lives (issue 10, observation 1; privacy check 16).

Staff text becomes a message to a person only in that case's own topic / room or
with an explicit ``/r K-XXXX``; staff commands are answered only in the programme's
staff rooms, case threads and a private chat; the bot leaves groups it was not set
up for, after telling them once, and writes nothing per message there.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.router import LEAVE_AGAIN_SECONDS
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.i18n import translator
from config.messages import Address, OutKind
from config.settings import Settings
from storage.models import Contact, ProcessedUpdate
from tests.conftest import OFFICE_TIME
from tests.world import World, directory_without, texts

DE = translator("de")
HINT = DE("staff.reply_where")


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[World]:
    """The casework world with forum topics: every case gets its own thread."""
    clock = FakeClock(OFFICE_TIME)
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


async def _two_claimed(w: World) -> tuple[str, str]:
    """Cases A (p1) and B (p2), both claimed by a1 and active in the same hour."""
    a = await w.open("p1")
    b = await w.open("p2")
    await w.staff("a1", "/claim", thread=a)
    await w.staff("a1", "/claim", thread=b)
    await w.person("p1", "Hallo von A")
    await w.person("p2", "Hallo von B")
    w.t.pop("alpha-room")
    return a, b


async def test_check_16_staff_text_reaches_only_the_case_of_its_thread(topics: World) -> None:
    """Privacy check 16: two claimed cases, replies only from the case's own thread."""
    w = topics
    a, b = await _two_claimed(w)
    assert (await w.case(a)).last_activity_at == (await w.case(b)).last_activity_at  # a tie

    await w.staff("a1", "Treffpunkt morgen 10 Uhr am Bahnhof", thread=a)
    assert "Treffpunkt morgen" in texts(w.t.pop("p1"))
    assert w.t.pop("p2") == []

    await w.staff("a1", "Für B: ruf mich an", thread=b)
    assert "ruf mich an" in texts(w.t.pop("p2"))
    assert w.t.pop("p1") == []

    # In the staff room itself (no case thread) plain text is never relayed: a hint instead.
    room = await w.staff("a1", "Treffpunkt geändert: 11 Uhr")
    assert w.t.pop("p1") == []
    assert w.t.pop("p2") == []
    assert texts(room) == HINT

    # The explicit form works anywhere staff commands are accepted.
    await w.staff("a1", f"/r {b} Bis gleich")
    assert "Bis gleich" in texts(w.t.pop("p2"))
    assert w.t.pop("p1") == []


async def test_plain_text_in_the_staff_room_relays_nothing_and_hints(world: World) -> None:
    """Without topics (plain group), plain text used to go to the latest claimed case."""
    w = world
    a = await w.open("p1")
    b = await w.open("p2")
    await w.staff("a1", f"/claim {a}")
    await w.staff("a1", f"/claim {b}")
    await w.person("p1", "eins")
    await w.person("p2", "zwei")
    w.t.pop("alpha-room")
    room = await w.staff("a1", "Meine Nummer ist 0171 000000")
    assert w.t.pop("p1") == []
    assert w.t.pop("p2") == []
    assert texts(room) == HINT
    assert "/r K-XXXX" in HINT


async def test_staff_attachment_outside_the_case_thread_is_not_relayed(
    settings: Settings,
) -> None:
    settings.relay_attachments = True
    clock = FakeClock(OFFICE_TIME)
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        code = await w.open("p1")
        await w.staff("a1", "/claim", thread=code)
        w.t.pop("p1")
        w.t.pop("alpha-room")
        await w.t.push("a1", chat="alpha-room", group=True, attachment="photo")
        assert w.t.pop("p1") == []
        assert texts(w.t.pop("alpha-room")) == HINT
        await w.t.push("a1", chat="alpha-room", group=True, thread=code, attachment="photo")
        assert [m.kind for m in w.t.pop("p1")] == [OutKind.COPY]
    finally:
        await app.stop()


async def test_unrelated_group_relays_nothing_answers_nothing_and_is_left(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    w.t.pop("alpha-room")
    updates = await w.count(ProcessedUpdate)
    contacts = await w.count(Contact)

    await w.staff("a1", "Treffen heute bei mir, Adresse folgt", room="family-group")
    await w.staff("a1", "/queue", room="family-group")
    await w.staff("x9", "wer ist das?", room="family-group")  # not staff either

    assert w.t.pop("p1") == []
    assert w.t.left == [Address(w.t.platform, "family-group")]
    said = [m for m in w.t.sent if m.address.chat_id == "family-group"]
    notices = [m for m in said if m.kind is OutKind.TEXT]
    assert [m.text for m in notices] == [DE("group.leaving")]  # told once, queue unanswered
    assert code not in notices[0].text
    assert "Alpha" not in notices[0].text
    # Nothing written for an unconfigured group: no de-duplication row, no contact.
    assert await w.count(ProcessedUpdate) == updates
    assert await w.count(Contact) == contacts


async def test_staff_commands_only_in_own_rooms_and_private_chat(world: World) -> None:
    w = world
    await w.open("p1")
    w.t.pop("alpha-room")
    # b1 (beta) in alpha's room: not beta's room, nothing is answered there.
    assert await w.staff("b1", "/queue") == []
    # a1 in a private chat with the bot: commands yes, plain text is no reply to anyone.
    await w.t.push("a1", "/queue")
    assert "Wartende Fälle" in texts(w.t.pop("a1"))
    await w.t.push("a1", "hallo")
    assert texts(w.t.pop("a1")) == HINT
    assert w.t.pop("p1") == []
    assert w.t.left == []


async def test_crisis_words_in_an_unknown_group_still_get_the_numbers(world: World) -> None:
    w = world
    await w.staff("x9", "Ich will mich umbringen", room="random-group")
    said = [m for m in w.t.sent if m.address.chat_id == "random-group"]
    assert said[0].urgent
    assert "112" in said[0].text  # suicide: TelefonSeelsorge and 112
    assert [m.kind for m in said] == [OutKind.TEXT, OutKind.TEXT, OutKind.LEAVE]
    assert await w.count(Contact) == 0


async def test_a_group_that_keeps_writing_is_left_again_without_a_second_notice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    await w.staff("x9", "hallo", room="random-group")
    await w.staff("x9", "noch da?", room="random-group")  # at once: nothing more
    assert len(w.t.left) == 1
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + LEAVE_AGAIN_SECONDS + 1)
    await w.staff("x9", "hallo?", room="random-group")  # re-added later: left again
    assert len(w.t.left) == 2
    notices = [m for m in w.t.sent if m.address.chat_id == "random-group" and m.text]
    assert [m.text for m in notices] == [DE("group.leaving")]
