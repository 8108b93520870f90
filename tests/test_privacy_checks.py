"""Privacy checks 5, 6 and 7 of ../shared/privacy.md, and coarse time (issue 6, part 6).

* Check 5: forced expiry with a fake clock -> purge -> 0 rows of the person and
  their dependents in every table; the sentinels, the pseudonym and the
  ciphertexts are gone from the database files (SQLite: main file, WAL, journal).
* Check 6: after "delete me": 0 rows linked to them, 0 scheduled jobs, 0 log lines
  at DEBUG that link to them. "Linked" means: their contact id, pseudonym, platform
  id, key ids, case ids or case code. The case code is a staff-side handle the
  person also saw; after erasure it survives only on the anonymous statistics row
  (no contact, no key) until that row's date. It never appears in logs.
* Check 7: a copy of the main database taken before an erasure, opened by a new
  app with the same key store and keys, cannot decrypt the person's address,
  profile or held message (LookupError / DecryptionError with every key left).
"""

from __future__ import annotations

import base64
import io
import logging
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Date, DateTime, func, or_, select

from bot.app import App
from bot.logsetup import setup_logging
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.messages import Platform
from config.settings import CryptoSettings, Settings
from storage.keystore import KeyBase, StoredKey
from storage.models import (
    Base,
    Case,
    CaseEvent,
    CaseMember,
    CaseNote,
    Contact,
    FollowUp,
    HeldMessage,
    MessageRef,
    OutboxEntry,
    Referral,
    StaffThread,
)
from storage.repositories import unit
from storage.vault import DecryptionError
from tests.conftest import OFFICE_TIME, PG_URL, make_settings
from tests.test_sentinels import find
from tests.world import LONG_WINDOW, World, directory_without, texts

USER_ID = 7319046528
WHO = str(USER_ID)
HELD = "SentinelHeld-Xq4Lw"
RELAY = "SentinelRelay-Pz8Kd"
NOTE = "SentinelNote-Jm2Vb"
COUNSELLOR = "SentinelCounsellor-Rt6Yc"


@dataclass
class Trace:
    """What identifies one person in storage (captured while they exist)."""

    contact_id: str
    pseudonym: str
    key_ids: list[str]
    case_ids: list[str]
    codes: list[str]
    blobs: list[bytes]

    def values(self) -> list[str]:
        return [self.contact_id, self.pseudonym, *self.key_ids, *self.case_ids, *self.codes]


async def trace(app: App, who: str) -> Trace:
    """Capture the person's ids, pseudonym, keys and ciphertexts."""
    assert app.db is not None
    assert app.vault is not None
    assert app.keystore is not None
    pseudonym = app.vault.pseudonym("memory", who)
    async with app.db.transaction() as s:
        contact = (
            await s.execute(select(Contact).where(Contact.pseudonym == pseudonym))
        ).scalar_one()
        cases = list((await s.execute(select(Case).where(Case.contact_id == contact.id))).scalars())
        case_ids = [c.id for c in cases]
        blobs = [contact.address_ct, *([contact.profile_ct] if contact.profile_ct else [])]
        for model, column in ((HeldMessage, "text_ct"), (CaseNote, "text_ct")):
            rows = await s.execute(
                select(getattr(model, column)).where(model.case_id.in_(case_ids))
            )
            blobs.extend(rows.scalars())
        refs = await s.execute(select(MessageRef.ref_ct).where(MessageRef.contact_id == contact.id))
        blobs.extend(refs.scalars())
    key_ids = [contact.key_id, *(c.key_id for c in cases if c.key_id)]
    async with app.keystore.db.transaction() as s:
        wrapped = await s.execute(select(StoredKey.wrapped).where(StoredKey.id.in_(key_ids)))
        blobs.extend(wrapped.scalars())
    return Trace(contact.id, pseudonym, key_ids, case_ids, [c.code for c in cases], blobs)


