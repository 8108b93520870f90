"""Retention: the purge (every table, dependency order, batches, keys) and inactive cases.

Runs on SQLite and PostgreSQL. Rows are seeded directly for the table-level rules
and driven through the memory transport for the journeys.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.app import App
from config.clock import FakeClock, hour
from config.settings import Settings
from handlers.casework.inactivity import warning_lead
from storage.db import Database
from storage.keystore import KeyStore, StoredKey
from storage.models import (
    Case,
    CaseEvent,
    CaseMember,
    CaseNote,
    Contact,
    FollowUp,
    HeldMessage,
    MessageRef,
    OutboxEntry,
    ProcessedUpdate,
    Referral,
    StaffAway,
    StaffThread,
)
from storage.repositories import new_id, unit
from storage.retention import TABLES, purge
from tests.conftest import OFFICE_TIME, make_settings
from tests.world import LONG_WINDOW, World, texts

NOW = hour(OFFICE_TIME)
PAST = NOW - timedelta(hours=1)
LATER = NOW + timedelta(days=30)


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[tuple[Database, KeyStore]]:
    """Migrated main database and key store, without an app."""
    app = App(settings, [], clock=FakeClock(OFFICE_TIME), schedule=False)
    await app.start()
    assert app.db is not None
    assert app.keystore is not None
    try:
        yield app.db, app.keystore
    finally:
        await app.stop()


def contact(key_id: str, until: datetime) -> Contact:
    return Contact(
        id=new_id(),
        pseudonym=new_id(),
        pseudonym_version=1,
        platform="memory",
        key_id=key_id,
        address_ct=b"sealed",
        locale="de",
        state="new",
        profile_ct=None,
        urgent=False,
        created_at=NOW,
        delete_after=until,
    )


def case(owner: Contact | None, key_id: str | None, until: datetime, status: str) -> Case:
    return Case(
        id=new_id(),
        code="K-" + new_id()[:4].upper(),
        contact_id=owner.id if owner else None,
        key_id=key_id,
        programme_id="alpha",
        status=status,
        audience="self",
        scene="right",
        region="MV",
        district=None,
        language="de",
        in_prison=False,
        urgent=False,
        route_step="match",
        opened_at=NOW,
        last_activity_at=NOW,
        delete_after=until,
        escalated=0,
    )


def children(of: Case, until: datetime) -> list[Any]:
    """A held message, note, follow-up, member and staff thread of a case."""
    return [
        HeldMessage(id=new_id(), case_id=of.id, seq=0, text_ct=b"sealed", delete_after=until),
        CaseNote(
            id=new_id(),
            case_id=of.id,
            author="Alex",
            text_ct=b"sealed",
            created_at=NOW,
            delete_after=until,
        ),
        FollowUp(
            id=new_id(),
            case_id=of.id,
            every_days=None,
            due_at=LATER,
            paused=False,
            delete_after=until,
        ),
        CaseMember(case_id=of.id, staff_key="alpha/a2", delete_after=until),
        StaffThread(
            id=new_id(),
            case_id=of.id,
            programme_id=of.programme_id,
            platform="memory",
            chat_id="alpha-room",
            thread_id=of.code,
            delete_after=until,
        ),
    ]


def event(of: Case | None, until: datetime) -> CaseEvent:
    return CaseEvent(
        case_id=of.id if of else None,
        programme_id="alpha",
        kind="opened",
        day=NOW.date(),
        delete_after=until,
    )


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.transaction() as s:
        stmt = select(func.count()).select_from(model).where(*where)
        return int((await s.execute(stmt)).scalar_one())


async def key_dates(ks: KeyStore) -> dict[str, datetime]:
    async with ks.db.transaction() as s:
        rows = await s.execute(select(StoredKey.id, StoredKey.delete_after))
        return {i: d for i, d in rows}


async def test_purge_deletes_what_is_past_its_date_in_every_table(
    stores: tuple[Database, KeyStore],
) -> None:
    db, ks = stores
    async with unit(db, ks, NOW - timedelta(hours=3)) as uow:
        old_orphan, _ = uow.keys.create(LATER)
    async with unit(db, ks, NOW) as uow:
        s, keys = uow.session, uow.keys
        new_orphan, _ = keys.create(LATER)
        # A: expired contact with a closed case whose rows are not yet due
        a = contact(keys.create(LATER)[0], PAST)
        ca = case(a, keys.create(LATER)[0], PAST, "closed")
        # B: living contact, open case; its teamwork rows carry a stale date
        b_key = keys.create(PAST)[0]
        b = contact(b_key, LATER)
        cb = case(b, keys.create(LATER)[0], LATER, "active")
        # C: contact past its date, but its open case lives: the contact lives on
        c = contact(keys.create(LATER)[0], PAST)
        cc = case(c, keys.create(LATER)[0], LATER, "new")
        # D: living contact whose open case is past its date
        d = contact(keys.create(LATER)[0], LATER)
        cd = case(d, keys.create(LATER)[0], PAST, "claimed")
        s.add_all([a, b, c, d])
        await s.flush()
        s.add_all([ca, cb, cc, cd])
        await s.flush()
        s.add_all(children(ca, LATER) + children(cb, PAST))
        s.add(MessageRef(id=new_id(), contact_id=a.id, ref_ct=b"sealed", delete_after=LATER))
        s.add_all([event(ca, LATER), event(cb, LATER), event(None, PAST)])
        s.add_all(
            [
                StaffAway(staff_key="alpha/a1", text="weg", delete_after=PAST),
                StaffAway(staff_key="alpha/a2", text="weg", delete_after=LATER),
                Referral(code="r-old", programme_id="alpha", source="x", delete_after=PAST),
                Referral(code="r-new", programme_id="alpha", source="x", delete_after=LATER),
                ProcessedUpdate(key="u-old", delete_after=PAST),
                ProcessedUpdate(key="u-new", delete_after=LATER),
                OutboxEntry(id="o-old", payload_ct=b"x", delete_after=PAST),
                OutboxEntry(id="o-new", payload_ct=b"x", delete_after=LATER),
            ]
        )
    async with db.transaction() as s:
        fa = (await s.execute(select(FollowUp.id).where(FollowUp.case_id == ca.id))).scalar_one()

    report = await purge(db, ks, NOW, batch=2)

    assert report.counts == {
        "held_messages": 2,  # A's case goes whole; B's held message has its own date
        "case_notes": 1,
        "followups": 1,
        "case_members": 1,
        "message_refs": 1,
        "staff_threads": 1,
        "staff_away": 1,
        "referrals": 1,
        "processed_updates": 1,
        "outbox": 1,
        "contacts": 1,  # A
        "cases": 2,  # A's closed case and D's expired open case
        "case_events": 1,
        "data_keys": 4,  # A's, A's case's, D's case's, the old orphan
    }
    assert report.anonymised == 2
    assert report.followup_ids == [fa]
    # B's teamwork rows, C's contact and B's stale key follow their living owner
    assert report.extended == 6
    assert await count(db, Contact) == 3
    assert await count(db, CaseNote, CaseNote.case_id == cb.id, CaseNote.delete_after == LATER) == 1
    assert await count(db, StaffThread, StaffThread.delete_after == LATER) == 1
    assert await count(db, Contact, Contact.id == c.id, Contact.delete_after == LATER) == 1
    assert await count(db, Case) == 2
    assert await count(db, Case, Case.id == cd.id) == 0
    assert await count(db, CaseEvent, CaseEvent.kind == "expired", CaseEvent.case_id.is_(None)) == 1
    assert await count(db, CaseEvent, CaseEvent.case_id == cb.id) == 1
    assert await count(db, CaseEvent, CaseEvent.case_id.is_(None)) == 2
    dates = await key_dates(ks)
    assert old_orphan not in dates
    assert new_orphan in dates  # its unit may still be committing: spared
    assert dates[b_key] == LATER
    assert set(dates) == {new_orphan, b_key, b.key_id, cb.key_id, c.key_id, cc.key_id, d.key_id}

    again = await purge(db, ks, NOW)
    assert again.total == 0
    assert again.counts["data_keys"] == 0
    assert (again.anonymised, again.extended, again.followup_ids) == (0, 0, [])
    later = await purge(db, ks, NOW + timedelta(hours=3))
    assert later.counts["data_keys"] == 1  # the young orphan, now old enough


async def test_expired_contact_turns_open_case_into_statistics_like_erasure(
    stores: tuple[Database, KeyStore],
) -> None:
    """An expired contact's open case: no contact, no key, closed, outcome expired."""
    db, ks = stores
    async with unit(db, ks, NOW) as uow:
        x = contact(uow.keys.create(LATER)[0], PAST)
        open_case = case(x, uow.keys.create(LATER)[0], PAST, "active")
        uow.session.add(x)
        await uow.session.flush()
        uow.session.add(open_case)
        await uow.session.flush()
        uow.session.add_all(children(open_case, LATER))
    report = await purge(db, ks, NOW)
    assert report.counts["contacts"] == 1
    assert report.counts["cases"] == 1
    assert report.anonymised == 1
    assert await ks.count() == 0
    async with db.transaction() as s:
        kinds = (await s.execute(select(CaseEvent.kind, CaseEvent.case_id))).all()
    assert kinds == [("expired", None)]
    for model in (Contact, Case, HeldMessage, CaseNote, FollowUp, CaseMember, StaffThread):
        assert await count(db, model) == 0, model.__tablename__


