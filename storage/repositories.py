"""Typed data access. Each repository wraps one session (one transaction)."""

# size: the unit of work and its repositories share one session, one connection and the
# steps after commit; the next split is one module per repository (issue 13 follow-up).

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Row,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import configure_mappers, make_transient_to_detached

from storage import outbox
from storage.db import Database
from storage.keystore import KeyStore
from storage.models import Base, Case, CaseEvent, Contact, FollowUp, HeldMessage, UTCDateTime
from storage.vault import aad

_M = TypeVar("_M", bound=Base)
OPEN_STATUSES = ("new", "claimed", "active", "waiting")
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

log = logging.getLogger(__name__)


def new_id() -> str:
    """A random row id (no order, no meaning)."""
    return secrets.token_hex(8)


def new_case_code() -> str:
    """A short code staff and person can read out, e.g. ``K-7F3Q``."""
    return "K-" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4))


class Keys:
    """Data keys for one unit of work, and sealing of fields bound to their row.

    New keys are written to the key store just before the main transaction
    commits; shreds are applied right after it committed.
    """

    def __init__(self, store: KeyStore, now: datetime | None = None) -> None:
        self.store = store
        self.vault = store.vault
        self.now = now
        self._plain: dict[str, bytes] = {}
        self._new: list[tuple[str, bytes, bytes, datetime]] = []
        self._shred: list[str] = []
        #: How many of them protected a person's or a case's data (an erasure): those make
        #: the unit checkpoint the databases (see :func:`unit`).
        self._erased = 0

    def create(self, delete_after: datetime) -> tuple[str, bytes]:
        """A new data key; returns (key id, plain key)."""
        key_id = new_id()
        dek, wrapped = self.vault.new_data_key(key_id)
        self._new.append((key_id, dek, wrapped, delete_after))
        self._plain[key_id] = dek
        return key_id, dek

    async def get(self, key_id: str) -> bytes:
        """The plain data key of an id; LookupError once it was shredded."""
        dek = self._plain.get(key_id)
        if dek is None:
            dek = (await self.store.fetch([key_id])).get(key_id)
            if dek is None:
                raise LookupError("data key was shredded")
            self._plain[key_id] = dek
        return dek

    async def get_many(self, key_ids: Sequence[str]) -> dict[str, bytes]:
        """Plain keys of several ids (shredded ones are absent)."""
        missing = [k for k in key_ids if k not in self._plain]
        if missing:
            self._plain.update(await self.store.fetch(missing))
        return {k: self._plain[k] for k in key_ids if k in self._plain}

    @property
    def shredding(self) -> list[str]:
        """Keys this unit of work shreds once it committed (they cover nothing new)."""
        return list(self._shred)

    def shred(self, key_ids: Sequence[str], *, erasure: bool = True) -> None:
        """Mark keys for deletion once this unit of work has committed.

        ``erasure=False`` for keys that covered no personal data of their own (a sent
        outbox entry's key): they go at once, but the files are checkpointed only by the
        next erasure or the hourly purge, so a reply costs no checkpoint.
        """
        wanted = [k for k in key_ids if k]
        self._shred.extend(wanted)
        if erasure:
            self._erased += len(wanted)
        for k in key_ids:
            self._plain.pop(k, None)

    async def before_commit(self) -> None:
        """Persist keys created in this unit of work."""
        await self.store.store(self.take_new(), self.now)

    def take_new(self) -> list[tuple[str, bytes, bytes, datetime]]:
        """The keys created so far, to be stored (by the caller) before the commit."""
        new, self._new = self._new, []
        return new

    async def after_commit(self) -> int:
        """Destroy keys shredded in this unit of work; returns how many of them were
        erasures (see :meth:`shred`)."""
        ids, self._shred = self._shred, []
        erased, self._erased = self._erased, 0
        await self.store.shred(ids)
        return erased

    def seal_json(self, dek: bytes, table: str, column: str, row_id: str, value: Any) -> bytes:
        """Encrypt a JSON value into one field of one row."""
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return self.vault.seal(dek, raw, aad(table, column, row_id))

    def open_json(self, dek: bytes, table: str, column: str, row_id: str, blob: bytes) -> Any:
        """Decrypt a JSON field sealed with :meth:`seal_json`."""
        return json.loads(self.vault.open(dek, blob, aad(table, column, row_id)))


