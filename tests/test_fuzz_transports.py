"""Fuzzing the transports' input side (privacy check 10): 100,000 raw Telegram updates and
100,000 Matrix events; nothing but the documented outcomes, memory bounded."""

from __future__ import annotations

import copy
import io
import logging
import random
import resource
from pathlib import Path
from typing import Any

from nio import Event, MatrixRoom

from bot.logsetup import setup_logging
from bot.transports.matrix import MatrixTransport
from bot.transports.telegram.updates import Malformed, parse_update
from config.messages import InboundMessage
from tests.conftest import make_settings

JUNK: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x" * 5000,
    "\ud800",
    "/start",
    [],
    {},
    [1, "a"],
    {"a": {"b": None}},
    "\u202e\u0000",
    "👩‍👩‍👧",
]

TG_MESSAGE = {
    "update_id": 1,
    "message": {
        "message_id": 5,
        "date": 1763700000,
        "chat": {"id": 42, "type": "private", "first_name": "Name"},
        "from": {"id": 42, "is_bot": False, "first_name": "Name", "language_code": "de"},
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    },
}
TG_CALLBACK = {
    "update_id": 2,
    "callback_query": {
        "id": "9",
        "data": "consent:yes",
        "chat_instance": "1",
        "from": {"id": 42, "is_bot": False, "first_name": "Name"},
        "message": {"message_id": 6, "date": 1763700000, "chat": {"id": 42, "type": "private"}},
    },
}
MX_EVENT = {
    "type": "m.room.message",
    "event_id": "$e",
    "sender": "@p:localhost",
    "origin_server_ts": 1763700000000,
    "content": {
        "msgtype": "m.text",
        "body": "2",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}},
    },
}
MX_REACTION = {
    "type": "m.reaction",
    "event_id": "$r",
    "sender": "@p:localhost",
    "origin_server_ts": 1763700000000,
    "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$q", "key": "1️⃣"}},
}


def mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """Randomly damage a nested structure: drop, replace or retype fields."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            roll = rng.random()
            if roll < 0.08:
                continue
            out[k] = rng.choice(JUNK) if roll < 0.18 else mutate(rng, v, depth + 1)
        if rng.random() < 0.1:
            out[rng.choice(["text", "data", "chat", "from", "body", "msgtype", "x"])] = rng.choice(
                JUNK
            )
        return out
    if isinstance(value, list):
        return [mutate(rng, v, depth + 1) for v in value if rng.random() > 0.1]
    return rng.choice(JUNK) if rng.random() < 0.1 else value


def grown_kib(before: int) -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def test_100k_raw_telegram_updates() -> None:
    rng = random.Random(1121)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    parsed = malformed = 0
    for i in range(100_000):
        raw = mutate(rng, copy.deepcopy(TG_MESSAGE if i % 2 else TG_CALLBACK))
        try:
            incoming = parse_update(raw)
        except Malformed:
            malformed += 1
            continue
        parsed += 1
        m = incoming.message
        assert m is None or isinstance(m, InboundMessage)
        if m is not None:  # names never cross into the core
            assert "Name" not in repr(m)
            assert m.sender_id.lstrip("-").isdigit()
    assert parsed > 10_000
    assert malformed > 10_000
    assert grown_kib(before) < 50 * 1024


async def test_100k_matrix_events(tmp_path: Path) -> None:
    log = io.StringIO()
    handler = setup_logging("WARNING", stream=log)  # as in production
    settings = make_settings(tmp_path / "data")
    settings.matrix.homeserver = "http://127.0.0.1:9"
    settings.matrix.user_id = "@bot:localhost"
    transport = MatrixTransport(settings, staff_rooms=[])
    room = MatrixRoom("!dm:localhost", "@bot:localhost")
    room.add_member("@p:localhost", "Person Name", None)
    transport.rooms.marked[room.room_id] = False  # a DM, known without asking the server
    rng = random.Random(4711)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    handled = rejected = 0
    for i in range(100_000):
        raw = mutate(rng, copy.deepcopy(MX_EVENT if i % 3 else MX_REACTION))
        try:
            event = Event.parse_event(raw)
        except Exception:  # nio's own parser refuses it; the sync loop counts and skips
            rejected += 1
            continue
        if event is None:
            continue
        msg = await transport.inbound.parse(room, event)
        if msg is not None:
            handled += 1
            assert "Person Name" not in repr(msg)
    logging.getLogger().removeHandler(handler)
    assert handled > 10_000
    assert rejected > 1_000
    assert grown_kib(before) < 50 * 1024
    assert "@p:localhost" not in log.getvalue()  # invalid events are not logged with content
