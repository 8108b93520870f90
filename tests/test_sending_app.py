"""The send path in the app, in production mode (commit, then confirm, then send; issue 14):
a staff group at its platform limit delays no other chat's reply, and its pending relays
are merged per case while it waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.transports.base import InboundHandler, SendLater
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.messages import OutboundMessage, SendResult
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from tests.world import World, directory_without

ROOM = "alpha-room"
#: on_message must return this fast while the staff room waits (it waits for nothing).
PROMPT = 5.0


@pytest.fixture
async def live(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The casework world with the app in production mode once it is set up."""
    transport = MemoryTransport(redelivers=True)
    unlimited = LimitSettings(person_burst=1e6, new_contacts_burst=1e6)
    app = App(
        settings, [transport], clock=clock, directory=directory_without(), limits=Limits(unlimited)
    )
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


async def claimed(w: World, who: str) -> str:
    code = await w.open(who)
    await w.staff("a1", f"/claim {code}")
    return code


async def replies(t: MemoryTransport, who: str, count: int) -> None:
    """Until ``who`` got ``count`` messages (event-driven, bounded)."""
    await t.wait_for(lambda _m: sum(m.address.chat_id == who for m in t.sent) >= count)


def relays(sent: list[OutboundMessage], code: str) -> list[OutboundMessage]:
    return [m for m in sent if m.address.chat_id == ROOM and m.case_code == code]


def in_order(messages: list[OutboundMessage], texts: list[str]) -> bool:
    """Every text arrived once, in this order, across ``messages``."""
    joined = "\n".join(m.text for m in messages)
    at = [joined.find(t) for t in texts]
    return all(joined.count(t) == 1 for t in texts) and at == sorted(at) and -1 not in at


async def test_a_staff_room_at_its_limit_delays_no_other_chat_and_merges_per_case(
    live: World,
) -> None:
    w, t, app = live, live.t, live.app
    first, second = await claimed(w, "p1"), await claimed(w, "p2")
    t.sent.clear()
    app.wait_for_sends = False  # as `ausweg run`: on_message returns after the commit

    t.hold(ROOM)  # the staff group reached its limit (Telegram: 20 a minute)
    mine = [f"erste Nachricht {i}" for i in range(6)]
    theirs = [f"zweite Person {i}" for i in range(4)]
    async with asyncio.timeout(PROMPT):  # intake never waits for the held room
        for i in range(max(len(mine), len(theirs))):
            if i < len(mine):
                await t.push("p1", mine[i])
            if i < len(theirs):
                await t.push("p2", theirs[i])
    assert t.waiting[ROOM] == 1, "one relay waits at the limit, the rest in the queue"

    # Meanwhile new people are answered, each in order, while the room stays held.
    newcomers = [f"n{i}" for i in range(12)]
    async with asyncio.timeout(PROMPT):
        for who in newcomers:
            await t.push(who, "/start")
        await asyncio.gather(*(replies(t, who, 2) for who in newcomers))
    greeting = [m.text for m in t.sent if m.address.chat_id == "n0"]
    for who in newcomers:
        assert [m.text for m in t.sent if m.address.chat_id == who] == greeting
    assert not [m for m in t.sent if m.address.chat_id == ROOM]
    assert app.sender.queued == len(mine) + len(theirs)  # the one at the limit counts

    while app.sender.queued:  # the limit lets one message through at a time
        before = len([m for m in t.sent if m.address.chat_id == ROOM])
        await t.allow(ROOM)
        await t.wait_for(
            lambda _m, n=before: sum(m.address.chat_id == ROOM for m in t.sent) > n  # type: ignore[misc]
        )
    got = [m for m in t.sent if m.address.chat_id == ROOM]
    # Nothing lost, nothing twice, each case's relays in order; no message mixes cases.
    assert in_order(relays(got, first), mine)
    assert in_order(relays(got, second), theirs)
    assert all(not (mine[0][:5] in m.text and theirs[0][:5] in m.text) for m in got)
    # The one at the limit alone, then each case's pending relays as one message.
    assert len(got) == 3, [m.text for m in got]
    assert app.sender.coalesced == len(mine) + len(theirs) - len(got)


