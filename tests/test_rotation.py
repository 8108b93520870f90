"""Privacy check 4: after key rotation 0 rows need the old keys (SQLite and PostgreSQL).

Data is made under master key v1 and pseudonym key v2's predecessor v1; v2 keys
are added, the app restarts, rotation runs while a person writes; afterwards v1 is
removed from the settings entirely and the person is still recognised and their
held messages still decrypt.
"""

from __future__ import annotations

import asyncio
import itertools
import struct

from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.settings import Settings, new_key
from storage.keystore import StoredKey
from storage.models import Contact
from storage.rotation import key_status, rotate
from tests.world import World, directory_without, texts

WHO = "rotating-person"
HELD = "HeldBeforeRotation-Wq3"


_RESTARTS = itertools.count(1)


async def started(settings: Settings, clock: FakeClock) -> World:
    transport = MemoryTransport()
    # a fresh transport numbers updates from 1 again; the dedup table remembers them
    transport._ids = itertools.count(next(_RESTARTS) * 100_000)
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    return World(app, transport, clock)


def add_v2(settings: Settings) -> None:
    settings.crypto.master_keys = {**settings.crypto.master_keys, 2: SecretStr(new_key())}
    settings.crypto.pseudonym_keys = {**settings.crypto.pseudonym_keys, 2: SecretStr(new_key())}


def drop_v1(settings: Settings) -> None:
    settings.crypto.master_keys = {2: settings.crypto.master_keys[2]}
    settings.crypto.pseudonym_keys = {2: settings.crypto.pseudonym_keys[2]}


async def raw_old_rows(w: World) -> tuple[int, int]:
    """Key-store rows whose header names master v1, contacts with pseudonym version 1."""
    assert w.app.db is not None
    assert w.app.keystore is not None
    async with w.app.keystore.db.transaction() as s:
        wrapped = (await s.execute(select(StoredKey.wrapped))).scalars().all()
    keys = sum(1 for b in wrapped if struct.unpack_from(">BH", b)[1] == 1)
    async with w.app.db.transaction() as s:
        stmt = select(func.count()).select_from(Contact).where(Contact.pseudonym_version == 1)
        contacts = int((await s.execute(stmt)).scalar_one())
    return keys, contacts


async def test_rotation_leaves_nothing_needing_the_old_keys(
    settings: Settings, clock: FakeClock
) -> None:
    """Privacy check 4."""
    w = await started(settings, clock)
    try:
        code = await w.open(WHO, message=HELD)
        await w.person("in-intake", "/start", "b:consent:yes", "b:safety:no")
        assert await raw_old_rows(w) == (3, 2)  # two contact keys, one case key
    finally:
        await w.app.stop()

    add_v2(settings)
    w = await started(settings, clock)
    try:
        assert w.app.db is not None
        assert w.app.keystore is not None
        before = await key_status(w.app.db, w.app.keystore)
        assert (before.keys_needing_old, before.contacts_needing_old) == (3, 2)
        # rotation in batches of one while the person keeps writing
        report, _ = await asyncio.gather(
            rotate(w.app.db, w.app.keystore, batch=1), w.person(WHO, "während der Rotation")
        )
        assert report.rewrapped == 3
        assert report.pseudonyms.rekeyed == 2
        assert (report.pseudonyms.unreadable, report.pseudonyms.conflicts) == (0, 0)
        assert (report.after.keys_needing_old, report.after.contacts_needing_old) == (0, 0)
        assert await raw_old_rows(w) == (0, 0)
        again = await rotate(w.app.db, w.app.keystore)
        assert (again.rewrapped, again.pseudonyms.rekeyed) == (0, 0)
    finally:
        await w.app.stop()

    drop_v1(settings)
    w = await started(settings, clock)
    try:
        assert w.app.vault is not None
        assert w.app.vault.pseudonym_versions() == [2]
        got = texts(await w.person(WHO, "nach der Rotation"))
        assert "deine Nachricht ist angekommen" in got, got
        assert await w.count(Contact) == 2
        room = texts(await w.staff("a1", f"/claim {code}"))
        for text in (HELD, "während der Rotation", "nach der Rotation"):
            assert text in room
        intake = await w.person("in-intake", "b:audience:self")
        assert any(b.data.startswith("scene:") for m in intake for b in m.flat_buttons)
    finally:
        await w.app.stop()


async def test_dropping_the_old_key_without_rotation_loses_the_person(
    settings: Settings, clock: FakeClock
) -> None:
    """Control for check 4: the test above would fail without the rotation."""
    w = await started(settings, clock)
    try:
        await w.open(WHO, message=HELD)
    finally:
        await w.app.stop()
    add_v2(settings)
    drop_v1(settings)
    w = await started(settings, clock)
    try:
        got = await w.person(WHO, "hallo")
        assert any(b.data == "consent:yes" for m in got for b in m.flat_buttons)
        assert await w.count(Contact) == 2  # a stranger now: the old row is unreachable
    finally:
        await w.app.stop()