async def test_closed_case_in_grace_period_keeps_its_rows_until_its_date(
    stores: tuple[Database, KeyStore],
) -> None:
    db, ks = stores
    async with unit(db, ks, NOW) as uow:
        x = contact(uow.keys.create(LATER)[0], LATER)
        closed = case(x, uow.keys.create(LATER)[0], NOW + timedelta(days=7), "closed")
        uow.session.add(x)
        await uow.session.flush()
        uow.session.add(closed)
        await uow.session.flush()
        uow.session.add_all(children(closed, PAST)[1:])  # notes etc. with stale dates
    first = await purge(db, ks, NOW)
    assert first.total == 0
    assert first.extended == 4
    second = await purge(db, ks, NOW + timedelta(days=7))
    assert second.counts["cases"] == 1
    assert second.counts["case_notes"] == 1
    assert second.counts["data_keys"] == 1  # the case key; the contact lives on
    assert await count(db, Contact) == 1


async def test_purge_of_10k_rows_runs_in_batches(stores: tuple[Database, KeyStore]) -> None:
    """10,000 expired contacts with a closed case, a held message and a key each."""
    db, ks = stores
    n = 10_000
    contacts, cases, held, keys = [], [], [], []
    for i in range(n):
        cid, kid, case_id = f"c{i:07d}", f"k{i:07d}", f"s{i:07d}"
        keys.append({"id": kid, "wrapped": b"w" * 60, "delete_after": PAST, "created_at": PAST})
        contacts.append(
            {
                "id": cid,
                "pseudonym": f"p{i:07d}",
                "pseudonym_version": 1,
                "platform": "memory",
                "key_id": kid,
                "address_ct": b"sealed",
                "locale": "de",
                "state": "new",
                "profile_ct": None,
                "urgent": False,
                "created_at": PAST,
                "delete_after": PAST,
            }
        )
        row = {c.name: getattr(case(None, None, PAST, "closed"), c.name) for c in Case.__table__.c}
        cases.append(row | {"id": case_id, "code": f"K-{i:07d}", "contact_id": cid})
        held.append(
            {
                "id": f"h{i:07d}",
                "case_id": case_id,
                "seq": 0,
                "text_ct": b"x",
                "delete_after": LATER,
            }
        )
    async with ks.db.transaction() as s:
        await s.execute(insert(StoredKey), keys)
    async with db.transaction() as s:
        await s.execute(insert(Contact), contacts)
        await s.execute(insert(Case), cases)
        await s.execute(insert(HeldMessage), held)

    started = time.perf_counter()
    report = await purge(db, ks, NOW, batch=500)
    elapsed = time.perf_counter() - started
    print(f"purge of {n} contacts + {n} cases + {n} held + {n} keys: {elapsed:.2f} s")
    assert report.counts["contacts"] == n
    assert report.counts["cases"] == n
    assert report.counts["held_messages"] == n
    assert report.counts["data_keys"] == n
    assert await count(db, Contact) + await count(db, Case) + await ks.count() == 0
    assert elapsed < 60


