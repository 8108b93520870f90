"""Matrix relay latency on a local Synapse, next to a bare matrix-nio echo round trip.

Both run against one throw-away Synapse (tests/fakes/synapse.py), every room end-to-end
encrypted, every client long-polling ``/sync`` (30 s) like a real client:

* ``echo``: a bare matrix-nio bot (in-memory crypto store, one callback) answers each
  message of a person in their DM. One round trip = person -> bot -> person.
* ``relay``: the whole pipeline - :class:`MatrixTransport` (SQLCipher store, its own
  sync loop) + the core on SQLite. A person with a claimed case writes; the
  counsellor sees it in the case room and answers; the person sees the answer under
  the alias. One round trip = person -> bot -> counsellor -> bot -> person, i.e. two
  passes through the bot (the echo makes one).

Usage: ``python -m benchmarks.matrix_roundtrip [--rounds 30] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import AsyncClient, InviteMemberEvent, MatrixRoom, RoomMessageNotice, RoomMessageText

from bot.transports.matrix import MatrixTransport
from config.directory import load_directory
from config.settings import EXAMPLE_DIRECTORY
from handlers.limits import Limits, LimitSettings
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    Peer,
    accept_invite,
    bot_settings,
    create_room,
    intake_to_case,
    joined,
    matrix_directory,
    new_peer,
    running,
)
from tests.matrix.nio_helpers import logged_in_client, send_text

#: The warm-up round (first keys of the case room) may be slow on a loaded machine.
_WARM_UP_S = 120.0


@dataclass
class Waiter:
    """Resolves futures when a message containing a needle arrives (any room)."""

    wanted: list[tuple[str, asyncio.Future[float]]] = field(default_factory=list)

    def want(self, needle: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.wanted.append((needle, future))
        return future

    async def on_message(self, _room: MatrixRoom, event: Any) -> None:
        body = getattr(event, "body", "")
        for needle, future in list(self.wanted):
            if needle in body and not future.done():
                future.set_result(time.perf_counter())
                self.wanted.remove((needle, future))


@asynccontextmanager
async def listening(client: AsyncClient) -> AsyncIterator[Waiter]:
    """Run ``client.sync_forever`` (30 s long polls) and report arriving messages."""
    waiter = Waiter()
    client.add_event_callback(waiter.on_message, (RoomMessageText, RoomMessageNotice))
    await client.sync(timeout=0, full_state=True)
    task = asyncio.create_task(client.sync_forever(timeout=30_000))
    try:
        yield waiter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95, mean and max in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(ms[-1], 1),
    }


async def echo_round_trips(synapse: SynapseServer, rounds: int) -> list[float]:
    """Person -> bare nio echo bot -> person, in an encrypted DM."""
    bot_user = await synapse.register_async(f"echo-{secrets.token_hex(3)}", "echo-password")
    bot = logged_in_client(synapse.base_url, bot_user)
    person = await new_peer(synapse, "echo-person")

    async def echo(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender != bot.user_id:
            await bot.room_send(
                room.room_id,
                "m.room.message",
                {"msgtype": "m.notice", "body": f"echo {event.body}"},
                ignore_unverified_devices=True,
            )

    async def join_invites(room: MatrixRoom, _event: Any) -> None:
        await bot.join(room.room_id)

    bot.add_event_callback(echo, RoomMessageText)
    bot.add_event_callback(join_invites, InviteMemberEvent)
    samples: list[float] = []
    try:
        async with listening(bot):
            dm = await create_room(person, [bot.user_id], direct=True)
            await joined(person, dm, bot.user_id)
            async with listening(person.client) as inbox:
                for i in range(rounds + 3):
                    arrived = inbox.want(f"echo e{i}.")
                    start = time.perf_counter()
                    await send_text(person.client, dm, f"e{i}.")
                    end = await asyncio.wait_for(arrived, 30)
                    if i >= 3:  # warm-up: first Olm/Megolm sessions
                        samples.append(end - start)
    finally:
        await bot.close()
        await person.close()
    return samples


async def relay_round_trips(
    synapse: SynapseServer, rounds: int, data: Path
) -> tuple[list[float], list[float], list[float]]:
    """Person -> bot -> counsellor (case room) -> bot -> person, through the core.

    Returns the round trips and each of their two passes through the bot (person ->
    counsellor, counsellor -> person); one pass compares with one echo round trip.
    """
    bot_user = await synapse.register_async(f"relay-{secrets.token_hex(3)}", "relay-password")
    person = await new_peer(synapse, "relay-person")
    counsellor = await new_peer(synapse, "relay-counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False)
    settings = bot_settings(data, synapse, bot_user)
    transport = MatrixTransport(settings, staff_rooms=[staff_room])
    directory = matrix_directory(load_directory(EXAMPLE_DIRECTORY), counsellor.user_id, staff_room)
    samples: list[float] = []
    inward: list[float] = []
    outward: list[float] = []
    try:
        # Latency, not abuse handling: the fake clock never refills the person's budget.
        unlimited = LimitSettings(
            person_burst=1e12, new_contacts_burst=1e12, cases_per_programme_per_hour=10**9
        )
        async with running(settings, [transport], directory, limits=Limits(unlimited)):
            await joined(counsellor, staff_room, bot_user.user_id)
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo")
            await counsellor.say(staff_room, f"/claim {code}", "übernommen")
            case_room = await accept_invite(counsellor)
            await _round(person, counsellor, dm, case_room, code, -1)  # warm the sessions
            async with listening(person.client) as p_inbox, listening(counsellor.client) as c_inbox:
                for i in range(rounds + 3):
                    seen = c_inbox.want(f"[{code}]\n> p{i}.")
                    answered = p_inbox.want(f"c{i}.")
                    start = time.perf_counter()
                    await send_text(person.client, dm, f"p{i}.")
                    arrived = await asyncio.wait_for(seen, 30)
                    middle = time.perf_counter()
                    await send_text(counsellor.client, case_room, f"c{i}.")
                    end = await asyncio.wait_for(answered, 30)
                    if i >= 3:
                        samples.append(end - start)
                        inward.append(arrived - start)
                        outward.append(end - middle)
    finally:
        await person.close()
        await counsellor.close()
    return samples, inward, outward


async def _round(
    person: Peer, counsellor: Peer, dm: str, case_room: str, code: str, i: int
) -> None:
    before = len(counsellor.bodies(case_room))
    await send_text(person.client, dm, f"p{i}.")
    await counsellor.expect(case_room, f"[{code}]\n> p{i}.", before=before, seconds=_WARM_UP_S)
    before = len(person.bodies(dm))
    await send_text(counsellor.client, case_room, f"c{i}.")
    await person.expect(dm, f"c{i}.", before=before, seconds=_WARM_UP_S)


async def main_async(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, SynapseServer() as synapse:
        echo = await echo_round_trips(synapse, rounds)
        relay, inward, outward = await relay_round_trips(synapse, rounds, Path(tmp) / "data")
    return {
        "synapse_startup_s": round(synapse.startup_seconds or 0.0, 2),
        "echo": summary(echo),
        "relay": summary(relay),
        "relay_pass1": summary(inward),
        "relay_pass2": summary(outward),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.rounds))
    if args.json:
        print(json.dumps(result))
        return 0
    for name in ("echo", "relay", "relay_pass1", "relay_pass2"):
        r = result[name]
        print(
            f"{name:11} n={r['n']:3}  median {r['median_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
            f"  mean {r['mean_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
