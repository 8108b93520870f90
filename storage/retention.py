"""Retention: the scheduled purge of everything past its date.

:func:`purge` deletes every row whose ``delete_after`` has passed, in dependency
order and in batches (one short transaction each, so the bot keeps answering),
then shreds key-store keys nobody references any more, then makes the deletion
physical (SQLite: ``secure_delete`` zeroes the rows, a ``wal_checkpoint(TRUNCATE)``
empties the WAL, ``VACUUM`` when asked). It is idempotent: a second run finds nothing.

Rules beyond "past its date":

* Teamwork rows of a case (notes, follow-ups, members, staff threads) live as long
  as their case: their date is moved to the case's when the case is still alive.
  Held messages keep their own, shorter retention.
* A contact with an open, living case lives as long as that case.
* An expired contact's cases become anonymous statistics rows exactly as on the
  person's /delete: no contact, no key, open ones closed with outcome ``expired``.
* Closed cases past their date are deleted; their ``case_events`` (no personal
  data) stay until their own date.
* Keys are shredded when their row went, or when no contact or case refers to
  them (orphans, e.g. a unit of work that failed after storing its key). Keys
  younger than two hours are spared: their unit may still be committing.

The closing of open cases nobody writes in needs the directory and sends
messages: it is casework (``handlers.casework.inactivity.close_inactive``), and
the app runs it before the purge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.clock import day, hour
from config.messages import Address, Platform
from config.settings import STATS_DAYS
from storage import outbox
from storage.db import Database
from storage.keystore import KeyStore
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
from storage.repositories import OPEN_STATUSES
from storage.vault import DecryptionError, aad

#: Main-database tables in the order the purge visits them (children first).
TABLES = (
    "held_messages",
    "case_notes",
    "followups",
    "case_members",
    "message_refs",
    "staff_threads",
    "staff_away",
    "referrals",
    "processed_updates",
    "outbox",
    "contacts",
    "cases",
    "case_events",
)
#: Keys younger than this may belong to a unit of work that has not committed yet.
KEY_GRACE = timedelta(hours=2)
#: Statistics event kind written here.
EXPIRED = "expired"

_CASE_CHILDREN: tuple[Any, ...] = (CaseNote, FollowUp, CaseMember, StaffThread)


@dataclass(slots=True)
class PurgeReport:
    """What one purge removed. Printed as counts only.

    Attributes:
        counts: rows deleted per table (``data_keys``: keys shredded).
        anonymised: cases turned into statistics rows (their contact expired).
        extended: rows whose date moved to their still-living case or contact.
        followup_ids: deleted follow-ups, so the app removes their scheduler jobs.
        case_codes: deleted cases, so the app forgets their staff threads in memory.
        rooms: chats of expired people on platforms with rooms (Matrix), so the bot
            leaves and forgets them.
        vacuumed: whether VACUUM ran.
        seconds: wall time.
    """

    now: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*TABLES, "data_keys"), 0))
    anonymised: int = 0
    extended: int = 0
    followup_ids: list[str] = field(default_factory=list)
    case_codes: list[str] = field(default_factory=list)
    rooms: list[Address] = field(default_factory=list)
    vacuumed: bool = False
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Rows deleted in the main database."""
        return sum(n for t, n in self.counts.items() if t != "data_keys")

    def lines(self) -> list[str]:
        """A printable summary."""
        out = [f"{t:<18} {n:>8}" for t, n in self.counts.items()]
        out.append(f"{'anonymised cases':<18} {self.anonymised:>8}")
        out.append(f"{'dates extended':<18} {self.extended:>8}")
        out.append(f"vacuum: {'yes' if self.vacuumed else 'no'}; {self.seconds:.2f} s")
        return out


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


SQLITE_BATCH = 500
SERVER_BATCH = 5_000


