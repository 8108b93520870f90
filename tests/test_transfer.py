"""Issue 10, observation 2: an accepted transfer moves the case to the new programme.

Privacy check 17 (transfer part): after a transfer the old programme receives 0
messages of the case; the new programme gets the announcement (its own thread), the
held messages and everything after. Memory transport with forum-like threads, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock, hour
from config.messages import Address, OutKind, Platform
from config.settings import Settings
from storage.db import Database
from storage.migrate import upgrade
from storage.models import FollowUp, StaffThread
from storage.repositories import new_id
from storage.threads import ThreadMap
from tests.conftest import OFFICE_TIME
from tests.world import World, directory_without, texts


@pytest.fixture
async def threaded(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The casework world on a memory platform with forum topics (one per case)."""
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


def topic(room: str, code: str) -> Address:
    """The memory transport's thread of a case in a staff room."""
    return Address(Platform.MEMORY, room, code)


async def transferred(w: World) -> str:
    """A case of alpha, claimed, transferred to beta with the person's consent."""
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}", thread=code)
    await w.person("p1", "vor dem Wechsel")
    await w.staff("a1", f"/transfer {code} beta", thread=code)
    w.t.pop("p1")
    w.t.pop("alpha-room")
    w.t.pop("beta-room")
    assert "jetzt bei Beta NRW" in texts(await w.person("p1", "b:transfer:yes"))
    return code


async def test_transfer_announces_in_new_programme_and_old_gets_nothing(threaded: World) -> None:
    w = threaded
    code = await transferred(w)

    # The new programme is told (a new case in its room, in a thread of its own) ...
    beta = w.t.pop("beta-room")
    opened = [m for m in beta if m.kind is OutKind.CASE_OPENED]
    assert len(opened) == 1
    assert code in opened[0].text
    assert opened[0].address == topic("beta-room", code)
    assert f"claim:{code}" in [b.data for b in opened[0].flat_buttons]
    # ... the old one reads that the case moved, and its thread is closed.
    alpha = w.t.pop("alpha-room")
    assert "jetzt bei Beta NRW" in texts(alpha)
    assert all(m.address == topic("alpha-room", code) for m in alpha)
    assert w.t.closed == [topic("alpha-room", code)]

    # The person's next message reaches beta only (held until beta claims).
    w.t.sent.clear()
    await w.person("p1", "nach dem Wechsel")
    assert w.t.pop("alpha-room") == []
    # Unclaimed past beta's promised time: the reminder goes to beta's thread only.
    w.clock.advance(hours=49)
    await w.app.escalate()
    assert w.t.pop("alpha-room") == []
    reminder = [m for m in w.t.pop("beta-room") if code in m.text]
    assert reminder
    assert all(m.address == topic("beta-room", code) for m in reminder)
    claimed = await w.staff("b1", f"/claim {code}", room="beta-room", thread=code)
    assert "nach dem Wechsel" in texts(claimed)
    assert all(m.address == topic("beta-room", code) for m in claimed)

    # Relay both ways in beta's thread; alpha's old thread is no longer the case's.
    await w.staff("b1", "Hallo, hier ist Robin.", room="beta-room", thread=code)
    assert "Robin:\nHallo, hier ist Robin." in texts(w.t.pop("p1"))  # alias only
    await w.person("p1", "Hallo Robin")
    assert "Hallo Robin" in texts(w.t.pop("beta-room"))
    await w.staff("a1", "noch da?", thread=code)
    assert w.t.pop("p1") == []
    assert code not in texts(w.t.pop("alpha-room"))  # at most a hint to a1, nothing of the case
    w.t.sent.clear()

    # Escalation, follow-ups and erasure notices: none reaches alpha.
    await w.staff("b1", f"/followup {code} 1d", room="beta-room", thread=code)
    w.clock.advance(days=2)
    assert w.app.router is not None
    await w.app.run_due_followups()
    await w.app.escalate()
    await w.person("p1", "/delete", "b:delete:yes")
    assert w.t.pop("alpha-room") == []
    assert not any(m.address.chat_id == "alpha-room" for m in w.t.sent)
    assert code in texts(w.t.pop("beta-room"))


async def test_transfer_keeps_only_the_new_programmes_thread_across_a_restart(
    threaded: World, settings: Settings, clock: FakeClock
) -> None:
    w = threaded
    code = await transferred(w)
    assert w.app.db is not None
    async with w.app.db.transaction() as s:
        rows = (await s.execute(select(StaffThread))).scalars().all()
        assert [(r.programme_id, r.chat_id) for r in rows] == [("beta", "beta-room")]
    await w.app.stop()

    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        assert app.threads.thread_of(code, "alpha", Platform.MEMORY) is None
        assert app.threads.thread_of(code, "beta", Platform.MEMORY) == topic("beta-room", code)
        assert app.threads.case_at(topic("alpha-room", code)) is None
        await transport.push("b1", f"/claim {code}", chat="beta-room", group=True, thread=code)
        await transport.push("p1", "nach dem Neustart")
        assert transport.pop("alpha-room") == []
        beta = transport.pop("beta-room")
        assert "nach dem Neustart" in texts(beta)
        assert all(m.address == topic("beta-room", code) for m in beta)
    finally:
        await app.stop()
        w.app = app  # the fixture stops it again (harmless)


async def test_followups_of_the_old_programme_are_dropped_on_transfer(threaded: World) -> None:
    w = threaded
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}", thread=code)
    await w.staff("a1", f"/followup {code} 3d", thread=code)
    assert await w.count(FollowUp) == 1
    await w.staff("a1", f"/transfer {code} beta", thread=code)
    await w.person("p1", "b:transfer:yes")
    assert await w.count(FollowUp) == 0


async def test_migration_gives_existing_threads_their_cases_programme(settings: Settings) -> None:
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        await upgrade(db.engine, "0004")
        now = FakeClock(OFFICE_TIME).now()
        case_id, thread_id = new_id(), new_id()
        async with db.transaction() as s:
            # Plain SQL with the columns of schema 0004 (the model has newer ones).
            await s.execute(
                text(
                    "INSERT INTO cases (id, code, programme_id, status, audience, scene,"
                    " region, language, in_prison, urgent, route_step, escalated, opened_at,"
                    " last_activity_at, delete_after) VALUES (:id, 'K-MIGR', 'alpha',"
                    " 'claimed', 'self', 'right', 'MV', 'de', false, false, 'match', 0,"
                    " :now, :now, :now)"
                ),
                {"id": case_id, "now": hour(now)},
            )
            await s.flush()
            await s.execute(
                text(
                    "INSERT INTO staff_threads (id, case_id, platform, chat_id, thread_id,"
                    " delete_after) VALUES (:id, :case, 'memory', 'alpha-room', 'K-MIGR', :until)"
                ),
                {"id": thread_id, "case": case_id, "until": hour(now)},
            )
        await upgrade(db.engine)
        threads = ThreadMap()
        await threads.load(db)
        assert threads.thread_of("K-MIGR", "alpha", Platform.MEMORY) == topic(
            "alpha-room", "K-MIGR"
        )
    finally:
        await db.dispose()