_CONTACTS = cast(Table, Contact.__table__)
_CASES = cast(Table, Case.__table__)
_ORM_LOAD = (
    select(Contact, Case)
    .outerjoin(Case, and_(Case.contact_id == Contact.id, Case.status.in_(OPEN_STATUSES)))
    .where(Contact.pseudonym.in_(bindparam("p", expanding=True)))
    .limit(1)
)


#: Plain binds: a literal list would become an IN re-rendered on every execution.
_OPEN_BINDS = [literal(s) for s in OPEN_STATUSES]


def _core_load(match: Any) -> Any:
    return (
        select(_CONTACTS, _CASES)
        .select_from(
            _CONTACTS.outerjoin(
                _CASES,
                and_(_CASES.c.contact_id == _CONTACTS.c.id, _CASES.c.status.in_(_OPEN_BINDS)),
            )
        )
        .where(match)
        .limit(1)
    )


#: Core selects of contact + open case: no ORM loading, no post-compiled IN for the
#: usual single pseudonym version.
_LOAD_ONE = _core_load(_CONTACTS.c.pseudonym == bindparam("p"))
_LOAD_ANY = _core_load(_CONTACTS.c.pseudonym.in_(bindparam("p", expanding=True)))
_N_CONTACT = len(_CONTACTS.c)
configure_mappers()  # _detached builds instances before any ORM query would configure them
#: A text statement so SQLAlchemy compiles it once (dialect ``on_conflict_do_nothing``
#: constructs are recompiled on every call); SQLite >= 3.24 and PostgreSQL both speak it.
_DEDUP = text(
    "INSERT INTO processed_updates (key, delete_after) VALUES (:key, :delete_after) "
    "ON CONFLICT DO NOTHING"
).bindparams(bindparam("key", type_=String()), bindparam("delete_after", type_=UTCDateTime()))


def _detached(cls: type[_M], table: Table, values: Sequence[Any]) -> _M:
    """An ORM instance made from a Core row, as if loaded (no session, no history)."""
    obj = cast(_M, inspect(cls).class_manager.new_instance())
    obj.__dict__.update(zip(table.c.keys(), values, strict=True))
    make_transient_to_detached(obj)
    return obj


class _Repository:
    """Data access within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    @property
    def session(self) -> AsyncSession:
        """The unit's ORM session (made on first use)."""
        return self.uow.session


class Contacts(_Repository):
    """People, found by pseudonym."""

    async def load(self, pseudonyms: Sequence[str]) -> tuple[Contact, Case | None] | None:
        """The contact under any of the given pseudonyms and its open case.

        The hot path of every message from a person: one cached Core statement; the
        rows become ORM objects without a session, which the unit attaches only
        when it needs its session or they changed (see :meth:`UnitOfWork.adopt`).
        """
        uow = self.uow
        if uow.has_session:  # objects may already be in its identity map
            found = (await uow.session.execute(_ORM_LOAD, {"p": list(pseudonyms)})).first()
            return (found[0], found[1]) if found else None
        if len(pseudonyms) == 1:
            result = await uow.conn.execute(_LOAD_ONE, {"p": pseudonyms[0]})
        else:
            result = await uow.conn.execute(_LOAD_ANY, {"p": list(pseudonyms)})
        row: Row[Any] | None = result.first()
        if row is None:
            return None
        contact = _detached(Contact, _CONTACTS, row[:_N_CONTACT])
        case = None if row[_N_CONTACT] is None else _detached(Case, _CASES, row[_N_CONTACT:])
        uow.adopt(contact, *([case] if case else []))
        return contact, case

    async def get(self, contact_id: str) -> Contact | None:
        """A contact by row id."""
        return await self.session.get(Contact, contact_id)

    async def delete(self, contact: Contact) -> None:
        """Remove a contact row."""
        await self.session.delete(contact)