async def purge(
    db: Database,
    keystore: KeyStore,
    now: datetime,
    *,
    batch: int | None = None,
    vacuum: bool = False,
) -> PurgeReport:
    """Delete everything past its date, shred unused keys, make it physical.

    Args:
        db: the main database.
        keystore: the key store (its database is checkpointed too).
        now: the moment to purge at (truncated to the hour).
        batch: rows per transaction (default: 500 on SQLite, where a transaction holds
            the one write lock; 5,000 on PostgreSQL, where each batch's index scan
            walks the entries the batches before it left dead until VACUUM, so
            small batches make a large purge quadratic).
        vacuum: also run VACUUM (SQLite: rebuild the files; PostgreSQL: plain VACUUM).
    """
    started = time.perf_counter()
    batch = batch or (SQLITE_BATCH if db.is_sqlite else SERVER_BATCH)
    now = hour(now)
    report = PurgeReport(now)
    report.extended = await _follow_living_cases(db, now)
    c = report.counts
    c["held_messages"] += await _delete_expired(db, HeldMessage, now, batch)
    c["case_notes"] += await _delete_expired(db, CaseNote, now, batch)
    c["followups"] += await _delete_expired_followups(db, now, batch, report.followup_ids)
    c["case_members"] += await _delete_expired(db, CaseMember, now, batch)
    c["message_refs"] += await _delete_expired(db, MessageRef, now, batch)
    c["staff_threads"] += await _delete_expired(db, StaffThread, now, batch)
    c["staff_away"] += await _delete_expired(db, StaffAway, now, batch)
    c["referrals"] += await _delete_expired(db, Referral, now, batch)
    c["processed_updates"] += await _delete_expired(db, ProcessedUpdate, now, batch)
    c["outbox"] += await _delete_expired(db, OutboxEntry, now, batch)
    await _expire_contacts(db, keystore, now, batch, report)
    await _expire_open_cases(db, keystore, now, batch, report)
    await _delete_closed_cases(db, keystore, now, batch, report)
    c["case_events"] += await _delete_expired(db, CaseEvent, now, batch)
    await _sweep_keys(db, keystore, now, batch, report)
    await db.maintain(vacuum=vacuum, tables=TABLES)
    await keystore.db.maintain(vacuum=vacuum, tables=("data_keys",))
    report.vacuumed = vacuum
    report.seconds = time.perf_counter() - started
    return report


async def _follow_living_cases(db: Database, now: datetime) -> int:
    """Move stale dates of teamwork rows and contacts to their living case."""
    moved = 0
    living = select(Case.id).where(Case.delete_after > now)
    async with db.transaction() as s:
        for model in _CASE_CHILDREN:
            until = select(Case.delete_after).where(Case.id == model.case_id).scalar_subquery()
            stmt = (
                update(model)
                .where(model.delete_after <= now, model.case_id.in_(living))
                .values(delete_after=until)
                .execution_options(synchronize_session=False)
            )
            moved += _rowcount(await s.execute(stmt))
        open_living = select(Case.contact_id).where(
            Case.status.in_(OPEN_STATUSES), Case.delete_after > now, Case.contact_id.is_not(None)
        )
        until = (
            select(func.max(Case.delete_after))
            .where(Case.contact_id == Contact.id, Case.status.in_(OPEN_STATUSES))
            .scalar_subquery()
        )
        stmt = (
            update(Contact)
            .where(Contact.delete_after <= now, Contact.id.in_(open_living))
            .values(delete_after=until)
            .execution_options(synchronize_session=False)
        )
        moved += _rowcount(await s.execute(stmt))
    return moved


async def _delete_expired(db: Database, model: Any, now: datetime, batch: int) -> int:
    """Delete rows of one table past their date, ``batch`` per transaction."""
    pk = list(model.__table__.primary_key.columns)
    target = pk[0] if len(pk) == 1 else tuple_(*pk)
    total = 0
    while True:
        async with db.transaction() as s:
            chosen = select(*pk).where(model.delete_after <= now).limit(batch)
            stmt = (
                delete(model).where(target.in_(chosen)).execution_options(synchronize_session=False)
            )
            n = _rowcount(await s.execute(stmt))
        total += n
        if n < batch:
            return total


