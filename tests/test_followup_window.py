"""Follow-ups as a window over the database (issue 14): only what is due within the
scheduler's horizon is an in-memory job; the database is the truth; two instances
firing the same follow-up send it once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.app import App
from bot.scheduler import HORIZON
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.settings import Settings
from handlers.casework import CaseService
from handlers.followups import FollowUpService
from storage.models import FollowUp
from storage.repositories import unit
from tests.world import World, directory_without, texts


async def test_followup_beyond_the_window_waits_in_the_database(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} 14d")
    assert w.app.scheduler is not None
    assert await w.count(FollowUp) == 1
    assert w.app.scheduler.followup_jobs() == {}  # 14 days out: not in memory

    w.clock.advance(days=14, hours=-HORIZON.total_seconds() / 3600 + 1)
    assert await w.app.load_followup_window() == 1  # the periodic reload picks it up
    assert len(w.app.scheduler.followup_jobs()) == 1


async def test_a_repeating_followup_leaves_memory_after_it_fired(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} every 7d")
    w.t.pop("p1")
    assert w.app.scheduler is not None
    w.clock.advance(days=7)
    assert await w.app.load_followup_window() == 1
    assert await w.app.run_due_followups() == 1
    assert "wie geht es dir" in texts(w.t.pop("p1"))
    assert w.app.scheduler.followup_jobs() == {}  # next one is 7 days out again
    assert await w.count(FollowUp) == 1


async def test_the_window_is_periodic(world: World) -> None:
    assert world.app.scheduler is not None
    job = world.app.scheduler._sched.get_job("followup-window")
    assert job is not None
    # Reloaded well inside the horizon, so no follow-up can fall between two loads.
    assert job.trigger.interval < HORIZON


# SQLite runs one instance only (a second is refused: tests/test_instances.py).
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_two_instances_fire_a_followup_once(settings: Settings, clock: FakeClock) -> None:
    """Two apps on one database (PostgreSQL: row lock) fire the same due follow-up at
    the same moment (the follower called directly): the person gets one check-in."""
    t1, t2 = MemoryTransport(), MemoryTransport()
    app1 = App(settings, [t1], clock=clock, directory=directory_without())
    await app1.start()
    w = World(app1, t1, clock)
    try:
        people = [f"p{i}" for i in range(8)]
        for who in people:
            code = await w.open(who)
            await w.staff("a1", f"/claim {code}")
            await w.staff("a1", f"/followup {code} 3d")
            w.t.pop(who)
        app2 = App(settings, [t2], clock=clock, directory=directory_without())
        await app2.start()
        try:
            clock.advance(days=3, hours=1)
            assert app1.db is not None
            async with app1.db.transaction() as s:
                ids = list((await s.execute(select(FollowUp.id))).scalars())
            await asyncio.gather(*(app.fire_followup(f) for f in ids for app in (app1, app2)))
            sent = [m.address.chat_id for m in t1.sent + t2.sent if "wie geht es dir" in m.text]
            assert sorted(sent) == sorted(people)
        finally:
            await app2.stop()
    finally:
        await app1.stop()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # one writer in SQLite
async def test_a_second_instance_waits_for_the_first_ones_followup(
    settings: Settings, clock: FakeClock
) -> None:
    """The interleaving that doubles a follow-up without the row lock: instance 2 reads
    the row while instance 1 has fired but not committed. With the lock it waits and
    then sees the follow-up advanced (PostgreSQL; SQLite has one writer per file)."""
    t1 = MemoryTransport()
    app1 = App(settings, [t1], clock=clock, directory=directory_without())
    await app1.start()
    w = World(app1, t1, clock)
    try:
        code = await w.open("p1")
        await w.staff("a1", f"/claim {code}")
        await w.staff("a1", f"/followup {code} 3d")
        clock.advance(days=3, hours=1)
        assert app1.db is not None
        assert app1.router is not None
        async with app1.db.transaction() as s:
            fid = (await s.execute(select(FollowUp.id))).scalar_one()
        router = app1.router
        async with unit(router.db, router.keystore, clock.now()) as first:
            svc = CaseService(first, router.directory, router.retention)
            assert await FollowUpService(svc).fire(fid)  # sent, not yet committed
            second = asyncio.create_task(router.run("followup", fid))
            done, _ = await asyncio.wait({second}, timeout=0.5)
            assert not done  # blocked on the row lock
        assert (await second).out == []  # saw it advanced: nothing sent twice
    finally:
        await app1.stop()