async def test_a_crisis_reply_is_not_held_by_a_staff_room_at_its_limit(live: World) -> None:
    w, t, app = live, live.t, live.app
    await claimed(w, "p1")
    t.sent.clear()
    app.wait_for_sends = False
    t.hold(ROOM)
    async with asyncio.timeout(PROMPT):
        for i in range(5):
            await t.push("p1", f"Nachricht {i}")
        await t.push("p9", "Ich will mich umbringen")
        await replies(t, "p9", 1)
    assert any(m.urgent for m in t.sent if m.address.chat_id == "p9")
    await t.release(ROOM)
    await app.sender.idle()


class LateTransport(MemoryTransport):
    """A leader-only platform (like Telegram polling) that connects a moment after its
    start began; before that a send cannot go out (``SendLater``)."""

    leader_only = True

    def __init__(self) -> None:
        super().__init__(redelivers=True)
        self.refused = 0

    async def start(self, on_message: InboundHandler) -> None:
        await asyncio.sleep(0.2)  # getMe, deleteWebhook: the platform answers later
        await super().start(on_message)

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self.started:
            self.refused += 1
            raise SendLater("not connected yet")
        return await super().send(message)


async def test_a_followup_due_at_the_start_finds_its_platform_connected(
    settings: Settings, clock: FakeClock
) -> None:
    """The leader's platform starts before the jobs: a follow-up due at a (re)start or a
    take-over must not meet an unconnected platform (that parks all its chats until the
    next retry round, 30 s)."""
    first = MemoryTransport(redelivers=True)
    app = App(settings, [first], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, first, clock)
        code = await claimed(w, "p1")
        await w.staff("a1", f"/followup {code} 1d")
    finally:
        await app.stop()
    clock.advance(days=1, hours=1)  # due while the bot was down

    late = LateTransport()
    app = App(settings, [late], clock=clock, directory=directory_without())
    await app.start()
    try:
        async with asyncio.timeout(PROMPT):  # the check-in comes at once, not after a retry
            await late.wait_for(lambda m: "wie geht es dir" in m.text)
        assert late.refused == 0
        assert app.waiting == 0
    finally:
        await app.stop()


async def test_relays_queued_in_memory_are_not_sent_after_the_persons_delete(
    live: World,
) -> None:
    """Red team H11.2 (privacy check 18): a person's relays queued behind a held staff
    group are dropped once their /delete committed; another case's relays still go."""
    w, t, app = live, live.t, live.app
    gone, kept = await claimed(w, "p1"), await claimed(w, "p2")
    t.sent.clear()
    app.wait_for_sends = False
    t.hold(ROOM)
    async with asyncio.timeout(PROMPT):
        await t.push("p2", "vorne in der Schlange")  # waits at the limit
        for i in range(3):
            await t.push("p1", f"geheim {i}")
            await t.push("p2", f"bleibt {i}")
    assert app.sender.queued == 7
    async with asyncio.timeout(PROMPT):
        await t.push("p1", "/delete")
        await t.push("p1", button="delete:yes")
        await replies(t, "p1", 2)  # the question and the receipt (the person's chat is free)
    await t.release(ROOM)
    async with asyncio.timeout(PROMPT):
        await app.sender.idle()
    got = [m for m in t.sent if m.address.chat_id == ROOM]
    assert not [m for m in got if "geheim" in m.text], [m.text for m in got]
    about_gone = [m.text for m in relays(got, gone)]
    assert len(about_gone) == 1, about_gone  # the notice that the case was closed
    assert "geheim" not in about_gone[0]
    assert in_order(
        relays(got, kept), ["vorne in der Schlange", *(f"bleibt {i}" for i in range(3))]
    )