# -- through the app ------------------------------------------------------------------------
async def test_purge_is_scheduled_hourly(world: World) -> None:
    assert world.app.scheduler is not None
    job = world.app.scheduler._sched.get_job("purge")
    assert job is not None
    assert job.trigger.interval == timedelta(minutes=60)


async def test_abandoned_intake_is_purged_after_48_hours(world: World) -> None:
    w = world
    await w.person("p1", "/start", "b:consent:yes", "b:safety:no")
    assert await w.count(Contact) == 1
    w.clock.advance(hours=47)
    await w.app.purge()
    assert await w.count(Contact) == 1
    w.clock.advance(hours=2)
    await w.app.purge()
    assert w.app.last_purge is not None
    assert w.app.last_purge.counts["contacts"] == 1
    assert w.app.last_purge.counts["data_keys"] == 1
    assert await w.count(Contact) == 0
    assert w.app.keystore is not None
    assert await w.app.keystore.count() == 0


async def test_inactive_case_is_warned_then_closed_with_no_contact(world: World) -> None:
    w = world
    retention = w.app.settings.retention
    code = await w.open("p1", message="hallo")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} every 30d")
    await w.staff("a1", f"/note {code} Notiz")
    w.t.pop("p1")
    w.t.pop("alpha-room")
    assert w.app.scheduler is not None
    w.app.scheduler.horizon = LONG_WINDOW  # this test is about removing jobs
    await w.app.load_followup_window()
    assert len(w.app.scheduler.followup_jobs()) == 1

    w.clock.advance(days=retention.inactive_case_days - warning_lead(retention) - 1)
    await w.app.purge()
    assert w.t.pop("p1") == []
    w.clock.advance(days=1)
    await w.app.purge()
    warning = texts(w.t.pop("p1"))
    assert "schließen wir deine Anfrage" in warning
    assert "Alpha" not in warning  # neutral: someone else may read the phone
    assert f"[{code}] Seit 83 Tagen keine Aktivität" in texts(w.t.pop("alpha-room"))
    assert w.app.last_inactivity is not None
    assert w.app.last_inactivity.warned == 1
    w.clock.advance(hours=5)
    await w.app.purge()
    assert w.t.pop("p1") == []  # warned once
    assert w.t.pop("alpha-room") == []

    w.clock.advance(days=warning_lead(retention))
    await w.app.purge()
    assert w.app.last_inactivity.closed == 1
    assert f"[{code}] Wegen Inaktivität geschlossen" in texts(w.t.pop("alpha-room"))
    assert w.app.scheduler.followup_jobs() == {}
    for model in (Contact, Case, CaseNote, FollowUp, HeldMessage):
        assert await w.count(model) == 0, model.__tablename__
    assert w.app.keystore is not None
    assert await w.app.keystore.count() == 0
    assert await w.count(CaseEvent, CaseEvent.kind == "outcome:no_contact") == 1
    again = await w.person("p1", "hallo")
    assert any(b.data == "consent:yes" for m in again for b in m.flat_buttons)


