"""A homeserver outage: the bot starts without it, keeps the other platform going, and
sends what waited once the homeserver is back (nothing lost, nothing twice)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.transports.matrix import MatrixTransport
from bot.transports.memory import MemoryTransport
from config.directory import Directory
from tests.conftest import memory_directory
from tests.fakes.synapse import SynapseServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.matrix.journey import (
    bot_settings,
    create_room,
    intake_to_case,
    joined,
    new_peer,
    running,
)


@pytest.fixture
async def proxy(synapse: SynapseServer) -> AsyncIterator[TcpProxy]:
    """The bot's way to the homeserver; it starts switched off."""
    forwarder = TcpProxy("127.0.0.1", synapse.port)
    try:
        yield forwarder
    finally:
        await forwarder.down()


async def test_homeserver_down_at_start_and_later_loses_nothing(
    synapse: SynapseServer, proxy: TcpProxy, tmp_path: Path, directory: Directory
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-5")
    person = await new_peer(synapse, "outage")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    settings.matrix.homeserver = proxy.url
    matrix = MatrixTransport(settings, sync_timeout_ms=2000, max_backoff=0.5, request_retries=1)
    memory = MemoryTransport()
    try:
        async with running(
            settings, [matrix, memory], memory_directory(directory), retry_seconds=3600
        ) as app:
            # The start went on without the homeserver; the other platform works.
            assert matrix.offline.is_set()
            assert not matrix.ready.is_set()
            await memory.push("m1", "/start")
            assert any("einverstanden" in m.text for m in memory.pop("m1"))

            # The homeserver comes back: the bot logs in and syncs on its own.
            await proxy.up()
            async with asyncio.timeout(30):
                await matrix.ready.wait()
            assert not matrix.offline.is_set()
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo Team")
            await memory.push("counsellor", f"/claim {code}", chat="staff", group=True)

            # Down again while the counsellor writes: the reply waits in the outbox ...
            await proxy.down()
            # A staff room without topics: the case is named (check 16).
            await memory.push("counsellor", f"/r {code} Bist du noch da?", chat="staff", group=True)
            assert app.waiting == 1
            before = len(person.bodies(dm))
            # ... and goes out once the homeserver is back.
            await proxy.up()
            await app.retry_waiting()
            assert app.waiting == 0
            got = await person.expect(dm, "Bist du noch da?", before=before, seconds=30)
            assert sum("Bist du noch da?" in b for b in got) == 1
            await memory.push("counsellor", f"/r {code} Gut.", chat="staff", group=True)
            got = await person.expect(dm, "Gut.", before=before, seconds=30)
            assert sum("Bist du noch da?" in b for b in got) == 1, "sent twice"
    finally:
        await person.close()
