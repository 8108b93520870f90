"""The send queues (bot/sending): order per destination, independence, crisis first,
coalescing while held, parking, bounded memory (issue 14, commit-confirm-send)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from bot.sending.merge import mergeable, merged
from bot.sending.queues import Sender
from config.messages import Address, Button, OutboundMessage, Platform

ROOM = Address(Platform.MEMORY, "staff-room")


def to(chat: str, text: str, **kw: object) -> OutboundMessage:
    return OutboundMessage(Address(Platform.MEMORY, chat), text, **kw)  # type: ignore[arg-type]


def relay(code: str, text: str, **kw: object) -> OutboundMessage:
    return OutboundMessage(ROOM, text, case_code=code, programme="alpha", protect=False, **kw)  # type: ignore[arg-type]


class Platformish:
    """A deliver function: records per chat; chats in ``gates`` wait for their event."""

    def __init__(self) -> None:
        self.sent: dict[str, list[OutboundMessage]] = defaultdict(list)
        self.order: list[OutboundMessage] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.down = False
        self.changed = asyncio.Event()

    async def deliver(self, message: OutboundMessage) -> bool:
        chat = message.address.chat_id
        self.entered[chat].set()
        gate = self.gates.get(chat)
        if gate is not None:
            await gate.wait()
        if self.down:
            return False
        self.sent[chat].append(message)
        self.order.append(message)
        self.changed.set()
        return True


async def test_a_held_chat_delays_no_other_chat_and_keeps_its_own_order() -> None:
    platform = Platformish()
    platform.gates["slow"] = asyncio.Event()
    sender = Sender(platform.deliver)
    slow = sender.submit(None, [to("slow", f"s{i}") for i in range(3)])
    fast = [sender.submit(None, [to(f"p{i}", "hi"), to(f"p{i}", "there")]) for i in range(20)]
    await platform.entered["slow"].wait()
    async with asyncio.timeout(5):
        await asyncio.gather(*(rs.wait() for rs in fast))
    assert all([m.text for m in platform.sent[f"p{i}"]] == ["hi", "there"] for i in range(20))
    assert platform.sent["slow"] == []
    assert not slow.settled.is_set()
    platform.gates["slow"].set()
    await slow.wait()
    assert [m.text for m in platform.sent["slow"]] == ["s0", "s1", "s2"]
    await sender.close()


async def test_crisis_replies_overtake_what_waits_in_their_chat() -> None:
    platform = Platformish()
    platform.gates["p"] = asyncio.Event()
    sender = Sender(platform.deliver)
    sender.submit(None, [to("p", "one"), to("p", "two"), to("p", "three")])
    await platform.entered["p"].wait()  # "one" is in flight
    crisis = sender.submit(None, [to("p", "numbers", urgent=True)])
    platform.gates["p"].set()
    await crisis.wait()
    await sender.idle()
    assert [m.text for m in platform.sent["p"]] == ["one", "numbers", "two", "three"]
    await sender.close()


async def test_relays_for_one_topic_merge_while_the_staff_room_is_held() -> None:
    platform = Platformish()
    platform.gates[ROOM.chat_id] = asyncio.Event()
    sender = Sender(platform.deliver, held=lambda m: True)  # the transport says: at its limit
    sender.submit(None, [relay("K-1", "first")])
    await platform.entered[ROOM.chat_id].wait()
    button = (Button("Übernehmen", "claim:K-1"),)
    for out in (
        relay("K-1", "a"),
        relay("K-2", "other case"),
        relay("K-1", "b"),
        relay("K-1", "with a button", buttons=(button,)),  # closes the merge for K-1
        relay("K-1", "c"),
        relay("K-2", "other again"),
        to(ROOM.chat_id, "not about a case"),
    ):
        sender.submit(None, [out])
    platform.gates[ROOM.chat_id].set()
    await sender.idle()
    texts = [m.text for m in platform.sent[ROOM.chat_id]]
    assert texts == [
        "first",
        "a\n\nb",  # K-1's relays before the button message, in order
        "other case\n\nother again",
        "with a button",
        "c",
        "not about a case",
    ]
    assert sender.coalesced == 2
    await sender.close()


async def test_a_room_the_transport_reports_held_merges_before_its_first_wait() -> None:
    """The hint is asked before a send too: relays queued while the room is at its limit
    go out as one message at once, not one first and the rest after the wait."""
    platform = Platformish()
    platform.gates[ROOM.chat_id] = asyncio.Event()
    sender = Sender(platform.deliver, held=lambda m: m.address == ROOM, held_seconds=3600)
    sender.submit(None, [to("someone", "blocks the loop a moment")])
    for text in ("a", "b", "c"):
        sender.submit(None, [relay("K-1", text)])
    await platform.entered[ROOM.chat_id].wait()
    platform.gates[ROOM.chat_id].set()
    await sender.idle()
    assert [m.text for m in platform.sent[ROOM.chat_id]] == ["a\n\nb\n\nc"]
    assert sender.coalesced == 2
    await sender.close()


async def test_nothing_merges_when_the_room_is_not_held() -> None:
    platform = Platformish()
    sender = Sender(platform.deliver, held_seconds=3600)
    for text in ("a", "b", "c"):
        sender.submit(None, [relay("K-1", text)])
    await sender.idle()
    assert [m.text for m in platform.sent[ROOM.chat_id]] == ["a", "b", "c"]
    assert sender.coalesced == 0
    await sender.close()


def test_only_plain_staff_texts_about_a_case_merge() -> None:
    assert mergeable(relay("K-1", "x"))
    assert not mergeable(to("p1", "to a person", contact_id="c1"))
    assert not mergeable(relay("K-1", "x", urgent=True))
    assert not mergeable(relay("K-1", "x", buttons=((Button("b", "d"),),)))
    assert not mergeable(to(ROOM.chat_id, "no case"))
    one = merged([relay("K-1", "a", send_key="e.1"), relay("K-1", "b", send_key="e.2")])
    two = merged([relay("K-1", "a", send_key="e.1"), relay("K-1", "b", send_key="e.3")])
    assert one.text == "a\n\nb"
    assert one.send_key != two.send_key  # another merge is another message (Matrix txn id)


async def test_an_unreachable_platform_parks_its_queues_until_the_retry() -> None:
    platform = Platformish()
    sender = Sender(platform.deliver)
    platform.down = True
    first = sender.submit(None, [to("p", "1"), to("p", "2")])
    await first.wait()  # settled: waiting for the platform
    second = sender.submit(None, [to("q", "3")])
    await second.wait()
    assert sender.waiting == 2
    platform.down = False
    await sender.retry()
    assert sender.waiting == 0
    assert [m.text for m in platform.order] == ["1", "2", "3"]
    await sender.close()


async def test_memory_stays_bounded_the_outbox_holds_the_rest_in_order() -> None:
    """Beyond max_items, sets keep only their outbox id and are read again later."""
    store: dict[str, list[OutboundMessage]] = {}
    reads = 0

    async def load(box: str) -> tuple[list[OutboundMessage], list[int]] | None:
        nonlocal reads
        reads += 1
        out = store.get(box)
        return None if out is None else (out, list(range(len(out))))

    platform = Platformish()
    platform.gates["p0"] = asyncio.Event()  # the first chat is held: the queues fill
    sender = Sender(platform.deliver, loader=load, max_items=10)
    sets = []
    for i in range(200):
        box = f"box{i:03d}"
        store[box] = [to(f"p{i % 4}", f"{i}.a"), to(f"p{i % 4}", f"{i}.b")]
        sets.append(sender.submit(box, store[box]))
    assert sender.queued <= 10
    platform.gates["p0"].set()
    async with asyncio.timeout(10):
        await asyncio.gather(*(rs.wait() for rs in sets))
        await sender.idle()
    assert sender.peak <= 11  # a set is queued whole: the bound plus one set
    assert reads > 0
    for chat in range(4):
        got = [m.text for m in platform.sent[f"p{chat}"]]
        want = [f"{i}.{x}" for i in range(chat, 200, 4) for x in "ab"]
        assert got == want
    await sender.close()


async def test_a_redelivered_set_is_queued_once() -> None:
    platform = Platformish()
    platform.gates["p"] = asyncio.Event()
    sender = Sender(platform.deliver)
    one = sender.submit("box1", [to("p", "x")])
    again = sender.submit("box1", [to("p", "x")])
    assert one is again
    platform.gates["p"].set()
    await one.wait()
    sender.submit("box1", [to("p", "x")])  # a copy read before its delete committed
    await sender.idle()
    assert [m.text for m in platform.sent["p"]] == ["x"]
    assert platform.sent["p"][0].send_key == "box1.0"
    await sender.close()


async def test_the_telegram_limiter_says_when_a_group_is_held() -> None:
    """The hint the queues get from Telegram (``held``): a group at its per-minute limit
    is held, a private chat only when the whole bot is at its limit."""
    from bot.transports.telegram.limiter import FloodLimiter

    async def call() -> bool:
        return True

    limiter = FloodLimiter(overall_per_second=0, group_per_minute=2)
    group, person = -1_001_234_567_890, 42
    assert not limiter.held(group)
    for _ in range(2):
        await limiter.process_request(call, (), {}, "sendMessage", {"chat_id": group}, None)
    assert limiter.held(group)
    assert limiter.held(str(group))
    assert not limiter.held(person)
    assert not limiter.held(-1_009)  # another group: its own limit

    whole = FloodLimiter(overall_per_second=1, group_per_minute=20)
    await whole.process_request(call, (), {}, "sendMessage", {"chat_id": person}, None)
    assert whole.held(person)


async def test_a_retry_round_overlapping_new_traffic_settles() -> None:
    """Red team H11.1: new traffic to a parked chat while the retry reads the outbox
    must not send the parked reply behind the retry's back and leave its set unsettled."""
    platform = Platformish()
    reading = asyncio.Event()
    go = asyncio.Event()

    async def loader(box: str) -> tuple[list[OutboundMessage], list[int]] | None:
        reading.set()
        await go.wait()
        return [to("p", "old")], [0]

    sender = Sender(platform.deliver, loader=loader)
    platform.down = True
    old = sender.submit("b1", [to("p", "old")])
    await old.wait()
    assert sender.waiting == 1
    platform.down = False
    retry = asyncio.create_task(sender.retry())
    await reading.wait()  # the retry reads the outbox ...
    new = sender.submit(None, [to("p", "new")])  # ... while new traffic arrives
    await asyncio.sleep(0)
    go.set()
    async with asyncio.timeout(5):
        await retry
        await new.wait()
    assert old.settled.is_set()
    assert [m.text for m in platform.sent["p"]] == ["old", "new"]
    assert sender.waiting == 0
    await sender.close()


async def test_an_erasure_drops_queued_replies_before_their_send() -> None:
    """H11.2: after recheck() every queued set is read again; erased ones never go out."""
    platform = Platformish()
    platform.gates["p"] = asyncio.Event()
    erased: set[str] = set()

    async def loader(box: str) -> tuple[list[OutboundMessage], list[int]] | None:
        return None if box in erased else ([to("p", box)], [0])

    sender = Sender(platform.deliver, loader=loader)
    sender.submit("first", [to("p", "first")])
    await platform.entered["p"].wait()  # in flight: it goes
    sender.submit("gone", [to("p", "gone")])
    sender.submit("kept", [to("p", "kept")])
    erased.add("gone")
    sender.recheck()
    platform.gates["p"].set()
    async with asyncio.timeout(5):
        await sender.idle()
    assert [m.text for m in platform.sent["p"]] == ["first", "kept"]
    await sender.close()
