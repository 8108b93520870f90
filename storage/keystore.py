"""The key store: wrapped data keys in their own database, apart from the data.

Crypto-shredding needs the keys to live somewhere a backup of the main database
does not reach: deleting a key here makes every copy of the data it protected
unreadable, old backups of the main database included (privacy check 7). The
operator backs this small database up separately with a short retention (see
docs/PRIVACY.md). Unwrapped keys are cached in memory (bounded); a shred evicts.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from storage.db import Database
from storage.models import UTCDateTime
from storage.vault import WRAP_DERIVED, DecryptionError, Vault


class KeyBase(DeclarativeBase):
    """Separate metadata: the key store is not part of the main schema."""

    metadata = MetaData()


class StoredKey(KeyBase):
    """A data key wrapped by the master key (bound to its id).

    ``created_at`` (hour) lets the purge spare keys of units of work that are
    still committing in another process; stores made before it existed have NULL.
    """

    __tablename__ = "data_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    delete_after: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


#: The master key version sits in bytes 2-3 of a wrapped key (see storage.vault).
_version: ColumnElement[bytes] = func.substr(StoredKey.wrapped, 2, 2, type_=LargeBinary)
#: Byte 1 says how it was wrapped (storage.vault.WRAP_DERIVED / WRAP_LEGACY).
_format: ColumnElement[bytes] = func.substr(StoredKey.wrapped, 1, 1, type_=LargeBinary)
_DERIVED = bytes([WRAP_DERIVED])


_KEYS = cast(Table, StoredKey.__table__)
#: Only a row still holding the old wrapping is changed (a shred meanwhile wins).
_REWRAP = (
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("k"), _KEYS.c.wrapped == bindparam("old"))
    .values(wrapped=bindparam("new"))
)


def _version_bytes(version: int) -> bytes:
    return struct.pack(">H", version)


class KeyStore:
    """Stores, fetches (with a bounded cache), shreds and re-wraps data keys."""

    def __init__(self, db: Database, vault: Vault, cache_size: int = 50_000) -> None:
        self.db = db
        self.vault = vault
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    async def create_schema(self) -> None:
        """Create the single table if needed (and add ``created_at`` to older stores).

        Keys still wrapped directly by a master key (before the HKDF separation) are
        re-wrapped here, at start, so afterwards the master key itself wraps nothing.
        """

        def run(conn: Any) -> None:
            KeyBase.metadata.create_all(conn)
            columns = {c["name"] for c in inspect(conn).get_columns("data_keys")}
            if "created_at" not in columns:
                pg = conn.dialect.name == "postgresql"
                kind = "TIMESTAMP WITH TIME ZONE" if pg else "DATETIME"
                conn.execute(text(f"ALTER TABLE data_keys ADD COLUMN created_at {kind}"))

        async with self.db.engine.begin() as conn:
            await conn.run_sync(run)
        await self.rewrap(legacy_only=True)

    def _remember(self, key_id: str, dek: bytes) -> None:
        self._cache[key_id] = dek
        self._cache.move_to_end(key_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def store(
        self, keys: Sequence[tuple[str, bytes, bytes, datetime]], now: datetime | None = None
    ) -> None:
        """Persist new keys: (id, plain key, wrapped key, delete after), created ``now``."""
        if not keys:
            return
        created = now or datetime.now(UTC)
        async with self.db.transaction() as s:
            s.add_all(
                StoredKey(id=k, wrapped=w, delete_after=d, created_at=created)
                for k, _, w, d in keys
            )
        for key_id, dek, _, _ in keys:
            self._remember(key_id, dek)

    async def fetch(self, key_ids: Iterable[str]) -> dict[str, bytes]:
        """Plain keys by id (missing ids: shredded)."""
        wanted = list(dict.fromkeys(key_ids))
        found = {k: self._cache[k] for k in wanted if k in self._cache}
        missing = [k for k in wanted if k not in found]
        if missing:
            async with self.db.transaction() as s:
                rows = await s.execute(select(StoredKey).where(StoredKey.id.in_(missing)))
                for row in rows.scalars():
                    dek = self.vault.unwrap(row.id, row.wrapped)
                    self._remember(row.id, dek)
                    found[row.id] = dek
        return found

    async def shred(self, key_ids: Sequence[str]) -> int:
        """Delete keys for good (and forget them here); returns how many rows went."""
        if not key_ids:
            return 0
        for k in key_ids:
            self._cache.pop(k, None)
        async with self.db.transaction() as s:
            result = await s.execute(delete(StoredKey).where(StoredKey.id.in_(list(key_ids))))
        return int(getattr(result, "rowcount", 0) or 0)

    async def ids(self) -> set[str]:
        """Every stored key id."""
        async with self.db.transaction() as s:
            return set((await s.execute(select(StoredKey.id))).scalars())

    async def page(
        self, after: str | None, limit: int
    ) -> list[tuple[str, datetime, datetime | None]]:
        """Up to ``limit`` keys ordered by id after ``after``: (id, delete after, created)."""
        stmt = select(StoredKey.id, StoredKey.delete_after, StoredKey.created_at)
        if after is not None:
            stmt = stmt.where(StoredKey.id > after)
        async with self.db.transaction() as s:
            rows = await s.execute(stmt.order_by(StoredKey.id).limit(limit))
            return [(i, d, c) for i, d, c in rows]

    async def extend(self, until: Mapping[str, datetime]) -> None:
        """Move deletion dates of keys still in use (they follow their row)."""
        if not until:
            return
        async with self.db.transaction() as s:
            for key_id, when in until.items():
                await s.execute(
                    update(StoredKey).where(StoredKey.id == key_id).values(delete_after=when)
                )

    async def count(self) -> int:
        """How many keys are stored."""
        async with self.db.transaction() as s:
            return int((await s.execute(select(func.count()).select_from(StoredKey))).scalar_one())

    async def oldest_delete_after(self) -> datetime | None:
        """The earliest deletion date in the store."""
        async with self.db.transaction() as s:
            value = (await s.execute(select(func.min(StoredKey.delete_after)))).scalar_one()
        if value is None:
            return None
        if not isinstance(value, datetime):  # SQLite's min() returns text
            value = datetime.fromisoformat(str(value))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    async def versions(self) -> dict[int, int]:
        """How many keys each master key version wraps."""
        async with self.db.transaction() as s:
            rows = await s.execute(select(_version, func.count()).group_by(_version))
            return {struct.unpack(">H", bytes(v))[0]: int(n) for v, n in rows}

    async def rewrap(self, batch: int = 500, *, legacy_only: bool = False) -> int:
        """Re-wrap every key under the current master key's wrapping key; returns how many
        changed (retired versions and keys of the legacy format).

        One transaction per batch (keyset order by id), so the bot keeps working;
        a key shredded meanwhile is simply not updated. Idempotent. ``legacy_only``
        (at start): only keys wrapped directly by a master key; one whose master key is
        no longer configured stays as it is (it did not open before either).
        """
        changed = 0
        current = _version_bytes(self.vault.master_version)
        legacy = _format != _DERIVED
        stale = legacy if legacy_only else or_(_version != current, legacy)
        after = ""
        while True:
            async with self.db.transaction() as s:
                rows = (
                    await s.execute(
                        select(StoredKey.id, StoredKey.wrapped)
                        .where(StoredKey.id > after, stale)
                        .order_by(StoredKey.id)
                        .limit(batch)
                    )
                ).all()
                params = []
                for k, w in rows:
                    try:
                        dek = self.vault.unwrap(k, w)
                    except DecryptionError:
                        if not legacy_only:
                            raise
                        continue
                    params.append({"k": k, "old": w, "new": self.vault.wrap(k, dek)})
                if params:
                    result = await s.execute(_REWRAP, params)
                    n = int(getattr(result, "rowcount", -1))
                    changed += n if n >= 0 else len(params)
            if len(rows) < batch:
                return changed
            after = rows[-1][0]

    async def needing_old_master(self) -> int:
        """Keys still wrapped by a retired master key version (or by a master key itself)."""
        current = _version_bytes(self.vault.master_version)
        async with self.db.transaction() as s:
            stmt = (
                select(func.count())
                .select_from(StoredKey)
                .where(or_(_version != current, _format != _DERIVED))
            )
            return int((await s.execute(stmt)).scalar_one())
