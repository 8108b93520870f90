"""Privacy check 11 on Matrix: a flood of accounts, and one ordinary person's reply latency.

One throw-away Synapse (tests/fakes/synapse.py, rate limits raised so that Synapse
itself does not throttle), the bot as ``MatrixTransport`` + the core on SQLite with the
default abuse limits. ``--flooders`` accounts open encrypted DMs and each sends
``--burst`` messages as fast as it can, all at once; meanwhile one ordinary person in
the middle of the intake writes ``--rounds`` answers, one after the other, and waits
for each reply. Reported: the ordinary person's reply latency (send -> reply seen),
how many replies the flooders got, and whether the crisis numbers still came at once.

Usage: ``python -m benchmarks.matrix_flood [--flooders 30] [--burst 40] [--rounds 15]
[--in-core 16]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.matrix_roundtrip import listening, summary
from bot.transports.matrix import MatrixTransport
from config.directory import load_directory
from config.settings import EXAMPLE_DIRECTORY
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import Peer, bot_settings, create_room, new_peer, running
from tests.matrix.nio_helpers import send_text, sync_until

NOT_UNDERSTOOD = "nicht verstanden"
CRISIS = "112"


async def _dm(peer: Peer, bot_id: str) -> str:
    room = await create_room(peer, [bot_id], direct=True)
    await sync_until(
        [peer.client],
        lambda: (
            bot_id in peer.client.rooms[room].users
            and bot_id not in peer.client.rooms[room].invited_users
            if room in peer.client.rooms
            else False
        ),
        seconds=60,
        what="the bot in the room",
    )
    return room


async def flood(
    synapse: SynapseServer, flooders: int, burst: int, rounds: int, data: Path, in_core: int = 16
) -> Any:
    bot_user = await synapse.register_async(f"flood-{secrets.token_hex(3)}", "flood-password")
    person = await new_peer(synapse, "ordinary")
    crowd = [await new_peer(synapse, f"flooder{i}") for i in range(flooders)]
    settings = bot_settings(data, synapse, bot_user)
    transport = MatrixTransport(settings, in_core=in_core)
    directory = load_directory(EXAMPLE_DIRECTORY)
    latencies: list[float] = []
    core_times: list[float] = []
    to_bot: list[float] = []  # homeserver timestamp -> the bot's sync handed it over
    queued: list[float] = []  # handed over -> its turn in the core
    try:
        async with running(settings, [transport], directory):
            handle = transport.receiver.handler
            if handle is None:
                raise RuntimeError("the transport was not started")

            dispatch = transport.receiver.dispatch
            arrived: dict[str, float] = {}

            async def stamped(response: Any, **options: Any) -> Any:
                """Note when the sync handed the person's events over (and their age)."""
                now, wall = time.perf_counter(), time.time()
                for info in response.rooms.join.values():
                    for event in info.timeline.events:
                        if getattr(event, "sender", None) == person.user_id:
                            arrived[event.event_id] = now
                            to_bot.append(wall - event.server_timestamp / 1000)
                return await dispatch(response, **options)

            async def timed(message: Any) -> None:
                """The ordinary person's wait for a turn and time inside the core."""
                start = time.perf_counter()
                await handle(message)
                if message.sender_id == person.user_id:
                    core_times.append(time.perf_counter() - start)
                    if message.update_id in arrived:
                        queued.append(start - arrived.pop(message.update_id))

            transport.receiver.dispatch = stamped  # type: ignore[method-assign]
            transport.receiver.handler = timed
            dm = await _dm(person, bot_user.user_id)
            rooms = await asyncio.gather(*(_dm(p, bot_user.user_id) for p in crowd))
            await person.say(dm, "/start", "einverstanden")

            async def burst_of(peer: Peer, room: str) -> None:
                for n in range(burst):
                    await send_text(peer.client, room, f"spam {n}")

            async with listening(person.client) as inbox:
                started = time.perf_counter()
                flooding = asyncio.gather(
                    *(burst_of(p, r) for p, r in zip(crowd, rooms, strict=True))
                )
                for i in range(rounds):
                    replied = inbox.want(NOT_UNDERSTOOD)
                    sent = time.perf_counter()
                    await send_text(person.client, dm, f"hm {i}")
                    latencies.append(await asyncio.wait_for(replied, 60) - sent)
                crisis = inbox.want(CRISIS)
                sent = time.perf_counter()
                await send_text(person.client, dm, "ich will mich umbringen")
                crisis_s = await asyncio.wait_for(crisis, 60) - sent
                await flooding
                flood_s = time.perf_counter() - started
            handled = transport.stats["handled"]
    finally:
        await person.close()
        for peer in crowd:
            await peer.close()
    return {
        "flooders": flooders,
        "burst": burst,
        "flood_messages": flooders * burst,
        "flood_sent_in_s": round(flood_s, 1),
        "bot_handled_events": handled,
        "ordinary": summary(latencies),
        "ordinary_to_bot": summary(to_bot),
        "ordinary_queued": summary(queued),
        "ordinary_in_core": summary(core_times),
        "crisis_reply_ms": round(crisis_s * 1000, 1),
    }


async def main_async(flooders: int, burst: int, rounds: int, in_core: int = 16) -> Any:
    with tempfile.TemporaryDirectory() as tmp, SynapseServer() as synapse:
        return await flood(synapse, flooders, burst, rounds, Path(tmp) / "data", in_core)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flooders", type=int, default=30)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--in-core", type=int, default=16, help="events in the core at once")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.flooders, args.burst, args.rounds, args.in_core))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
