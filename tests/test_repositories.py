"""Repository contract: same behaviour on SQLite and PostgreSQL; migrations match models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from bot.app import build_vault
from config.clock import FakeClock, hour
from config.settings import Settings
from storage.db import Database
from storage.keystore import KeyStore
from storage.migrate import current, head, upgrade
from storage.models import Base, Case, Contact
from storage.repositories import new_id, unit
from tests.conftest import OFFICE_TIME


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[tuple[Database, KeyStore]]:
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    await upgrade(db.engine)
    keys_db = Database(settings.keystore_url)
    keystore = KeyStore(keys_db, build_vault(settings))
    await keystore.create_schema()
    try:
        yield db, keystore
    finally:
        await db.dispose()
        await keys_db.dispose()


async def test_migrations_reach_head_and_match_the_models(
    stores: tuple[Database, KeyStore],
) -> None:
    db, _ = stores
    assert await current(db.engine) == head()

    def diff(conn: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


def _contact(key_id: str, pseudonym: str, now: Any) -> Contact:
    return Contact(
        id=new_id(),
        pseudonym=pseudonym,
        pseudonym_version=1,
        platform="memory",
        key_id=key_id,
        address_ct=b"x",
        locale="de",
        state="new",
        profile_ct=None,
        urgent=False,
        created_at=hour(now),
        delete_after=hour(now),
    )


def _case(contact: Contact, code: str, now: Any, **kw: Any) -> Case:
    values: dict[str, Any] = {
        "id": new_id(),
        "code": code,
        "contact_id": contact.id,
        "key_id": None,
        "programme_id": "jump",
        "status": "new",
        "audience": "self",
        "scene": "right",
        "region": "MV",
        "district": None,
        "language": "de",
        "in_prison": False,
        "urgent": False,
        "route_step": "match",
        "opened_at": hour(now),
        "last_activity_at": hour(now),
        "delete_after": hour(now) + timedelta(days=90),
        "escalated": 0,
    } | kw
    return Case(**values)


async def test_load_finds_contact_and_open_case_under_any_pseudonym(
    stores: tuple[Database, KeyStore],
) -> None:
    db, ks = stores
    now = FakeClock(OFFICE_TIME).now()
    async with unit(db, ks, now) as uow:
        key_id, _ = uow.keys.create(now)
        c = _contact(key_id, "p-old", now)
        uow.session.add(c)
        uow.session.add(_case(c, "K-2222", now, status="closed"))
        uow.session.add(_case(c, "K-3333", now, status="active"))
    async with unit(db, ks, now) as uow:
        found = await uow.contacts.load(["p-new", "p-old"])
        assert found is not None
        contact, case = found
        assert contact.pseudonym == "p-old"
        assert case is not None
        assert case.code == "K-3333"
        assert await uow.contacts.load(["p-none"]) is None


async def test_dedup_claims_each_update_once(stores: tuple[Database, KeyStore]) -> None:
    db, ks = stores
    now = FakeClock(OFFICE_TIME).now()
    async with unit(db, ks, now) as uow:
        assert await uow.updates.first_time("telegram", "1", now)
        assert not await uow.updates.first_time("telegram", "1", now)
        assert await uow.updates.first_time("matrix", "1", now)
    async with unit(db, ks, now) as uow:
        assert not await uow.updates.first_time("telegram", "1", now)


async def test_claim_is_won_exactly_once_under_concurrency(
    stores: tuple[Database, KeyStore],
) -> None:
    db, ks = stores
    now = FakeClock(OFFICE_TIME).now()
    async with unit(db, ks, now) as uow:
        c = _contact("k", "p", now)
        uow.session.add(c)
        case = _case(c, "K-4444", now)
        uow.session.add(case)

    async def claim(who: str) -> bool:
        async with unit(db, ks, now) as uow:
            return await uow.cases.claim(case.id, who, now)

    results = await asyncio.gather(*(claim(f"jump/{i}") for i in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_queue_orders_urgent_then_oldest(stores: tuple[Database, KeyStore]) -> None:
    db, ks = stores
    now = FakeClock(OFFICE_TIME).now()
    async with unit(db, ks, now) as uow:
        c = _contact("k", "p", now)
        uow.session.add(c)
        uow.session.add(_case(c, "K-5555", now, opened_at=hour(now) - timedelta(hours=5)))
        uow.session.add(_case(c, "K-6666", now, urgent=True))
        uow.session.add(_case(c, "K-7777", now, opened_at=hour(now) - timedelta(hours=9)))
        uow.session.add(_case(c, "K-8888", now, programme_id="left-nrw"))
    async with unit(db, ks, now) as uow:
        queue = await uow.cases.queue(["jump"])
    assert [q.code for q in queue] == ["K-6666", "K-7777", "K-5555"]


async def test_keystore_store_fetch_shred(stores: tuple[Database, KeyStore]) -> None:
    db, ks = stores
    now = FakeClock(OFFICE_TIME).now()
    async with unit(db, ks, now) as uow:
        key_id, dek = uow.keys.create(now)
    assert await ks.count() == 1
    ks._cache.clear()
    assert (await ks.fetch([key_id]))[key_id] == dek
    async with unit(db, ks, now) as uow:
        uow.keys.shred([key_id])
    assert await ks.fetch([key_id]) == {}
    assert await ks.count() == 0


async def test_failed_unit_stores_no_key_and_shreds_nothing(
    stores: tuple[Database, KeyStore],
) -> None:
    db, ks = stores
    now = FakeClock(OFFICE_TIME).now()
    async with unit(db, ks, now) as uow:
        keep, _ = uow.keys.create(now)

    async def failing() -> None:
        async with unit(db, ks, now) as uow:
            uow.keys.create(now)
            uow.keys.shred([keep])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await failing()
    assert await ks.ids() == {keep}
    async with db.transaction() as s:
        assert (await s.execute(select(Contact))).first() is None
