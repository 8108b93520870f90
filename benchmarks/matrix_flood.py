"""Privacy check 11 on Matrix: a flood of accounts, and one ordinary person's reply latency.

One throw-away Synapse (tests/fakes/synapse.py, rate limits raised so that Synapse
itself does not throttle), the bot as ``MatrixTransport`` + the core on SQLite with the
default abuse limits. ``--flooders`` accounts open encrypted DMs and each sends
``--burst`` messages as fast as it can, all at once; meanwhile one ordinary person in
the middle of the intake writes ``--rounds`` answers, one after the other, and waits
for each reply. Reported: the ordinary person's reply latency (send -> reply seen),
how many replies the flooders got, and whether the crisis numbers still came at once.

Usage: ``python -m benchmarks.matrix_flood [--flooders 30] [--burst 40] [--rounds 15]``
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


async def flood(synapse: SynapseServer, flooders: int, burst: int, rounds: int, data: Path) -> Any:
    bot_user = await synapse.register_async(f"flood-{secrets.token_hex(3)}", "flood-password")
    person = await new_peer(synapse, "ordinary")
    crowd = [await new_peer(synapse, f"flooder{i}") for i in range(flooders)]
    settings = bot_settings(data, synapse, bot_user)
    transport = MatrixTransport(settings)
    directory = load_directory(EXAMPLE_DIRECTORY)
    latencies: list[float] = []
    try:
        async with running(settings, [transport], directory):
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
        "crisis_reply_ms": round(crisis_s * 1000, 1),
    }


async def main_async(flooders: int, burst: int, rounds: int) -> Any:
    with tempfile.TemporaryDirectory() as tmp, SynapseServer() as synapse:
        return await flood(synapse, flooders, burst, rounds, Path(tmp) / "data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flooders", type=int, default=30)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(main_async(args.flooders, args.burst, args.rounds)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