def linked(t: Trace) -> dict[str, Any]:
    """Per main-database table: the condition for rows that belong to the person."""
    cases = t.case_ids
    return {
        "contacts": or_(Contact.id == t.contact_id, Contact.pseudonym == t.pseudonym),
        "cases": or_(Case.contact_id == t.contact_id, Case.id.in_(cases)),
        "held_messages": HeldMessage.case_id.in_(cases),
        "case_notes": CaseNote.case_id.in_(cases),
        "followups": FollowUp.case_id.in_(cases),
        "case_members": CaseMember.case_id.in_(cases),
        "staff_threads": StaffThread.case_id.in_(cases),
        "message_refs": MessageRef.contact_id == t.contact_id,
        "case_events": CaseEvent.case_id.in_(cases),
        # no column of these can hold anything of a person:
        "processed_updates": None,
        "referrals": None,
        "staff_away": None,
        # replies in flight (encrypted, no clear link), deleted right after sending:
        "outbox": None,
    }


async def linked_rows(app: App, t: Trace) -> dict[str, int]:
    """Rows of the person in every table of both databases."""
    assert app.db is not None
    assert app.keystore is not None
    rules = linked(t)
    assert set(rules) == set(Base.metadata.tables), "a new table needs a rule here"
    out: dict[str, int] = {}
    async with app.db.transaction() as s:
        for name, rule in rules.items():
            if rule is None:
                continue
            table = Base.metadata.tables[name]
            stmt = select(func.count()).select_from(table).where(rule)
            out[name] = int((await s.execute(stmt)).scalar_one())
    async with app.keystore.db.transaction() as s:
        stmt = select(func.count()).select_from(StoredKey).where(StoredKey.id.in_(t.key_ids))
        out["data_keys"] = int((await s.execute(stmt)).scalar_one())
    return out


def database_files(data_dir: Path) -> list[Path]:
    """Main database and key store with their -wal / -shm / -journal files."""
    return sorted(p for p in data_dir.iterdir() if p.name.startswith(("ausweg.db", "keys.db")))


def leftovers(data_dir: Path, t: Trace, sentinels: tuple[str | int, ...]) -> list[str]:
    """Which traces of the person any database file still contains."""
    found = []
    for path in database_files(data_dir):
        raw = path.read_bytes()
        for value in (*sentinels, *t.values()):
            if find(raw, value):
                found.append(f"{value!r} in {path.name}")
        found.extend(f"a ciphertext in {path.name}" for blob in t.blobs if blob in raw)
    return found


