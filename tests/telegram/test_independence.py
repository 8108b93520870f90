"""Issue 14, target 3 (Telegram): a staff group at its limit delays no other chat.

The fake Bot API, the transport with its throttle ON, and a stand-in for the core that
relays a person's message into the staff group and answers the person. The staff
group allows one message a minute here (Telegram: 20), so the second relay waits for
the limit. Meanwhile another person is answered at once, the chat that waits stays in
order, and with the core's "commit, return, send apart" (issue 14) the waiting update
is confirmed to Telegram while its relay still waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.transports.telegram import TelegramTransport
from config.messages import Address, InboundMessage, OutboundMessage, Platform
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import FORUM, FastSleep, fake_config, texts

ANNA = 5_580_000_001  # her case's staff group is at its limit
BERT = 5_580_000_002  # writes at the same time
CARO = 5_580_000_003
STAFF = Address(Platform.TELEGRAM, str(FORUM))


class Relay:
    """Stands in for the core: a person's "relay ..." goes to the staff group, every
    other text is answered in the person's chat.

    ``apart``: the core's new shape (issue 14) - return once the message is committed,
    send apart (here: a background task per message); else send before returning (the
    shape before it).
    """

    def __init__(self, *, apart: bool = False) -> None:
        self.apart = apart
        self.transport: TelegramTransport | None = None
        self.seen: list[str] = []
        self.entered: dict[str, asyncio.Event] = {}
        self.sending: dict[str, asyncio.Task[Any]] = {}

    def entered_for(self, text: str) -> asyncio.Event:
        return self.entered.setdefault(text, asyncio.Event())

    async def __call__(self, msg: InboundMessage) -> None:
        assert self.transport is not None
        self.seen.append(msg.text)
        self.entered_for(msg.text).set()
        if msg.text.startswith("relay"):
            out = OutboundMessage(STAFF, f"[K-ANNA] {msg.text}")
        else:
            out = OutboundMessage(msg.address, f"Antwort auf {msg.text}")
        if self.apart:
            self.sending[msg.text] = asyncio.create_task(self.transport.send(out))
            return
        await self.transport.send(out)


@asynccontextmanager
async def running(
    api: FakeBotApi, core: Relay, **overrides: Any
) -> AsyncIterator[TelegramTransport]:
    values: dict[str, Any] = {
        "rate_limit": True,
        "group_per_minute": 1,  # the first relay goes, the next one waits a minute
        "concurrency": 1,  # one update at a time in the core: a wait must not hold it
        "stop_timeout": 0.5,
        **overrides,
    }
    transport = TelegramTransport(fake_config(api, **values), sleep=FastSleep())
    core.transport = transport
    await transport.start(core)
    try:
        yield transport
    finally:
        for task in core.sending.values():
            task.cancel()
        await asyncio.gather(*core.sending.values(), return_exceptions=True)
        await transport.stop()


async def _staff_group_at_its_limit(api: FakeBotApi, transport: TelegramTransport) -> None:
    first = api.push_message(ANNA, ANNA, "relay 1")
    await api.wait_for_sent(lambda c: c["params"].get("chat_id") == FORUM, timeout=5)
    await transport.wait_handled(first["update_id"])


async def test_a_staff_group_at_its_limit_delays_no_other_chat(api: FakeBotApi) -> None:
    core = Relay()
    async with running(api, core) as transport:
        await _staff_group_at_its_limit(api, transport)
        waiting = api.push_message(ANNA, ANNA, "relay 2")  # waits for the group's limit
        await core.entered_for("relay 2").wait()
        later = api.push_message(ANNA, ANNA, "relay 3")  # same chat: behind relay 2
        bert = api.push_message(BERT, BERT, "hallo")
        caro = api.push_message(CARO, CARO, "guten tag")

        # The other chats are answered while relay 2 still waits (concurrency 1: the
        # wait does not hold the only slot; the next getUpdates did not wait for it).
        await transport.wait_handled(bert["update_id"], timeout=5)
        await transport.wait_handled(caro["update_id"], timeout=5)
        assert texts(api.sent, BERT) == ["Antwort auf hallo"]
        assert texts(api.sent, CARO) == ["Antwort auf guten tag"]
        assert texts(api.sent, FORUM) == ["[K-ANNA] relay 1"], "relay 2 still waits"

        # Anna's chat stays in order: relay 3 is not taken on before relay 2 returned.
        assert "relay 3" not in core.seen
        pending = {u["update_id"] for u in api.pending_updates}
        assert waiting["update_id"] in pending, "sent before returning: not confirmed yet"
        assert later["update_id"] in pending


async def test_the_waiting_update_is_confirmed_once_committed(api: FakeBotApi) -> None:
    core = Relay(apart=True)  # the core returns once committed, sends apart
    async with running(api, core) as transport:
        await _staff_group_at_its_limit(api, transport)
        waiting = api.push_message(ANNA, ANNA, "relay 2")
        later = api.push_message(ANNA, ANNA, "relay 3")
        bert = api.push_message(BERT, BERT, "hallo")

        # Confirmed to Telegram (offset past it) while its relay waits for the limit.
        await api.wait_until_confirmed(waiting["update_id"], timeout=5)
        await api.wait_until_confirmed(bert["update_id"], timeout=5)
        await transport.wait_handled(later["update_id"], timeout=5)
        await api.wait_for_sent(lambda c: c["params"].get("chat_id") == BERT, timeout=5)
        assert texts(api.sent, BERT) == ["Antwort auf hallo"]
        assert texts(api.sent, FORUM) == ["[K-ANNA] relay 1"], "relays 2 and 3 still wait"
        assert core.seen.index("relay 2") < core.seen.index("relay 3"), "one chat in order"
        assert not core.sending["relay 2"].done()
        assert not core.sending["relay 3"].done()


async def test_one_chat_in_order_many_chats_at_once(api: FakeBotApi) -> None:
    """Updates of one chat reach the core in order, other chats meanwhile; the offset
    passes only updates that returned."""
    gate = asyncio.Event()

    class Held(Relay):
        async def __call__(self, msg: InboundMessage) -> None:
            self.seen.append(msg.text)
            self.entered_for(msg.text).set()
            if msg.text == "a0":
                await gate.wait()  # the first of Anna's messages is held in the core

    core = Held()
    async with running(api, core, rate_limit=False, concurrency=8) as transport:
        anna = [api.push_message(ANNA, ANNA, f"a{i}") for i in range(3)]
        await core.entered_for("a0").wait()
        # Pushed while a0 is held: they come with later getUpdates calls, which must
        # not wait for a0.
        others = [
            api.push_message(6_000_000_000 + i, 6_000_000_000 + i, f"o{i}") for i in range(20)
        ]
        for update in others:
            await transport.wait_handled(update["update_id"], timeout=5)
        assert "a1" not in core.seen
        assert "a2" not in core.seen
        pending = {u["update_id"] for u in api.pending_updates}
        assert anna[0]["update_id"] in pending, "the held update is not confirmed"
        gate.set()
        await transport.wait_handled(anna[2]["update_id"], timeout=5)
        assert [t for t in core.seen if t.startswith("a")] == ["a0", "a1", "a2"]
        await api.wait_until_confirmed(others[-1]["update_id"], timeout=5)


async def test_a_429_pauses_only_its_own_chat(api: FakeBotApi) -> None:
    """Telegram's 429 for one chat pauses that chat's ordinary sends, not everyone's."""
    gate, pausing = asyncio.Event(), asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        pausing.set()
        await gate.wait()

    anna, bert = (Address(Platform.TELEGRAM, str(chat)) for chat in (ANNA, BERT))
    for chat in (ANNA, BERT):
        api.register_chat(chat)
    transport = TelegramTransport(fake_config(api), sleep=held_sleep)
    await transport.start(Relay())
    try:
        api.fail_with_429(times=1, retry_after=30, method="sendMessage")
        paused = asyncio.create_task(transport.send(OutboundMessage(anna, "eins")))
        await pausing.wait()  # Anna's chat waits out its 429
        queued = asyncio.create_task(transport.send(OutboundMessage(anna, "zwei")))
        other = await asyncio.wait_for(transport.send(OutboundMessage(bert, "hallo")), 5)
        assert other is not None
        assert texts(api.sent, BERT) == ["hallo"]
        assert texts(api.sent, ANNA) == [], "Anna's chat is paused, both of its messages"
        gate.set()
        await asyncio.gather(paused, queued)
        assert sorted(texts(api.sent, ANNA)) == ["eins", "zwei"]
    finally:
        gate.set()
        await transport.stop()