class Cases(_Repository):
    """Cases and their queue."""

    async def open_of_contact(self, contact_id: str) -> Case | None:
        """The person's open case, if any."""
        stmt = select(Case).where(Case.contact_id == contact_id, Case.status.in_(OPEN_STATUSES))
        return (await self.session.execute(stmt.limit(1))).scalar_one_or_none()

    async def of_contact(self, contact_id: str) -> list[Case]:
        """All cases of a person."""
        stmt = select(Case).where(Case.contact_id == contact_id)
        return list((await self.session.execute(stmt)).scalars())

    async def by_code(self, code: str) -> Case | None:
        """A case by its code."""
        stmt = select(Case).where(Case.code == code.upper())
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def code_taken(self, code: str) -> bool:
        """Whether a code is in use."""
        stmt = select(Case.id).where(Case.code == code)
        return (await self.session.execute(stmt)).first() is not None

    async def queue(
        self, programme_ids: Sequence[str], *, offset: int = 0, limit: int | None = None
    ) -> list[Case]:
        """Unclaimed cases: urgent first, then oldest first (a page of them with ``limit``)."""
        stmt = (
            select(Case)
            .where(Case.programme_id.in_(programme_ids), Case.status == "new")
            .order_by(Case.urgent.desc(), Case.opened_at, Case.code)
            .offset(offset)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def queue_size(self, programme_ids: Sequence[str]) -> int:
        """How many unclaimed cases there are."""
        stmt = select(func.count(Case.id)).where(
            Case.programme_id.in_(programme_ids), Case.status == "new"
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def claim(self, case_id: str, staff_key: str, now: datetime) -> bool:
        """Claim an unclaimed case; exactly one of concurrent claimers wins."""
        stmt = (
            update(Case)
            .where(Case.id == case_id, Case.status == "new")
            .values(
                status="claimed", claimed_by=staff_key, last_activity_at=now, urgent_due_ct=None
            )
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0) == 1)


class Held(_Repository):
    """Messages waiting for a counsellor."""

    async def count(self, case_id: str) -> int:
        """How many messages wait on a case."""
        return (await self.usage(case_id))[0]

    async def usage(self, case_id: str) -> tuple[int, int]:
        """How many messages wait on a case, and their stored size in bytes."""
        stmt = select(
            func.count(HeldMessage.id),
            func.coalesce(func.sum(func.length(HeldMessage.text_ct)), 0),
        ).where(HeldMessage.case_id == case_id)
        count, size = (await self.session.execute(stmt)).one()
        return int(count), int(size)

    async def of_case(self, case_id: str) -> list[HeldMessage]:
        """The waiting messages, oldest first."""
        stmt = select(HeldMessage).where(HeldMessage.case_id == case_id).order_by(HeldMessage.seq)
        return list((await self.session.execute(stmt)).scalars())

    async def drop(self, case_ids: Sequence[str]) -> None:
        """Delete waiting messages of cases."""
        if case_ids:
            await self.session.execute(delete(HeldMessage).where(HeldMessage.case_id.in_(case_ids)))


class Events(_Repository):
    """Statistics events (no personal data)."""

    def add(
        self,
        case_id: str | None,
        programme_id: str,
        kind: str,
        day: Any,
        delete_after: datetime,
        **categories: Any,
    ) -> None:
        """Record one lifecycle event (``categories``: audience, scene, region, source,
        wait_days - see :class:`CaseEvent`)."""
        self.session.add(
            CaseEvent(
                case_id=case_id,
                programme_id=programme_id,
                kind=kind,
                day=day,
                delete_after=delete_after,
                **categories,
            )
        )

    async def exists(self, case_id: str, kind: str) -> bool:
        """Whether the case already has an event of this kind."""
        stmt = select(CaseEvent.id).where(CaseEvent.case_id == case_id, CaseEvent.kind == kind)
        return (await self.session.execute(stmt.limit(1))).first() is not None


class Updates(_Repository):
    """De-duplication of platform updates."""

    @staticmethod
    def key(platform: str, update_id: str) -> str:
        """A hash of the update id (no raw platform ids stored)."""
        return hashlib.blake2b(f"{platform}\x00{update_id}".encode(), digest_size=16).hexdigest()

    async def first_time(self, platform: str, update_id: str, delete_after: datetime) -> bool:
        """Record an update id; False when it was processed before."""
        return await self.first_time_key(self.key(platform, update_id), delete_after)

    async def first_time_key(self, key: str, delete_after: datetime) -> bool:
        """Like :meth:`first_time` with the key already computed (see :meth:`key`)."""
        values = {"key": key, "delete_after": delete_after}
        result = await self.uow.conn.execute(_DEDUP, values)
        return bool(getattr(result, "rowcount", 0) == 1)


@dataclass(frozen=True, slots=True)
class JobChange:
    """After commit: (re)schedule a follow-up job, or remove it (``due`` None)."""

    followup_id: str
    due: datetime | None


class UnitOfWork:
    """All repositories of one transaction, the moment it runs at, and what to do
    after it commits (scheduler changes).

    The transaction lives on ``conn``; the ORM ``session`` (joined to it) is made
    on first use only, so a message that changes nothing (the usual relay) costs
    no session bookkeeping.
    """

    def __init__(self, conn: AsyncConnection, keystore: KeyStore, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.jobs: list[JobChange] = []
        self.keys = Keys(keystore, now)
        self.contacts = Contacts(self)
        self.cases = Cases(self)
        self.held = Held(self)
        self.events = Events(self)
        self.updates = Updates(self)
        #: Called once the transaction has committed.
        self.on_commit: list[Callable[[], None]] = []
        self._session: AsyncSession | None = None
        self._adopted: list[Base] = []

    @property
    def has_session(self) -> bool:
        """Whether the ORM session was made."""
        return self._session is not None

    @property
    def session(self) -> AsyncSession:
        """The ORM session of this transaction (made, with adopted rows, on first use)."""
        if self._session is None:
            # Joins the connection's transaction - or the unit's savepoint in a group
            # commit (storage.group_commit) - without ever committing it itself.
            self._session = AsyncSession(
                bind=self.conn, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
            self._session.add_all(self._adopted)
        return self._session

    def loaded(self) -> list[Base]:
        """Rows this unit loaded or added so far (no query)."""
        rows = list(self._adopted)
        if self._session is not None:
            rows.extend(r for r in self._session.identity_map.values() if isinstance(r, Base))
            rows.extend(self._session.new)
        return rows

    def adopt(self, *rows: Base) -> None:
        """Rows loaded without the session: attached when it is made or they change."""
        if self._session is not None:
            self._session.add_all(rows)
        else:
            self._adopted.extend(rows)

    async def flush(self) -> None:
        """Write pending ORM changes (none: no session, no statement)."""
        if self._session is None and any(inspect(r).modified for r in self._adopted):
            _ = self.session
        if self._session is not None:
            await self._session.flush()

    async def commit(self) -> None:
        """Commit: through the session if it began the transaction, else the connection."""
        if self._session is not None:
            await self._session.commit()  # a joined session leaves the commit to conn
        await self.conn.commit()

    async def close(self) -> None:
        """Release the session (the transaction is the connection's)."""
        if self._session is not None:
            await self._session.close()


@asynccontextmanager
async def unit(db: Database, keystore: KeyStore, now: datetime) -> AsyncIterator[UnitOfWork]:
    """One transaction with its key-store side effects in the safe order.

    New keys are stored before the data that uses them commits (an orphan key is
    harmless and purged); shredded keys are destroyed only after the commit. A unit
    that shredded keys (an erasure, a closed case) then checkpoints both databases,
    so no old page in any file still holds the wrapped keys or the ciphertexts.
    """
    # The transaction begins with the first statement (no round trip of its own);
    # leaving without commit rolls it back.
    async with db.engine.connect() as conn:
        uow = UnitOfWork(conn, keystore, now)
        try:
            yield uow
            await uow.flush()
            if uow.keys.shredding:  # waiting replies only these keys open: gone with them
                await outbox.drop_covered(conn, uow.keys.shredding)
            await uow.keys.before_commit()
            await uow.commit()
        finally:
            await uow.close()
    await after_commit(db, keystore, [uow])


async def after_commit(db: Database, keystore: KeyStore, units: Sequence[UnitOfWork]) -> None:
    """Shred the keys of committed units, checkpoint after an erasure, run their
    on-commit callbacks; never raises (the data is committed: a failure is logged)."""
    erased = 0
    for uow in units:
        try:
            erased += await uow.keys.after_commit()
        except Exception as exc:
            log.error("shredding keys after a commit failed: %s", type(exc).__name__)
            erased += 1  # checkpoint anyway: what was shredded must leave the files
    if erased:
        try:
            await db.checkpoint()
            await keystore.db.checkpoint()
        except Exception as exc:
            log.error("checkpoint after an erasure failed: %s", type(exc).__name__)
    for uow in units:
        for done in uow.on_commit:
            try:
                done()
            except Exception as exc:
                log.error("an on-commit step failed: %s", type(exc).__name__)


async def drop_followups(uow: UnitOfWork, case_ids: Sequence[str]) -> None:
    """Delete the follow-ups of cases and schedule the removal of their jobs."""
    if not case_ids:
        return
    rows = await uow.session.execute(select(FollowUp.id).where(FollowUp.case_id.in_(case_ids)))
    uow.jobs.extend(JobChange(fid, None) for (fid,) in rows)
    await uow.session.execute(delete(FollowUp).where(FollowUp.case_id.in_(case_ids)))