@pytest.fixture
async def world(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The casework world with forum-like threads (overrides the shared fixture)."""
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


async def full_journey(w: World, who: str = WHO) -> str:
    """Case with a held message, claim, relay both ways, note, follow-up, stored refs."""
    code = await w.open(who, message=HELD)
    await w.staff("a1", f"/claim {code}", thread=code)
    await w.person(who, RELAY)
    await w.staff("a1", COUNSELLOR, thread=code)
    await w.staff("a1", f"/note {code} {NOTE}", thread=code)
    await w.staff("a1", f"/followup {code} weekly", thread=code)
    await w.staff("a1", f"/invite {code} Sam", thread=code)
    await w.app.flush_refs()
    delivered = "\n".join(m.text for m in w.t.sent)
    assert all(s in delivered for s in (HELD, RELAY, COUNSELLOR))
    return code


# -- check 5 ------------------------------------------------------------------------------
async def test_forced_expiry_purges_person_and_dependents_from_every_table_and_file(
    world: World, backend: str
) -> None:
    """Privacy check 5."""
    w = world
    assert w.app.db is not None
    code = await full_journey(w)
    assert w.app.threads.thread_of(code, "alpha", Platform.MEMORY) is not None
    t = await trace(w.app, WHO)
    before = await linked_rows(w.app, t)
    assert before["contacts"] == before["cases"] == before["case_notes"] == 1
    assert before["followups"] == before["case_members"] == before["staff_threads"] == 1
    assert before["message_refs"] > 0
    assert before["data_keys"] == 2
    data_dir = w.app.settings.data_dir
    if backend == "sqlite":  # the check can fail: the pseudonym is in the file now
        await w.app.db.maintain()
        assert any(t.pseudonym in s for s in leftovers(data_dir, t, ()))

    w.clock.advance(days=80)
    other = await w.open("another-person")  # must survive: not expired
    w.clock.advance(days=3)
    await w.app.purge()  # warning
    w.clock.advance(days=7)
    await w.app.purge()  # closed (no_contact), then purged
    assert w.app.last_purge is not None
    assert w.app.last_purge.counts["contacts"] == 1

    after = await linked_rows(w.app, t)
    assert after == dict.fromkeys(after, 0), after
    assert await w.count(Contact) == 1
    assert (await w.case(other)).status == "new"
    assert w.app.scheduler is not None
    assert w.app.scheduler.followup_jobs() == {}
    assert w.app.threads.thread_of(code, "alpha", Platform.MEMORY) is None
    if backend == "sqlite":
        assert leftovers(data_dir, t, (USER_ID, HELD, RELAY, NOTE, COUNSELLOR)) == []
        assert (data_dir / "ausweg.db-wal").stat().st_size == 0


async def test_key_bytes_never_reach_the_database_files(tmp_path: Path, clock: FakeClock) -> None:
    """Privacy check 2 (the storage half): master, pseudonym and plain data keys stay out.

    SQLite only: the files are read byte by byte.
    """
    transport = MemoryTransport(threads=True)
    app = App(
        make_settings(tmp_path / "data"), [transport], clock=clock, directory=directory_without()
    )
    await app.start()
    try:
        await _no_key_bytes(World(app, transport, clock))
    finally:
        await app.stop()


async def _no_key_bytes(w: World) -> None:
    assert w.app.db is not None
    assert w.app.keystore is not None
    await full_journey(w)
    await w.app.db.maintain()
    await w.app.keystore.db.maintain()
    crypto = w.app.settings.crypto
    configured = [
        base64.b64decode(k.get_secret_value())
        for k in (*crypto.master_keys.values(), *crypto.pseudonym_keys.values())
    ]
    plain = list((await w.app.keystore.fetch(await w.app.keystore.ids())).values())
    assert len(plain) == 2
    files = database_files(w.app.settings.data_dir)
    assert any(p.name == "keys.db" for p in files)
    for key in (*configured, *plain):
        forms = [key, key.hex().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]
        for path in files:
            raw = path.read_bytes()
            assert not any(form in raw for form in forms), path.name


# -- check 6 ------------------------------------------------------------------------------
async def test_delete_me_leaves_no_rows_no_jobs_and_no_log_lines(world: World) -> None:
    """Privacy check 6."""
    w = world
    buf = io.StringIO()
    handler = setup_logging("DEBUG", stream=buf)
    try:
        code = await full_journey(w)
        t = await trace(w.app, WHO)
        assert w.app.scheduler is not None
        w.app.scheduler.horizon = LONG_WINDOW  # this test is about removing jobs
        await w.app.load_followup_window()
        assert len(w.app.scheduler.followup_jobs()) == 1
        await w.person(WHO, RELAY)  # a pending ref in memory, too
        confirm = await w.person(WHO, "/delete")
        assert any(b.data == "delete:yes" for m in confirm for b in m.flat_buttons)
        done = texts(await w.person(WHO, "b:delete:yes"))
        assert "Quittung" in done
        await w.app.flush_refs()
        logging.getLogger("bot.router").debug("debug logging is on")
        logging.getLogger("bot.router").error("handling failed: %s", "RuntimeError")
    finally:
        logging.getLogger().removeHandler(handler)

    rows = await linked_rows(w.app, t)
    # the anonymous statistics row keeps its id and code, nothing that leads to them
    assert rows.pop("cases") == 1
    assert rows.pop("case_events") > 0
    assert rows.pop("staff_threads") == 1  # the staff room's thread of the case
    assert rows == dict.fromkeys(rows, 0), rows
    case = await w.case(code)
    assert (case.contact_id, case.key_id, case.claimed_by, case.status) == (
        None,
        None,
        None,
        "closed",
    )
    assert w.app.scheduler.followup_jobs() == {}
    log = buf.getvalue()
    assert "debug logging is on" in log
    assert "handling failed" in log
    for value in (USER_ID, *t.values(), HELD, RELAY, NOTE, COUNSELLOR):
        assert find(log.encode(), value) == [], f"{value!r} in the log"

    # after the statistics row's date nothing of the case is left either
    w.clock.advance(days=91)
    await w.app.purge()
    rows = await linked_rows(w.app, t)
    assert rows.pop("case_events") == 0
    assert rows == dict.fromkeys(rows, 0), rows


# -- check 7 ------------------------------------------------------------------------------
async def backup(app: App, tmp_path: Path, backend: str) -> tuple[Settings, str | None]:
    """Copy the main database (SQLite: file after a checkpoint; PostgreSQL: schema)."""
    assert app.db is not None
    crypto = CryptoSettings(
        master_keys=dict(app.settings.crypto.master_keys),
        pseudonym_keys=dict(app.settings.crypto.pseudonym_keys),
        keystore_url=app.settings.keystore_url,  # the live key store, not a copy
    )
    if backend == "sqlite":
        await app.db.maintain()
        target = tmp_path / "backup"
        target.mkdir()
        shutil.copy(app.settings.data_dir / "ausweg.db", target / "ausweg.db")
        settings = make_settings(target)
        settings.crypto = crypto
        return settings, None
    import asyncpg

    source = app.settings.database.connect_args["server_settings"]["search_path"]
    schema = "b_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        for name in [*Base.metadata.tables, "alembic_version"]:
            await conn.execute(
                f"CREATE TABLE {schema}.{name} (LIKE {source}.{name} INCLUDING ALL);"  # noqa: S608
                f"INSERT INTO {schema}.{name} SELECT * FROM {source}.{name}"
            )
    finally:
        await conn.close()
    settings = make_settings(tmp_path / "backup", PG_URL, server_settings={"search_path": schema})
    settings.crypto = crypto
    return settings, schema


async def drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def read_back(app: App, pseudonym: str) -> dict[str, Any]:
    """Decrypt the person's address, profile and held message from ``app``'s database."""
    assert app.db is not None
    assert app.keystore is not None
    async with unit(app.db, app.keystore, app.clock.now()) as uow:
        s = uow.session
        contact = (
            await s.execute(select(Contact).where(Contact.pseudonym == pseudonym))
        ).scalar_one()
        case = (await s.execute(select(Case).where(Case.contact_id == contact.id))).scalar_one()
        held = (
            await s.execute(select(HeldMessage).where(HeldMessage.case_id == case.id))
        ).scalar_one()
        out: dict[str, Any] = {"held_ct": held.text_ct, "address_ct": contact.address_ct}
        dek = await uow.keys.get(contact.key_id)
        out["address"] = uow.keys.open_json(
            dek, "contacts", "address", contact.id, contact.address_ct
        )
        if contact.profile_ct is not None:
            out["profile"] = uow.keys.open_json(
                dek, "contacts", "profile", contact.id, contact.profile_ct
            )
        assert case.key_id is not None
        case_dek = await uow.keys.get(case.key_id)
        out["held"] = uow.keys.open_json(case_dek, "held_messages", "text", held.id, held.text_ct)
        out["ids"] = (contact.id, held.id)
        return out


async def test_backup_taken_before_erasure_cannot_reveal_the_person(
    world: World, tmp_path: Path, backend: str
) -> None:
    """Privacy check 7 (crypto-shredding)."""
    w = world
    assert w.app.vault is not None
    await w.open(WHO, message=HELD)
    await w.open("bystander", message="another person's words")
    pseudonym = w.app.vault.pseudonym("memory", WHO)
    settings, schema = await backup(w.app, tmp_path, backend)
    try:
        # control: with the key store intact the backup opens
        restored = App(settings, [], clock=FakeClock(OFFICE_TIME), schedule=False)
        await restored.start()
        try:
            seen = await read_back(restored, pseudonym)
        finally:
            await restored.stop()
        assert seen["held"] == HELD
        assert seen["address"]["a"] == WHO

        await w.person(WHO, "/delete", "b:delete:yes")
        assert await w.count(Contact) == 1

        transport = MemoryTransport()
        restored = App(settings, [transport], clock=FakeClock(OFFICE_TIME), schedule=False)
        await restored.start()
        try:
            assert restored.keystore is not None
            with pytest.raises(LookupError):
                await read_back(restored, pseudonym)
            # every key still in the store: none opens the person's ciphertexts
            remaining = await restored.keystore.fetch(await restored.keystore.ids())
            assert len(remaining) == 2  # the bystander's contact and case keys
            contact_id, held_id = seen["ids"]
            for dek in remaining.values():
                with pytest.raises(DecryptionError):
                    restored.keystore.vault.open(
                        dek, seen["held_ct"], b"held_messages\x1ftext\x1f" + held_id.encode()
                    )
                with pytest.raises(DecryptionError):
                    restored.keystore.vault.open(
                        dek, seen["address_ct"], b"contacts\x1faddress\x1f" + contact_id.encode()
                    )
            # the person writes to the restored bot: it cannot reach their data
            await transport.push(WHO, "hallo", update_id="after-restore")
            replies = texts(transport.pop(WHO))
            assert "schiefgegangen" in replies
            assert HELD not in "\n".join(m.text for m in transport.sent)
        finally:
            await restored.stop()
        if backend == "sqlite":
            for path in database_files(tmp_path / "backup"):
                assert find(path.read_bytes(), HELD) == []
                assert find(path.read_bytes(), USER_ID) == []
    finally:
        await drop_schema(schema)


# -- coarse time (issue 6, part 6) -------------------------------------------------------------
async def test_every_stored_timestamp_is_coarse(settings: Settings) -> None:
    """No stored time is finer than an hour; statistics events carry only a day."""
    odd = datetime(2026, 11, 17, 9, 37, 12, 345678, tzinfo=UTC)
    clock = FakeClock(odd)
    transport = MemoryTransport(threads=True)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        assert app.db is not None
        async with app.db.transaction() as s:
            until = odd + timedelta(days=30)
            s.add(Referral(code="flyer1", programme_id="alpha", source="x", delete_after=until))
            # an outbox entry normally lives only for the moment between commit and send
            s.add(OutboxEntry(id="inflight", payload_ct=b"x", delete_after=until))
        code = await full_journey(w)
        await w.open("waiting", message="still held")
        await w.staff("a1", "/away Bin im Urlaub", thread=code)
        clock.advance(minutes=23, seconds=7)
        await w.person(WHO, "noch was")
        await app.flush_refs()
        await app.purge()  # moves dates of rows that follow their case, too

        checked: dict[str, int] = {}
        for metadata, db in ((Base.metadata, app.db), (KeyBase.metadata, app.keys_db)):
            assert db is not None
            async with db.transaction() as s:
                for table in metadata.sorted_tables:
                    for column in table.columns:
                        if isinstance(column.type, Date):
                            days = (await s.execute(select(column))).scalars().all()
                            assert all(type(d) is date for d in days), column
                            checked[f"{table.name}.{column.name}"] = len(days)
                        elif isinstance(column.type, DateTime) or "UTCDateTime" in repr(
                            column.type
                        ):
                            values = [v for v in (await s.execute(select(column))).scalars() if v]
                            fine = [
                                v
                                for v in values
                                if (v.minute, v.second, v.microsecond) != (0, 0, 0)
                            ]
                            assert fine == [], f"{table.name}.{column.name}: {fine}"
                            checked[f"{table.name}.{column.name}"] = len(values)
    finally:
        await app.stop()
    empty = sorted(name for name, n in checked.items() if n == 0)
    assert empty == [], f"no rows to check in {empty}"
    assert "followups.due_at" in checked
    assert "case_events.day" in checked
    assert "data_keys.created_at" in checked
    assert len(checked) >= 20


def test_coarse_type_truncates_to_the_hour() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from storage.models import UTCDateTime

    t = UTCDateTime()
    value = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    truncated = datetime(2026, 1, 2, 3, tzinfo=UTC)
    assert t.process_bind_param(value, sqlite.dialect()) == truncated.replace(tzinfo=None)
    assert t.process_bind_param(value, postgresql.dialect()) == truncated
    with pytest.raises(ValueError, match="naive"):
        t.process_bind_param(datetime(2026, 1, 2), sqlite.dialect())  # noqa: DTZ001
