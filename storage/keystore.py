"""The key store: wrapped data keys in their own database, apart from the data.

Crypto-shredding needs the keys to live somewhere a backup of the main database
does not reach: deleting a key here makes every copy of the data it protected
unreadable, old backups of the main database included (privacy check 7). The
operator backs this small database up separately with a short retention (see
docs/PRIVACY.md). Unwrapped keys are cached in memory (bounded); a shred evicts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import LargeBinary, MetaData, String, delete, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.db import Database
from storage.models import UTCDateTime
from storage.vault import Vault


class KeyBase(DeclarativeBase):
    """Separate metadata: the key store is not part of the main schema."""

    metadata = MetaData()


class StoredKey(KeyBase):
    """A data key wrapped by the master key (bound to its id)."""

    __tablename__ = "data_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    delete_after: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class KeyStore:
    """Stores, fetches (with a bounded cache), shreds and re-wraps data keys."""

    def __init__(self, db: Database, vault: Vault, cache_size: int = 50_000) -> None:
        self.db = db
        self.vault = vault
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    async def create_schema(self) -> None:
        """Create the single table if needed."""
        async with self.db.engine.begin() as conn:
            await conn.run_sync(KeyBase.metadata.create_all)

    def _remember(self, key_id: str, dek: bytes) -> None:
        self._cache[key_id] = dek
        self._cache.move_to_end(key_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def store(self, keys: Sequence[tuple[str, bytes, bytes, datetime]]) -> None:
        """Persist new keys: (id, plain key, wrapped key, delete after)."""
        if not keys:
            return
        async with self.db.transaction() as s:
            s.add_all(StoredKey(id=k, wrapped=w, delete_after=d) for k, _, w, d in keys)
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

    async def shred(self, key_ids: Sequence[str]) -> None:
        """Delete keys for good (and forget them here)."""
        if not key_ids:
            return
        for k in key_ids:
            self._cache.pop(k, None)
        async with self.db.transaction() as s:
            await s.execute(delete(StoredKey).where(StoredKey.id.in_(list(key_ids))))

    async def ids(self) -> set[str]:
        """Every stored key id (for the purge of orphans)."""
        async with self.db.transaction() as s:
            return set((await s.execute(select(StoredKey.id))).scalars())

    async def count(self) -> int:
        """How many keys are stored."""
        async with self.db.transaction() as s:
            return int((await s.execute(select(func.count()).select_from(StoredKey))).scalar_one())

    async def rewrap(self, batch: int = 500) -> int:
        """Re-wrap every key under the current master key; returns how many changed."""
        changed = 0
        current = self.vault.master_version
        async with self.db.transaction() as s:
            rows = (await s.execute(select(StoredKey))).scalars().all()
            for row in rows:
                if Vault.wrapped_version(row.wrapped) != current:
                    row.wrapped = self.vault.wrap(row.id, self.vault.unwrap(row.id, row.wrapped))
                    changed += 1
                    if changed % batch == 0:
                        await s.flush()
        return changed

    async def needing_old_master(self) -> int:
        """Keys still wrapped by a retired master key version."""
        async with self.db.transaction() as s:
            rows = (await s.execute(select(StoredKey.wrapped))).scalars().all()
        return sum(1 for w in rows if Vault.wrapped_version(w) != self.vault.master_version)