async def _delete_expired_followups(db: Database, now: datetime, batch: int, ids: list[str]) -> int:
    total = 0
    while True:
        async with db.transaction() as s:
            stmt = select(FollowUp.id).where(FollowUp.delete_after <= now).limit(batch)
            rows = await s.execute(stmt)
            chosen = [i for (i,) in rows]
            if chosen:
                await s.execute(delete(FollowUp).where(FollowUp.id.in_(chosen)))
        ids.extend(chosen)
        total += len(chosen)
        if len(chosen) < batch:
            return total


async def _drop_case_children(
    s: AsyncSession, case_ids: Sequence[str], report: PurgeReport, *, threads: bool
) -> None:
    """Delete what hangs off cases (held messages, notes, follow-ups, members[, threads])."""
    if not case_ids:
        return
    rows = await s.execute(select(FollowUp.id).where(FollowUp.case_id.in_(case_ids)))
    report.followup_ids.extend(i for (i,) in rows)
    models: list[tuple[str, Any]] = [
        ("held_messages", HeldMessage),
        ("case_notes", CaseNote),
        ("followups", FollowUp),
        ("case_members", CaseMember),
    ]
    if threads:
        models.append(("staff_threads", StaffThread))
    for table, model in models:
        result = await s.execute(delete(model).where(model.case_id.in_(case_ids)))
        report.counts[table] += _rowcount(result)


async def _anonymise(
    s: AsyncSession, cases: Sequence[Any], now: datetime, report: PurgeReport
) -> list[str]:
    """Turn cases into statistics rows like an erasure; returns their key ids."""
    if not cases:
        return []
    ids = [c.id for c in cases]
    still_open = [c for c in cases if c.status in OPEN_STATUSES]
    for c in still_open:
        s.add(
            CaseEvent(
                case_id=c.id,
                programme_id=c.programme_id,
                kind=EXPIRED,
                day=day(now),
                delete_after=now + timedelta(days=STATS_DAYS),
            )
        )
    if still_open:
        await s.execute(
            update(Case)
            .where(Case.id.in_([c.id for c in still_open]))
            .values(status="closed", outcome=EXPIRED)
            .execution_options(synchronize_session=False)
        )
    await s.execute(
        update(Case)
        .where(Case.id.in_(ids))
        .values(
            contact_id=None,
            key_id=None,
            claimed_by=None,
            pending_transfer=None,
            danger=None,  # statistics keep "urgent", never the kind of danger
            urgent_due_ct=None,
        )
        .execution_options(synchronize_session=False)
    )
    await _drop_case_children(s, ids, report, threads=False)
    report.anonymised += len(cases)
    return [c.key_id for c in cases if c.key_id]


_CASE_COLUMNS = (Case.id, Case.key_id, Case.status, Case.programme_id)


async def _expire_contacts(
    db: Database, keystore: KeyStore, now: datetime, batch: int, report: PurgeReport
) -> None:
    """Delete expired contacts; their cases become anonymous statistics rows."""
    while True:
        async with db.transaction() as s:
            stmt = select(Contact.id, Contact.key_id, Contact.platform, Contact.address_ct).where(
                Contact.delete_after <= now
            )
            rows = (await s.execute(stmt.limit(batch))).all()
            ids = [r[0] for r in rows]
            keys = [r[1] for r in rows]
            await _rooms_of(keystore, rows, report)
            if ids:
                of_them = select(*_CASE_COLUMNS).where(Case.contact_id.in_(ids))
                cases = (await s.execute(of_them)).all()
                keys += await _anonymise(s, cases, now, report)
                result = await s.execute(delete(MessageRef).where(MessageRef.contact_id.in_(ids)))
                report.counts["message_refs"] += _rowcount(result)
                result = await s.execute(delete(Contact).where(Contact.id.in_(ids)))
                report.counts["contacts"] += _rowcount(result)
                await _drop_waiting(s, keys, report)
        report.counts["data_keys"] += await keystore.shred(keys)
        if len(rows) < batch:
            return


