"""The receiver without a homeserver: one room's backlog never holds up another room,
each room's events stay in order, and a sync token is saved only once everything up
to it returned from the core (issue 14: no head-of-line blocking; kill -9 safe)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nio import MatrixRoom, RoomMessageText

from bot.transports.matrix import MatrixTransport
from bot.transports.matrix.gate import LightestFirst
from config.messages import InboundMessage
from config.settings import MatrixSettings
from tests.conftest import make_settings

BOT = "@bot:localhost"


class _Store:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def save_sync_token(self, token: str) -> None:
        self.tokens.append(token)


class _StubClient:
    """Just enough of nio's client for the receiver: rooms, no key work, a token store."""

    should_upload_keys = False
    should_query_keys = False
    should_claim_keys = False
    olm = None

    def __init__(self, rooms: list[MatrixRoom]) -> None:
        self.rooms = {r.room_id: r for r in rooms}
        self.store = _Store()

    async def send_to_device_messages(self) -> list[Any]:
        return []


def _dm(room_id: str, person: str) -> MatrixRoom:
    room = MatrixRoom(room_id, BOT)
    for member in (BOT, person):
        room.add_member(member, None, None)
    return room


def _text(event_id: str, sender: str, body: str) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {
            "event_id": event_id,
            "sender": sender,
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": body},
        }
    )


def _sync(token: str, rooms: dict[str, list[RoomMessageText]]) -> Any:
    join = {
        room_id: SimpleNamespace(
            state=[], timeline=SimpleNamespace(events=events, limited=False, prev_batch=None)
        )
        for room_id, events in rooms.items()
    }
    return SimpleNamespace(next_batch=token, rooms=SimpleNamespace(invite={}, join=join))


async def test_a_rooms_backlog_does_not_hold_up_another_rooms_message(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.matrix = MatrixSettings(enabled=True, homeserver="http://127.0.0.1:9", user_id=BOT)
    transport = MatrixTransport(settings)
    flood, calm = (
        _dm("!flood:localhost", "@flood:localhost"),
        _dm("!calm:localhost", "@p:localhost"),
    )
    client = _StubClient([flood, calm])
    transport.client = client  # type: ignore[assignment]
    for room in (flood, calm):
        transport.rooms.marked[room.room_id] = False  # people's chats, known without asking
    release = asyncio.Event()
    seen: list[tuple[str, str]] = []
    calm_seen = asyncio.Event()

    async def on_message(message: InboundMessage) -> None:
        seen.append((message.address.chat_id, message.text))
        if message.address.chat_id == calm.room_id:
            calm_seen.set()
        elif message.text == "spam 0":
            await release.wait()  # the flood's first message is slow in the core

    transport.receiver.handler = on_message
    receiver = transport.receiver
    spam = [_text(f"$s{i}", "@flood:localhost", f"spam {i}") for i in range(30)]
    first = await receiver.dispatch(_sync("t1", {flood.room_id: spam[:20]}), since="t0")
    # The next sync brings more of the flood and the ordinary person's message.
    second = await receiver.dispatch(
        _sync(
            "t2", {flood.room_id: spam[20:], calm.room_id: [_text("$c", "@p:localhost", "hallo")]}
        ),
        since="t1",
    )
    async with asyncio.timeout(5):
        await calm_seen.wait()  # reached the core while the flood's backlog waits
    assert seen == [(flood.room_id, "spam 0"), (calm.room_id, "hallo")]
    assert client.store.tokens == []  # neither batch is done: nothing may be confirmed
    assert not first.done.is_set()
    assert not second.done.is_set()

    release.set()
    async with asyncio.timeout(5):
        await second.done.wait()
    flood_texts = [text for room_id, text in seen if room_id == flood.room_id]
    assert flood_texts == [f"spam {i}" for i in range(30)]  # the room's order kept
    assert client.store.tokens == ["t1", "t2"]  # each once everything up to it was done
    assert transport.state.since == "t2"


async def test_a_token_waits_for_earlier_batches_of_other_rooms(tmp_path: Path) -> None:
    """A later batch that finishes first is not confirmed before an earlier one."""
    settings = make_settings(tmp_path)
    settings.matrix = MatrixSettings(enabled=True, homeserver="http://127.0.0.1:9", user_id=BOT)
    transport = MatrixTransport(settings)
    slow, quick = _dm("!slow:localhost", "@s:localhost"), _dm("!quick:localhost", "@q:localhost")
    client = _StubClient([slow, quick])
    transport.client = client  # type: ignore[assignment]
    for room in (slow, quick):
        transport.rooms.marked[room.room_id] = False
    release = asyncio.Event()
    handled = asyncio.Event()

    async def on_message(message: InboundMessage) -> None:
        if message.address.chat_id == slow.room_id:
            await release.wait()
        else:
            handled.set()

    transport.receiver.handler = on_message
    receiver = transport.receiver
    first = await receiver.dispatch(
        _sync("t1", {slow.room_id: [_text("$a", "@s:localhost", "a")]}), since="t0"
    )
    second = await receiver.dispatch(
        _sync("t2", {quick.room_id: [_text("$b", "@q:localhost", "b")]}), since="t1"
    )
    async with asyncio.timeout(5):
        await handled.wait()
    assert second.left == 0  # its own work is done ...
    assert not second.done.is_set()
    assert client.store.tokens == []  # ... but an earlier batch is not: no token yet
    release.set()
    async with asyncio.timeout(5):
        await second.done.wait()
    assert first.done.is_set()
    assert client.store.tokens == ["t2"]


async def test_the_gate_serves_the_lightest_waiter_first() -> None:
    """A room with one message waiting goes before a room with a long backlog."""
    gate = LightestFirst(1)
    order: list[str] = []
    holder = asyncio.Event()

    async def take(name: str, weight: int, entered: asyncio.Event | None = None) -> None:
        async with gate.turn(weight):
            order.append(name)
            if entered is not None:
                entered.set()
                await holder.wait()

    entered = asyncio.Event()
    first = asyncio.create_task(take("first", 0, entered))
    await entered.wait()
    flood = [asyncio.create_task(take(f"flood{i}", 30 - i)) for i in range(3)]
    person = asyncio.create_task(take("person", 1))
    await asyncio.sleep(0)  # one step each: the new tasks run before this one resumes
    assert len(gate._waiters) == 4  # all four wait for the one slot
    holder.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, person, *flood)
    assert order == ["first", "person", "flood2", "flood1", "flood0"]
