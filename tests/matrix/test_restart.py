"""Privacy check 13 on Matrix: kill -9 under load, restart: nothing lost, nothing twice.

The bot runs as a real process (``python -m bot run``, settings from ``AUSWEG_*``
variables) against the test Synapse and is killed with SIGKILL while people write to it
in encrypted direct chats. Afterwards each person's room history (read from the
homeserver, decrypted) must hold every reply exactly once and in order: the sync token
is saved only after a batch was handled (unhandled events come again), replies wait in
the outbox until sent, and a re-sent reply reuses its transaction id (the homeserver
answers with the event it already has).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest
from nio import AsyncClient, MegolmEvent, RoomMessage, RoomMessagesResponse
from nio.api import MessageDirection

from config.directory import load_directory
from config.settings import EXAMPLE_DIRECTORY
from tests.conftest import process_env, production_directory
from tests.fakes.synapse import RegisteredUser, SynapseServer
from tests.matrix.journey import Peer, create_room, matrix_directory, new_peer
from tests.matrix.nio_helpers import send_text, sync_until

ROOT = Path(__file__).resolve().parents[2]
NOT_UNDERSTOOD = "nicht verstanden"
CONSENT = "Bist du damit einverstanden?"
PEOPLE = 3
BURST = 6


def bot_env(
    synapse: SynapseServer, bot: RegisteredUser, tmp_path: Path, staff: Peer, staff_room: str
) -> dict[str, str]:
    """``AUSWEG_*`` settings for a bot process on the test Synapse (Matrix only).

    The directory is a verified copy with the demo counsellor on Matrix: `run` refuses the
    example (its staff sit in the console demo room, unreachable on Matrix).
    """
    directory = matrix_directory(load_directory(EXAMPLE_DIRECTORY), staff.user_id, staff_room)
    return process_env(
        tmp_path,
        AUSWEG_DIRECTORY_PATH=str(production_directory(directory, tmp_path / "directory.yaml")),
        AUSWEG_MATRIX__ENABLED="true",
        AUSWEG_MATRIX__HOMESERVER=synapse.base_url,
        AUSWEG_MATRIX__USER_ID=bot.user_id,
        AUSWEG_MATRIX__PASSWORD=bot.password,
        AUSWEG_MATRIX__STORE_PICKLE_KEY=secrets.token_urlsafe(24),
        AUSWEG_MATRIX__REACTION_SHORTCUTS="false",  # replies only: what is counted
    )


class BotProcess:
    """The bot in a child process; readiness is its ready file."""

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self.env = env
        self.log = log
        self.ready_file = Path(env["AUSWEG_DATA_DIR"]) / "ready"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, peers: list[Peer]) -> None:
        stale = self.ready_file.stat().st_mtime_ns if self.ready_file.exists() else None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run",
            cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log,
        )  # fmt: skip

        # Another process's file: there is no event to await; the peers sync meanwhile.
        def ready() -> bool:
            with contextlib.suppress(FileNotFoundError):
                return self.ready_file.stat().st_mtime_ns != stale
            return False

        await sync_until([p.client for p in peers], ready, seconds=60, what="the bot")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # SIGKILL: no clean-up
            await self.proc.wait()


async def history(client: AsyncClient, room_id: str, sender: str) -> list[str]:
    """Bodies of ``sender``'s messages in the room as the homeserver has them, oldest first."""
    bodies: list[str] = []
    start = client.next_batch
    while True:
        page = await client.room_messages(
            room_id, start=start, direction=MessageDirection.back, limit=100
        )
        assert isinstance(page, RoomMessagesResponse), page
        for event in page.chunk:
            if event.sender != sender or not isinstance(event, RoomMessage | MegolmEvent):
                continue
            assert isinstance(event, RoomMessage), "a message of the bot was not readable"
            bodies.append(str(event.source["content"].get("body", "")))
        if not page.chunk or not page.end or page.end == start:
            break
        start = page.end
    bodies.reverse()
    return bodies


def understood(peer: Peer, room_id: str) -> int:
    return sum(NOT_UNDERSTOOD in b for b in peer.bodies(room_id))