async def _drop_waiting(s: AsyncSession, keys: Sequence[str], report: PurgeReport) -> None:
    """Delete outbox entries only the keys about to be shredded open (see storage.outbox)."""
    if keys:
        report.counts["outbox"] += await outbox.drop_covered(await s.connection(), keys)


async def _rooms_of(keystore: KeyStore, rows: Sequence[Any], report: PurgeReport) -> None:
    """Remember the chats of expired people where the bot can leave (Matrix rooms)."""
    wanted = [r for r in rows if r[2] == Platform.MATRIX.value]
    if not wanted:
        return
    deks = await keystore.fetch([r[1] for r in wanted])
    for contact_id, key_id, _, blob in wanted:
        dek = deks.get(key_id)
        if dek is None:
            continue
        try:
            raw = keystore.vault.open(dek, blob, aad("contacts", "address", contact_id))
            data = json.loads(raw)
        except (DecryptionError, ValueError):
            continue
        report.rooms.append(Address(Platform.MATRIX, str(data["c"])))


async def _expire_open_cases(
    db: Database, keystore: KeyStore, now: datetime, batch: int, report: PurgeReport
) -> None:
    """Open cases past their date whose contact lives on: close as expired, anonymise."""
    while True:
        async with db.transaction() as s:
            cases = (
                await s.execute(
                    select(*_CASE_COLUMNS)
                    .where(Case.status.in_(OPEN_STATUSES), Case.delete_after <= now)
                    .limit(batch)
                )
            ).all()
            keys = await _anonymise(s, cases, now, report)
            await _drop_waiting(s, keys, report)
        report.counts["data_keys"] += await keystore.shred(keys)
        if len(cases) < batch:
            return


async def _delete_closed_cases(
    db: Database, keystore: KeyStore, now: datetime, batch: int, report: PurgeReport
) -> None:
    """Delete closed cases past their date and all that hangs off them; events stay."""
    while True:
        async with db.transaction() as s:
            rows = (
                await s.execute(
                    select(Case.id, Case.key_id, Case.code)
                    .where(Case.status == "closed", Case.delete_after <= now)
                    .limit(batch)
                )
            ).all()
            ids = [i for i, _, _ in rows]
            if ids:
                await _drop_case_children(s, ids, report, threads=True)
                await s.execute(
                    update(CaseEvent)
                    .where(CaseEvent.case_id.in_(ids))
                    .values(case_id=None)
                    .execution_options(synchronize_session=False)
                )
                result = await s.execute(delete(Case).where(Case.id.in_(ids)))
                report.counts["cases"] += _rowcount(result)
        report.case_codes.extend(c for _, _, c in rows)
        report.counts["data_keys"] += await keystore.shred([k for _, k, _ in rows if k])
        if len(rows) < batch:
            return


async def _sweep_keys(
    db: Database, keystore: KeyStore, now: datetime, batch: int, report: PurgeReport
) -> None:
    """Shred keys no row (nor a waiting reply) refers to; move dates of keys in use to
    their row's date.

    The key store page is read before the main database, so a key stored after
    the page was read is never judged here.
    """
    after: str | None = None
    young = now - KEY_GRACE
    async with db.engine.connect() as conn:  # own keys of waiting replies (storage.outbox)
        waiting = await outbox.keys_in_use(conn)
    while True:
        page = await keystore.page(after, batch)
        if not page:
            return
        ids = [i for i, _, _ in page]
        used = {i: waiting[i] for i in ids if i in waiting}
        async with db.transaction() as s:
            for model in (Contact, Case):
                rows = await s.execute(
                    select(model.key_id, model.delete_after).where(model.key_id.in_(ids))
                )
                for key_id, until in rows:
                    if key_id not in used or until > used[key_id]:
                        used[key_id] = until
        orphans = [
            i
            for i, until, created in page
            if i not in used and (until <= now or created is None or created <= young)
        ]
        stale = {
            i: used[i] for i, until, _ in page if i in used and until <= now and used[i] > until
        }
        report.counts["data_keys"] += await keystore.shred(orphans)
        await keystore.extend(stale)
        report.extended += len(stale)
        if len(page) < batch:
            return
        after = ids[-1]
