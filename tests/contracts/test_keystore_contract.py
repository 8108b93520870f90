"""Key store contract (storage/keystore.py) on SQLite and PostgreSQL.

The key store may live on either (``crypto.keystore_url``); shredding is what erasure and
retention rely on, so every backend must store, fetch, page, extend, shred and re-wrap
the same way, and a shredded key must be gone for a fresh process too (no cache).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from config.settings import Settings
from storage.db import Database
from storage.keystore import KeyStore, StoredKey
from storage.vault import Vault

NOW = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def _vault(*masters: bytes) -> Vault:
    return Vault(dict(enumerate(masters, start=1)), {1: os.urandom(32)})


@pytest.fixture
def masters() -> tuple[bytes, bytes]:
    return os.urandom(32), os.urandom(32)


@pytest.fixture
async def keys_db(settings: Settings) -> AsyncIterator[Database]:
    """A key-store database on the backend (PostgreSQL: the test's private schema)."""
    database = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        yield database
    finally:
        await database.dispose()


async def _store(ks: KeyStore, n: int, until: datetime = NOW) -> dict[str, bytes]:
    """Store ``n`` fresh keys k00.. (delete after ``until``); returns id -> plain key."""
    rows = []
    for i in range(n):
        key_id = f"k{i:02d}"
        dek, wrapped = ks.vault.new_data_key(key_id)
        rows.append((key_id, dek, wrapped, until))
    await ks.store(rows, NOW)
    return {k: d for k, d, _, _ in rows}


async def test_stored_keys_come_back_in_a_fresh_store(
    keys_db: Database, masters: tuple[bytes, bytes]
) -> None:
    ks = KeyStore(keys_db, _vault(masters[0]))
    await ks.create_schema()
    deks = await _store(ks, 3)
    fresh = KeyStore(keys_db, _vault(masters[0]))  # no cache: read from the database
    assert await fresh.fetch([*deks, "unknown"]) == deks
    assert await fresh.ids() == set(deks)
    assert await fresh.count() == 3


async def test_a_shredded_key_is_gone_everywhere(
    keys_db: Database, masters: tuple[bytes, bytes]
) -> None:
    ks = KeyStore(keys_db, _vault(masters[0]))
    await ks.create_schema()
    deks = await _store(ks, 3)
    assert await ks.shred(["k01", "k01", "never-stored"]) == 1
    assert await ks.fetch(deks) == {k: d for k, d in deks.items() if k != "k01"}
    fresh = KeyStore(keys_db, _vault(masters[0]))
    assert "k01" not in await fresh.fetch(deks)
    assert await fresh.ids() == {"k00", "k02"}
    assert await ks.shred([]) == 0


async def test_page_walks_every_key_once_in_id_order(
    keys_db: Database, masters: tuple[bytes, bytes]
) -> None:
    ks = KeyStore(keys_db, _vault(masters[0]))
    await ks.create_schema()
    deks = await _store(ks, 7, NOW + timedelta(days=3))
    seen: list[str] = []
    after: str | None = None
    while page := await ks.page(after, 3):
        assert len(page) <= 3
        for key_id, until, created in page:
            assert until == NOW + timedelta(days=3)
            assert until.tzinfo is not None
            assert created == NOW
            seen.append(key_id)
        after = page[-1][0]
    assert seen == sorted(deks)


async def test_extend_moves_dates_and_oldest_follows(
    keys_db: Database, masters: tuple[bytes, bytes]
) -> None:
    ks = KeyStore(keys_db, _vault(masters[0]))
    await ks.create_schema()
    assert await ks.oldest_delete_after() is None
    await _store(ks, 2)
    assert await ks.oldest_delete_after() == NOW
    later = NOW + timedelta(days=30)
    await ks.extend({"k00": later, "k01": later, "gone": later})
    oldest = await ks.oldest_delete_after()
    assert oldest == later
    assert oldest is not None
    assert oldest.tzinfo is not None
    assert {i: u for i, u, _ in await ks.page(None, 10)} == {"k00": later, "k01": later}


async def test_rotation_rewraps_under_the_new_master_key_only(
    keys_db: Database, masters: tuple[bytes, bytes]
) -> None:
    old, new = masters
    ks = KeyStore(keys_db, _vault(old))
    await ks.create_schema()
    deks = await _store(ks, 5)
    assert await ks.versions() == {1: 5}
    rotated = KeyStore(keys_db, _vault(old, new))  # version 2 is current
    assert await rotated.needing_old_master() == 5
    assert await rotated.rewrap(batch=2) == 5
    assert await rotated.versions() == {2: 5}
    assert await rotated.needing_old_master() == 0
    assert await rotated.rewrap(batch=2) == 0  # idempotent
    only_new = KeyStore(keys_db, Vault({2: new}, {1: os.urandom(32)}))
    assert await only_new.fetch(deks) == deks
    async with keys_db.transaction() as s:
        wrapped = (await s.execute(select(StoredKey.wrapped))).scalars().all()
    assert {Vault.wrapped_version(bytes(w)) for w in wrapped} == {2}


async def test_create_schema_is_idempotent_and_keeps_keys(
    keys_db: Database, masters: tuple[bytes, bytes]
) -> None:
    ks = KeyStore(keys_db, _vault(masters[0]))
    await ks.create_schema()
    deks = await _store(ks, 2)
    again = KeyStore(keys_db, _vault(masters[0]))
    await again.create_schema()
    assert await again.fetch(deks) == deks
