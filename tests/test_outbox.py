"""The outbox: replies committed but not yet sent survive a crash (privacy check 13, core)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sqlalchemy import func, select

from bot.app import App
from bot.transports.base import SendLater
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory, parse_directory
from config.messages import OutboundMessage, Platform, SendResult
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from storage.models import OutboxEntry
from tests.conftest import memory_directory
from tests.world import DIRECTORY, World


class CrashingTransport(MemoryTransport):
    """The process dies during the n-th send (kill -9 between commit and sending).

    That send never returns; with ``arrived`` its message reached the platform first
    (the request went out, the answer never came back)."""

    def __init__(self, die_on: int, *, arrived: bool = False) -> None:
        super().__init__(redelivers=True)
        self.die_on = die_on
        self.arrived = arrived
        self.calls = 0
        self.died = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        if self.calls == self.die_on:
            if self.arrived:
                await super().send(message)
            self.died.set()
            await asyncio.Event().wait()  # the request is in flight when the process dies
        return await super().send(message)


async def crash(app: App, transport: CrashingTransport, *pushes: Awaitable[None]) -> None:
    """Run ``pushes`` until the transport dies, then end the app as a kill would:
    nothing more is sent or recorded (what was committed stays)."""
    tasks = [asyncio.create_task(_run(p)) for p in pushes]
    await transport.died.wait()
    app.sender.abandon()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _run(push: Awaitable[None]) -> None:
    await push


async def outbox_rows(app: App) -> int:
    """Stored reply sets, after deleting those already handed over (done lazily)."""
    assert app.db is not None
    assert app.router is not None
    await app.router.forget_delivered()
    async with app.db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(OutboxEntry))).scalar_one())


async def test_after_a_crash_only_the_reply_not_yet_sent_goes_out_again(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    crashing = CrashingTransport(die_on=2)  # the greeting goes out, the consent question not
    app = App(settings, [crashing], clock=clock, directory=memory_directory(directory))
    await app.start()
    await crash(app, crashing, crashing.push("p1", "/start", update_id="upd-1"))
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
        # The greeting was recorded as sent right after its send: only the question again.
        assert [m.text for m in resent if m.text == greeting.text] == []
        assert len(resent) == 1
        assert "Bist du damit einverstanden?" in resent[0].text
        # Each reply keeps its key across attempts (Matrix sends it as the transaction id).
        assert resent[0].send_key == greeting.send_key.replace(".0", ".1")
        assert await outbox_rows(app2) == 0
        await again.push("p1", "/start", update_id="upd-1")  # the platform redelivers
        assert again.pop("p1") == []  # handled once, sent once more at most
    finally:
        await app2.stop()


async def test_a_reply_in_flight_at_the_crash_is_the_only_one_sent_twice(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    """The platform took the question but the process died before hearing so: it is in
    doubt and sent again (Telegram has no idempotent send); nothing else is."""
    crashing = CrashingTransport(die_on=2, arrived=True)
    app = App(settings, [crashing], clock=clock, directory=memory_directory(directory))
    await app.start()
    await crash(app, crashing, crashing.push("p1", "/start", update_id="upd-1"))
    await app.stop()
    before = [m.text for m in crashing.pop("p1")]
    assert len(before) == 2

    again = MemoryTransport(redelivers=True)
    app2 = App(settings, [again], clock=clock, directory=memory_directory(directory))
    await app2.start()
    try:
        after = [m.text for m in again.pop("p1")]
        assert after == before[1:]  # the question, once more; the greeting not
    finally:
        await app2.stop()


async def test_redelivered_update_resends_unsent_replies_once(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    crashing = CrashingTransport(die_on=1)
    app = App(settings, [crashing], clock=clock, directory=memory_directory(directory))
    await app.start()
    await crash(app, crashing, crashing.push("p1", "hallo", update_id="upd-9"))
    await app.stop()
    again = MemoryTransport(redelivers=True)
    app2 = App(settings, [again], clock=clock, directory=memory_directory(directory))
    await app2.start()
    try:
        await asyncio.gather(
            again.push("p1", "hallo", update_id="upd-9"),
            again.push("p1", "hallo", update_id="upd-9"),
        )
        greetings = [m for m in again.pop("p1") if m.text.startswith("Hallo.")]
        assert len(greetings) == 1
        assert await outbox_rows(app2) == 0
    finally:
        await app2.stop()


async def test_no_outbox_without_a_redelivering_transport(harness: object) -> None:
    from tests.conftest import Harness

    assert isinstance(harness, Harness)
    await harness.say("p1", "/start")
    assert harness.app.router is not None
    assert harness.app.router.outbox is False
    assert await outbox_rows(harness.app) == 0


class Switchable(MemoryTransport):
    """A platform that is down (``down``) or unreachable at given send attempts (1-based)."""

    def __init__(
        self, platform: Platform = Platform.MEMORY, down_at: frozenset[int] = frozenset()
    ) -> None:
        super().__init__(redelivers=True)
        self.platform = platform  # type: ignore[misc]
        self.down = False
        self.down_at = down_at
        self.attempts: list[str | None] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.attempts.append(message.send_key)
        if self.down or len(self.attempts) in self.down_at:
            raise SendLater
        return await super().send(message)


async def test_replies_a_platform_could_not_take_are_sent_again_in_order(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    down = Switchable(down_at=frozenset({1, 2}))  # the greeting fails twice, then it is back
    app = App(
        settings, [down], clock=clock, directory=memory_directory(directory), retry_seconds=3600
    )
    await app.start()
    try:
        await down.push("p1", "/start", update_id="upd-1")
        assert await outbox_rows(app) == 1  # kept, not dropped
        assert app.waiting == 1
        await app.retry_waiting()  # still down
        assert app.waiting == 1
        assert down.pop("p1") == []
        await app.retry_waiting()  # back
        texts = [m.text for m in down.pop("p1")]
        assert len(texts) == 2  # greeting, then the notice with the question: once each
        assert "einverstanden" in texts[-1]
        assert down.attempts[0] == down.attempts[1] == down.attempts[2]  # same reply, same key
        assert app.waiting == 0
    finally:
        await app.stop()


async def test_replies_sent_before_an_outage_are_not_sent_again(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    down = Switchable(down_at=frozenset({2}))  # the greeting goes out, the question must wait
    app = App(
        settings, [down], clock=clock, directory=memory_directory(directory), retry_seconds=3600
    )
    await app.start()
    try:
        await down.push("p1", "/start", update_id="upd-2")
        assert app.waiting == 1
        await down.push("p1", "/start", update_id="upd-2")  # redelivered meanwhile
        await app.retry_waiting()
        texts = [m.text for m in down.pop("p1")]
        assert len(texts) == 2, "the greeting was sent again"
        assert "einverstanden" in texts[-1]
        assert down.attempts[1] == down.attempts[2]  # the question, tried twice, one key
        assert app.waiting == 0
    finally:
        await app.stop()


async def test_one_platform_down_does_not_hold_up_the_other_and_order_is_kept(
    settings: Settings, clock: FakeClock
) -> None:
    people, staff = Switchable(), Switchable(Platform.CONSOLE)
    on_console = parse_directory(DIRECTORY.replace("memory:", "console:"))
    app = App(settings, [people, staff], clock=clock, directory=on_console, retry_seconds=3600)
    await app.start()
    try:
        staff.down = True
        world = World(app, people, clock)
        first = await world.open("p1")  # the person hears at once; the team room waits
        assert app.waiting == 1
        tried = len(staff.attempts)
        second = await world.open("p2")
        assert len(staff.attempts) == tried, "newer replies queue behind the waiting ones"
        assert app.waiting == 2
        assert staff.sent == []

        staff.down = False
        await app.retry_waiting()
        announced = [m.text for m in staff.sent]
        assert any(first in t for t in announced)
        assert any(second in t for t in announced)
        assert min(i for i, t in enumerate(announced) if first in t) < min(
            i for i, t in enumerate(announced) if second in t
        ), "the older case is announced first"
        assert app.waiting == 0
    finally:
        await app.stop()


async def test_a_reply_without_outbox_entry_waits_in_memory(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    people = Switchable()
    strict = Limits(LimitSettings(person_burst=1, person_per_second=0.0001))
    app = App(
        settings,
        [people],
        clock=clock,
        directory=memory_directory(directory),
        limits=strict,
        retry_seconds=3600,
    )
    await app.start()
    try:
        people.down = True
        await people.push("p1", "/start")
        await people.push("p1", "hallo?")  # over the limit: a kind note, not stored anywhere
        assert app.waiting == 2
        people.down = False
        await app.retry_waiting()
        texts = [m.text for m in people.pop("p1")]
        assert len(texts) == 3  # greeting, consent question, then the note - in order
        assert "einverstanden" in texts[1]
        assert app.waiting == 0
    finally:
        await app.stop()


class Gated(MemoryTransport):
    """Holds its first send until released (a slow platform during the drain)."""

    def __init__(self) -> None:
        super().__init__(redelivers=True)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await super().send(message)


async def test_new_messages_wait_until_the_replies_left_by_a_crash_went_out(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    crashing = CrashingTransport(die_on=2)  # the greeting goes out, the question not
    app = App(settings, [crashing], clock=clock, directory=memory_directory(directory))
    await app.start()
    await crash(app, crashing, crashing.push("p1", "/start", update_id="upd-1"))
    await app.stop()

    gated = Gated()
    app2 = App(settings, [gated], clock=clock, directory=memory_directory(directory))
    starting = asyncio.create_task(app2.start())
    await gated.entered.wait()  # the drain is sending the left-over replies
    newer = asyncio.create_task(gated.push("p1", "Nein", update_id="upd-2"))
    done, _ = await asyncio.wait({newer}, timeout=0.5)  # nothing to await: it must wait
    assert not done, "a new message was answered before the left-over replies"
    gated.release.set()
    await starting
    await newer
    try:
        texts = [m.text for m in gated.pop("p1")]
        question = next(i for i, t in enumerate(texts) if "Bist du damit einverstanden?" in t)
        assert question < len(texts) - 1, "the left-over question first, then the new answer"
    finally:
        await app2.stop()


async def test_sets_left_by_a_crash_go_out_in_the_order_they_were_written(
    settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    """Updates are confirmed once committed, so one chat may leave several sets; the
    drain queues them in the order written (ids are random: never by id)."""
    from bot.routing.replies import _STASH
    from storage import outbox

    app = App(settings, [MemoryTransport(redelivers=True)], clock=clock, directory=directory)
    await app.start()
    try:
        assert app.db is not None
        written = [f"z{n}" for n in range(8, 0, -1)]  # against the ids' own order
        async with app.db.engine.begin() as conn:
            for box in written:
                await conn.execute(
                    _STASH,
                    {"id": box, "payload_ct": outbox.pack(None, []), "delete_after": clock.now()},
                )
        adopted: list[str] = []
        app.sender.adopt = adopted.append  # type: ignore[method-assign,assignment]
        assert await app.drain_outbox() == len(written)
        assert adopted == written
    finally:
        await app.stop()
