"""Group commit (issue 14): messages arriving together share one transaction, each in
its own savepoint; one bad message rolls back only itself; a lone message commits
at once, alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.router import Router
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from config.i18n import translator
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from storage.models import Contact, OutboxEntry, ProcessedUpdate
from tests.conftest import memory_directory

UNLIMITED = LimitSettings(person_burst=1e9, new_contacts_burst=1e9)


async def _app(
    settings: Settings, clock: FakeClock, directory: Directory, transport: MemoryTransport
) -> App:
    app = App(
        settings,
        [transport],
        clock=clock,
        directory=memory_directory(directory),
        limits=Limits(UNLIMITED),
    )
    await app.start()
    return app


async def _count(app: App, model: Any) -> int:
    assert app.db is not None
    async with app.db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


def _router(app: App) -> Router:
    assert app.router is not None
    return app.router


async def test_a_lone_message_commits_alone(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    transport = MemoryTransport()
    app = await _app(settings, clock, directory, transport)
    try:
        await transport.push("p1", "/start")
        stats = _router(app).commits.stats
        assert (stats.units, stats.alone, stats.batches) == (1, 1, 0)
        assert transport.pop("p1")
        assert await _count(app, Contact) == 1
    finally:
        await app.stop()


async def test_messages_arriving_together_share_one_transaction(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    transport = MemoryTransport(redelivers=True)  # the outbox too, as on the platforms
    app = await _app(settings, clock, directory, transport)
    try:
        await asyncio.gather(*(transport.push(f"p{i}", "/start") for i in range(12)))
        stats = _router(app).commits.stats
        assert stats.units == 12
        assert stats.batches >= 1
        assert stats.largest >= 2
        for i in range(12):
            assert transport.pop(f"p{i}"), f"p{i} got no reply"
        assert await _count(app, Contact) == 12
        assert await _count(app, ProcessedUpdate) == 12
        # the replies were stored in the batch and are forgotten once handed over
        await _router(app).forget_delivered()
        assert await _count(app, OutboxEntry) == 0
    finally:
        await app.stop()


async def test_one_bad_message_rolls_back_only_itself(
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = MemoryTransport(redelivers=True)
    app = await _app(settings, clock, directory, transport)
    original = Router._person

    async def failing(self: Router, uow: Any, svc: Any, msg: Any, pseudonyms: Any) -> Any:
        result = await original(self, uow, svc, msg, pseudonyms)
        if msg.sender_id == "bad":
            await uow.flush()  # its writes reached the database (inside its savepoint)
            raise RuntimeError("a bug in one message")
        return result

    monkeypatch.setattr(Router, "_person", failing)
    try:
        senders = ["p0", "p1", "bad", "p2", "p3"]
        await asyncio.gather(*(transport.push(s, "/start", update_id=f"u-{s}") for s in senders))
        assert _router(app).commits.stats.largest >= 2
        assert _router(app).commits.stats.rolled_back == 1
        generic = translator("de")("error.generic")
        assert [m.text for m in transport.pop("bad")] == [generic]
        for s in ("p0", "p1", "p2", "p3"):
            replies = transport.pop(s)
            assert replies
            assert all(m.text != generic for m in replies)
        assert await _count(app, Contact) == 4  # the bad one's contact was rolled back
        assert await _count(app, ProcessedUpdate) == 4  # and its update is not marked done

        monkeypatch.setattr(Router, "_person", original)
        await transport.push("bad", "/start", update_id="u-bad")  # the platform redelivers
        assert transport.pop("bad")[0].text != generic  # handled now, not a duplicate
        assert await _count(app, Contact) == 5
    finally:
        await app.stop()


async def test_a_failed_commit_fails_every_message_of_the_batch(
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing of a batch whose COMMIT failed counts as handled: all answer the error
    and a redelivery handles each of them anew."""
    transport = MemoryTransport()
    app = await _app(settings, clock, directory, transport)
    store = app.keystore
    assert store is not None
    original = store.store
    broken = True

    async def failing_store(keys: Any, now: Any = None) -> None:
        if broken and len(keys) > 1:  # the batch's keys, just before its commit
            raise OSError("disk full")
        await original(keys, now)

    monkeypatch.setattr(store, "store", failing_store)
    try:
        await asyncio.gather(
            *(transport.push(f"p{i}", "/start", update_id=f"u{i}") for i in range(4))
        )
        assert _router(app).commits.stats.batches == 1
        generic = translator("de")("error.generic")
        for i in range(4):
            assert [m.text for m in transport.pop(f"p{i}")] == [generic]
        assert await _count(app, Contact) == 0
        broken = False
        for i in range(4):
            await transport.push(f"p{i}", "/start", update_id=f"u{i}")
            assert transport.pop(f"p{i}")[0].text != generic
        assert await _count(app, Contact) == 4
    finally:
        await app.stop()


async def test_an_error_after_the_commit_still_answers_every_committed_message(
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """H11.3: the key store failing after COMMIT (shred, checkpoint) must not cancel the
    units that did commit (a cancelled update pins Telegram's offset); logged instead."""
    transport = MemoryTransport()
    app = await _app(settings, clock, directory, transport)
    store = app.keystore
    assert store is not None

    async def failing_shred(ids: Any) -> None:
        raise OSError("key store away")

    monkeypatch.setattr(store, "shred", failing_shred)
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(
                *(transport.push(f"p{i}", "/start", update_id=f"u{i}") for i in range(4))
            )
        assert _router(app).commits.stats.batches == 1
        generic = translator("de")("error.generic")
        for i in range(4):
            got = [m.text for m in transport.pop(f"p{i}")]
            assert got, f"p{i} got no reply"
            assert generic not in got
        assert await _count(app, Contact) == 4
        await transport.push("p9", "/start", update_id="u9")  # alone: the same
        assert generic not in [m.text for m in transport.pop("p9")]
    finally:
        await app.stop()
