"""Outbox contract (storage/outbox.py over the ``outbox`` table) on SQLite and PostgreSQL.

Replies wait here sealed under the keys that cover them. Shredding keys must drop
exactly the entries nothing can open any more, and the purge must see every key a
waiting reply still needs (with the latest date), on every backend: the payload is
binary, so a backend that changed the bytes would break both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from storage import outbox
from storage.db import Database
from storage.models import OutboxEntry

NOW = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
#: Every byte value, so a backend that mangles binary data is caught.
BLOB = bytes(range(256))


async def _put(db: Database, entries: dict[str, tuple[bytes, datetime]]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(OutboxEntry),
            [{"id": i, "payload_ct": p, "delete_after": d} for i, (p, d) in entries.items()],
        )


async def _ids(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set((await conn.execute(select(OutboxEntry.id))).scalars())


async def test_payload_bytes_come_back_unchanged(db: Database) -> None:
    packed = outbox.pack("own", [("person", BLOB), ("case", BLOB[::-1])])
    await _put(db, {"e1": (packed, NOW)})
    async with db.engine.connect() as conn:
        stored = (await conn.execute(select(OutboxEntry.payload_ct))).scalar_one()
    assert bytes(stored) == packed
    sealed = outbox.parse(bytes(stored))
    assert sealed is not None
    assert sealed.own == "own"
    assert sealed.parts == [("person", BLOB), ("case", BLOB[::-1])]


async def test_shredding_drops_exactly_the_entries_nothing_can_open(db: Database) -> None:
    await _put(
        db,
        {
            "only-a": (outbox.pack(None, [("a", BLOB)]), NOW),
            # an own key that seals no reply keeps nothing alive (only replies count)
            "a-and-own": (outbox.pack("own1", [("a", BLOB)]), NOW),
            "a-and-own-notice": (outbox.pack("own2", [("a", BLOB), ("own2", BLOB)]), NOW),
            "a-and-b": (outbox.pack(None, [("a", BLOB), ("b", BLOB)]), NOW),
            "c": (outbox.pack(None, [("c", BLOB)]), NOW),
            "legacy": (b"\x01" + BLOB, NOW),  # the old format: never judged here
            "malformed": (b"\x02\xff", NOW),
        },
    )
    async with db.engine.begin() as conn:
        assert await outbox.drop_covered(conn, ["a"]) == 2
        assert await outbox.drop_covered(conn, []) == 0
    assert await _ids(db) == {"a-and-own-notice", "a-and-b", "c", "legacy", "malformed"}
    async with db.engine.begin() as conn:
        assert await outbox.drop_covered(conn, ["a", "b", "own2"]) == 2
    assert await _ids(db) == {"c", "legacy", "malformed"}


async def test_a_rolled_back_drop_keeps_the_entries(db: Database) -> None:
    await _put(db, {"e": (outbox.pack(None, [("a", BLOB)]), NOW)})
    conn = await db.engine.connect()
    try:
        tx = await conn.begin()
        assert await outbox.drop_covered(conn, ["a"]) == 1
        await tx.rollback()
    finally:
        await conn.close()
    assert await _ids(db) == {"e"}


async def test_keys_in_use_names_every_key_with_its_latest_date(db: Database) -> None:
    later = NOW + timedelta(days=2)
    await _put(
        db,
        {
            "e1": (outbox.pack("own1", [("a", BLOB), ("b", BLOB)]), NOW),
            "e2": (outbox.pack(None, [("a", BLOB)]), later),
            "legacy": (b"\x01" + BLOB, later),
            "malformed": (b"\x02\xff", later),
        },
    )
    async with db.engine.connect() as conn:
        used = await outbox.keys_in_use(conn)
    assert used == {"own1": NOW, "a": later, "b": NOW}
    assert all(d.tzinfo is not None for d in used.values())
