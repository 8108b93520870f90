"""Erasure on the person's wish by their counsellor: ``/erase K-XXXX`` (issue 6, part 3).

It asks first, acts on ``/erase K-XXXX confirm`` or the button, and then erases
exactly like the person's own /delete; the person gets the receipt.
"""

from __future__ import annotations

import re

import pytest

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.settings import Settings
from storage.models import Case, CaseEvent, CaseNote, Contact, FollowUp, HeldMessage
from tests.world import World, directory_without, texts


async def counts(w: World) -> tuple[int, ...]:
    assert w.app.keystore is not None
    return (
        await w.count(Contact),
        await w.count(CaseNote),
        await w.count(FollowUp),
        await w.app.keystore.count(),
    )


async def claimed_case(w: World) -> str:
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/note {code} Notiz")
    await w.staff("a1", f"/followup {code} weekly")
    await w.staff("a1", f"/invite {code} Sam")
    w.t.pop("p1")
    w.t.pop("alpha-room")
    return code


async def test_erase_asks_first_then_erases_like_delete(world: World) -> None:
    w = world
    code = await claimed_case(w)
    before = await counts(w)
    assert before == (1, 1, 1, 2)

    asked = await w.staff("a1", f"/erase {code}")
    assert [b.data for m in asked for b in m.flat_buttons] == [f"erase:{code}"]
    assert "nicht rückgängig" in texts(asked)
    assert await counts(w) == before
    assert w.t.pop("p1") == []

    done = await w.staff("a1", button=f"erase:{code}")
    receipt = texts(w.t.pop("p1"))
    assert re.search(r"Q-[0-9A-F]{6}", receipt)
    assert "Alles ist gelöscht" in receipt
    assert f"[{code}] Auf Wunsch der Person gelöscht" in texts(done)
    assert await counts(w) == (0, 0, 0, 0)
    case = await w.case(code)
    assert (case.contact_id, case.key_id, case.claimed_by, case.status, case.outcome) == (
        None,
        None,
        None,
        "closed",
        "erased",
    )
    assert await w.count(CaseEvent, CaseEvent.kind == "erased") == 1
    assert w.app.scheduler is not None
    assert w.app.scheduler.followup_jobs() == {}
    again = texts(await w.staff("a1", f"/erase {code} confirm"))
    assert "schon geschlossen" in again


async def test_erase_confirmed_in_writing_and_held_messages_go(world: World) -> None:
    w = world
    code = await w.open("p1", message="wartet noch")
    await w.staff("a1", f"/claim {code}")
    await w.person("p1", "noch eine")
    await w.staff("a1", f"/release {code}")
    await w.person("p1", "gehalten")
    assert await w.count(HeldMessage) == 1
    await w.staff("a2", f"/claim {code}")
    await w.person("p1", "dritte")
    await w.staff("a2", f"/erase {code} confirm")
    assert "Quittung" in texts(w.t.pop("p1"))
    assert await w.count(HeldMessage) == 0
    assert await w.count(Contact) == 0
    # writing again starts afresh
    fresh = await w.person("p1", "hallo")
    assert any(b.data == "consent:yes" for m in fresh for b in m.flat_buttons)


@pytest.mark.parametrize(
    ("who", "room", "answer"),
    [
        ("a2", "alpha-room", "nicht von dir"),  # same programme, not on the case
        ("b1", "beta-room", "keinen Zugriff"),  # another programme (check 8)
        ("ac", "alpha-room", "keinen Zugriff"),  # coordinators do not act on cases
    ],
)
async def test_only_the_counsellors_on_the_case_may_erase(
    world: World, who: str, room: str, answer: str
) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    for attempt in (f"/erase {code}", f"/erase {code} confirm"):
        assert answer in texts(await w.staff(who, attempt, room=room))
    assert answer in texts(await w.staff(who, button=f"erase:{code}", room=room))
    assert w.t.pop("p1") == []
    assert await w.count(Contact) == 1
    assert (await w.case(code)).contact_id is not None


async def test_erase_in_the_case_thread_without_code_and_german_alias(settings: Settings) -> None:
    clock = FakeClock()
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        code = await w.open("p1")
        await w.staff("a1", "/claim", thread=code)
        asked = await w.staff("a1", "/löschen", thread=code)
        assert [b.data for m in asked for b in m.flat_buttons] == [f"erase:{code}"]
        await w.staff("a1", "/löschen bestätigen", thread=code)
        assert "Quittung" in texts(w.t.pop("p1"))
        assert await w.count(Case, Case.contact_id.is_not(None)) == 0
    finally:
        await app.stop()


async def test_erase_help_and_usage(world: World) -> None:
    help_text = texts(await world.staff("a1", "/help"))
    assert "/erase K-XXXX" in help_text
    assert "/erase K-XXXX" in texts(await world.staff("a1", "/erase"))
