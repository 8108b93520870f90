"""The outbox: replies committed but not yet sent survive a crash (privacy check 13, core)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.clock import FakeClock
from bot.messages import OutboundMessage, SendResult
from bot.transports.base import SendLater
from bot.transports.memory import MemoryTransport
from config.directory import Directory
from config.settings import Settings
from storage.models import OutboxEntry
from tests.conftest import memory_directory


class Crash(BaseException):
    """Stands in for the process dying (not an Exception: nothing catches it)."""


class CrashingTransport(MemoryTransport):
    """Dies on the n-th send, like a kill -9 between commit and sending."""

    def __init__(self, die_on: int) -> None:
        super().__init__(redelivers=True)
        self.die_on = die_on
        self.calls = 0

    async def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        if self.calls == self.die_on:
            raise Crash
        return await super().send(message)


async def outbox_rows(app: App) -> int:
    assert app.db is not None
    async with app.db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(OutboxEntry))).scalar_one())


async def test_replies_lost_in_a_crash_are_sent_after_restart(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    crashing = CrashingTransport(die_on=2)  # the greeting goes out, the consent question not
    app = App(settings, [crashing], clock=clock, directory=memory_directory(directory))
    await app.start()
    with pytest.raises(Crash):
        await crashing.push("p1", "/start", update_id="upd-1")
    assert await outbox_rows(app) == 1
    await app.stop()
    greeting = crashing.sent[0]
    assert greeting.send_key is not None
    assert greeting.send_key.endswith(".0")

    again = MemoryTransport(redelivers=True)
    app2 = App(settings, [again], clock=clock, directory=memory_directory(directory))
    await app2.start()
    try:
        resent = again.pop("p1")
        assert any("Bist du damit einverstanden?" in m.text for m in resent)
        # Each reply keeps its key across attempts (Matrix sends it as the transaction id).
        assert resent[0].text == greeting.text
        assert [m.send_key for m in resent] == [
            greeting.send_key.replace(".0", f".{i}") for i in range(len(resent))
        ]
        assert await outbox_rows(app2) == 0
        await again.push("p1", "/start", update_id="upd-1")  # the platform redelivers
        assert again.pop("p1") == []  # handled once, sent once more at most
    finally:
        await app2.stop()


async def test_redelivered_update_resends_unsent_replies_once(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    crashing = CrashingTransport(die_on=1)
    app = App(settings, [crashing], clock=clock, directory=memory_directory(directory))
    await app.start()
    try:
        with pytest.raises(Crash):
            await crashing.push("p1", "hallo", update_id="upd-9")
        crashing.die_on = 0
        await asyncio.gather(
            crashing.push("p1", "hallo", update_id="upd-9"),
            crashing.push("p1", "hallo", update_id="upd-9"),
        )
        greetings = [m for m in crashing.pop("p1") if m.text.startswith("Hallo.")]
        assert len(greetings) == 1
        assert await outbox_rows(app) == 0
    finally:
        await app.stop()


async def test_no_outbox_without_a_redelivering_transport(harness: object) -> None:
    from tests.conftest import Harness

    assert isinstance(harness, Harness)
    await harness.say("p1", "/start")
    assert harness.app.router is not None
    assert harness.app.router.outbox is False
    assert await outbox_rows(harness.app) == 0


class UnreachableTransport(MemoryTransport):
    """A platform that is unreachable at the given send attempts (1-based)."""

    def __init__(self, down: set[int]) -> None:
        super().__init__(redelivers=True)
        self.down = down
        self.attempts: list[str | None] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.attempts.append(message.send_key)
        if len(self.attempts) in self.down:
            raise SendLater
        return await super().send(message)


async def test_replies_a_platform_could_not_take_are_sent_again_in_order(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    down = UnreachableTransport(down={1, 2})  # the greeting fails twice, then it is back
    app = App(
        settings, [down], clock=clock, directory=memory_directory(directory), retry_seconds=0.01
    )
    await app.start()
    try:
        await down.push("p1", "/start", update_id="upd-1")
        assert await outbox_rows(app) == 1  # kept, not dropped
        await down.wait_for(lambda m: "Bist du damit einverstanden?" in m.text)
        texts = [m.text for m in down.pop("p1")]
        assert len(texts) == 2  # greeting, then the notice with the question: once each
        assert "einverstanden" in texts[-1]
        assert down.attempts[0] == down.attempts[1] == down.attempts[2]  # same reply, same key
        async with asyncio.timeout(5):
            while await outbox_rows(app):  # noqa: ASYNC110 - deleted right after the send
                await asyncio.sleep(0.01)
    finally:
        await app.stop()


async def test_replies_sent_before_an_outage_are_not_sent_again(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    down = UnreachableTransport(down={2})  # the greeting goes out, the question must wait
    app = App(
        settings, [down], clock=clock, directory=memory_directory(directory), retry_seconds=0.01
    )
    await app.start()
    try:
        await down.push("p1", "/start", update_id="upd-2")
        assert app.waiting == 1
        await down.wait_for(lambda m: "Bist du damit einverstanden?" in m.text)
        texts = [m.text for m in down.pop("p1")]
        assert len(texts) == 2, "the greeting was sent again"
        assert down.attempts[1] == down.attempts[2]  # the question, tried twice, one key
        assert app.waiting == 0
    finally:
        await app.stop()