def asked(peer: Peer, room_id: str) -> int:
    """How often the consent question came again (after each answer not understood)."""
    return sum(b.startswith(CONSENT) for b in peer.bodies(room_id))


@pytest.fixture
async def people(synapse: SynapseServer) -> AsyncIterator[list[Peer]]:
    peers = [await new_peer(synapse, f"person{i}") for i in range(PEOPLE)]
    try:
        yield peers
    finally:
        for peer in peers:
            await peer.close()


async def test_kill_9_under_load_then_restart_loses_nothing_and_repeats_nothing(
    synapse: SynapseServer, people: list[Peer], tmp_path: Path
) -> None:
    bot = await synapse.register_async(f"bot-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
    clients = [p.client for p in people]
    staff = await new_peer(synapse, "staff")
    staff_room = await create_room(staff, [bot.user_id], direct=False, name="Team")
    with (tmp_path / "bot.log").open("ab") as log:
        process = BotProcess(bot_env(synapse, bot, tmp_path, staff, staff_room), log)
        try:
            await process.start(people)
            rooms = list(
                await asyncio.gather(*(create_room(p, [bot.user_id], direct=True) for p in people))
            )
            await sync_until(
                clients,
                lambda: all(
                    bot.user_id in (p.client.rooms[r].users if r in p.client.rooms else ())
                    and bot.user_id not in p.client.rooms[r].invited_users
                    for p, r in zip(people, rooms, strict=True)
                ),
                what="the bot in every room",
            )
            for peer, room in zip(people, rooms, strict=True):
                await send_text(peer.client, room, "/start")
            await sync_until(
                clients,
                lambda: all(
                    any("einverstanden" in b for b in p.bodies(r))
                    for p, r in zip(people, rooms, strict=True)
                ),
                seconds=30,
                what="the consent questions",
            )

            # Load: everyone sends a burst of answers the bot does not understand.
            async def burst(peer: Peer, room: str) -> None:
                for n in range(BURST):
                    await send_text(peer.client, room, f"hm {n}")

            await asyncio.gather(*(burst(p, r) for p, r in zip(people, rooms, strict=True)))
            # Kill while the replies are still being worked through.
            await sync_until(
                clients,
                lambda: sum(understood(p, r) for p, r in zip(people, rooms, strict=True)) >= 3,
                seconds=30,
                what="the first replies",
            )
            await process.kill()
            answered_before = sum(understood(p, r) for p, r in zip(people, rooms, strict=True))
            assert answered_before < PEOPLE * BURST, "the kill came too late to test anything"

            assert process.ready_file.exists()  # SIGKILL left it behind ...
            await process.start(people)  # ... the new process removes it before its start
            await sync_until(
                clients,
                lambda: all(understood(p, r) >= BURST for p, r in zip(people, rooms, strict=True)),
                seconds=60,
                what="every answer after the restart",
            )
            # A last message as a barrier: anything sent twice would come before its reply.
            for peer, room in zip(people, rooms, strict=True):
                await send_text(peer.client, room, "und jetzt?")
            await sync_until(
                clients,
                lambda: all(asked(p, r) >= BURST + 1 for p, r in zip(people, rooms, strict=True)),
                seconds=30,
                what="the barrier's replies",
            )
        finally:
            await process.kill()
            await staff.close()

    for peer, room in zip(people, rooms, strict=True):
        bodies = await history(peer.client, room, bot.user_id)
        first = next(i for i, b in enumerate(bodies) if NOT_UNDERSTOOD in b)
        second = next(i for i, b in enumerate(bodies) if NOT_UNDERSTOOD in b and i > first)
        start, block = bodies[:first], bodies[first:second]
        assert CONSENT in start[-1]  # /start: greeting, then the privacy notice with the question
        short = [b[:14] for b in bodies]
        assert bodies == start + block * (BURST + 1), f"lost, repeated or out of order: {short}"
    text = (tmp_path / "bot.log").read_text(encoding="utf-8")
    assert not [p for p in people if p.user_id in text], "a person's Matrix ID in the log"
    assert bot.password not in text