async def test_activity_rearms_the_inactivity_warning(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("p1")
    w.clock.advance(days=83)
    await w.app.purge()
    assert "schließen wir" in texts(w.t.pop("p1"))
    await w.person("p1", "Ich bin noch da")  # the case lives 90 more days
    w.clock.advance(days=82)
    await w.app.purge()
    assert w.t.pop("p1") == []
    w.clock.advance(days=1)
    await w.app.purge()
    assert "schließen wir" in texts(w.t.pop("p1"))
    assert (await w.case(code)).status == "claimed"


async def test_case_past_its_date_unwarned_is_warned_first(world: World) -> None:
    """The bot was down during the warning window: warn now, close a week later."""
    w = world
    code = await w.open("p1")
    w.t.pop("p1")
    w.clock.advance(days=120)
    await w.app.purge()
    assert "schließen wir" in texts(w.t.pop("p1"))
    assert (await w.case(code)).status == "new"
    assert await w.count(Contact) == 1
    w.clock.advance(days=6)
    await w.app.purge()
    assert (await w.case(code)).status == "new"
    w.clock.advance(days=1)
    await w.app.purge()
    assert await w.count(Case) == 0
    assert await w.count(Contact) == 0


async def test_purged_followups_lose_their_scheduler_jobs(world: World) -> None:
    w = world
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    await w.staff("a1", f"/followup {code} 60d")
    assert w.app.scheduler is not None
    w.app.scheduler.horizon = LONG_WINDOW  # this test is about removing jobs
    await w.app.load_followup_window()
    assert len(w.app.scheduler.followup_jobs()) == 1
    assert w.app.db is not None
    async with w.app.db.transaction() as s:  # the case ends without the service noticing
        row = (await s.execute(select(Case).where(Case.code == code))).scalar_one()
        row.status, row.delete_after = "closed", hour(w.clock.now())
    await w.app.purge()
    assert w.app.last_purge is not None
    assert len(w.app.last_purge.followup_ids) == 1
    assert w.app.scheduler.followup_jobs() == {}


async def test_living_persons_key_outlives_its_first_date(world: World) -> None:
    """A contact's key is made with the 48 h intake date; the case keeps it alive."""
    w = world
    code = await w.open("p1", message="bitte lesen")
    w.clock.advance(days=10)
    await w.app.purge()
    assert w.app.last_purge is not None
    assert w.app.last_purge.counts["data_keys"] == 0
    assert w.app.last_purge.extended >= 1
    w.t.pop("p1")
    await w.person("p1", "noch eine Nachricht")
    room = texts(await w.staff("a1", f"/claim {code}"))
    assert "bitte lesen" in room
    assert "noch eine Nachricht" in room


def test_warning_lead_is_shorter_than_the_inactivity_period() -> None:
    from config.settings import RetentionSettings

    assert warning_lead(RetentionSettings()) == 7
    assert warning_lead(RetentionSettings(inactive_case_days=3, inactivity_warning_days=7)) == 2
    assert warning_lead(RetentionSettings(inactive_case_days=1)) == 0


def test_purge_visits_children_before_parents() -> None:
    order = {t: i for i, t in enumerate(TABLES)}
    for child, parent in [
        ("held_messages", "cases"),
        ("case_notes", "cases"),
        ("followups", "cases"),
        ("message_refs", "contacts"),
        ("contacts", "cases"),  # a contact's cases are anonymised before closed ones go
    ]:
        assert order[child] < order[parent]


async def test_key_store_made_before_created_at_is_upgraded(tmp_path: Path) -> None:
    """An older keys.db gains ``created_at``; its unreferenced keys count as old orphans."""
    path = tmp_path / "keys.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE data_keys (id VARCHAR(24) PRIMARY KEY, wrapped BLOB NOT NULL,"
            " delete_after DATETIME NOT NULL)"
        )
        conn.execute(
            "INSERT INTO data_keys VALUES ('legacy', x'00', ?)",
            (LATER.replace(tzinfo=None).isoformat(sep=" "),),
        )
    settings = make_settings(tmp_path / "data")
    app = App(settings, [], clock=FakeClock(OFFICE_TIME), schedule=False)
    await app.start()
    keys_db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        assert app.db is not None
        assert app.vault is not None
        ks = KeyStore(keys_db, app.vault)
        await ks.create_schema()
        await ks.create_schema()  # idempotent
        assert [(i, c) for i, _, c in await ks.page(None, 10)] == [("legacy", None)]
        report = await purge(app.db, ks, NOW)
        assert report.counts["data_keys"] == 1
        assert await ks.count() == 0
    finally:
        await keys_db.dispose()
        await app.stop()
