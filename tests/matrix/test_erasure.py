"""Privacy check 18 on a real Synapse: /delete leaves and forgets the person's chat, and
the bot's crypto store forgets the person (issue 10, observation 5)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from urllib.parse import quote

import sqlcipher3

from bot.transports.matrix import MatrixTransport
from bot.transports.matrix.crypto_store import DEFAULT_STORE_NAME
from bot.transports.matrix.session import store_key
from bot.transports.memory import MemoryTransport
from config.directory import Directory
from config.settings import Settings, decode_key
from tests.conftest import memory_directory
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    bot_settings,
    create_room,
    intake_to_case,
    joined,
    new_peer,
    option,
    running,
)
from tests.matrix.nio_helpers import sync_until


def store_rows(settings: Settings) -> dict[str, list[str]]:
    """Every row of every table of the bot's crypto store, opened with its key, as text."""
    master = decode_key(settings.crypto.master_keys[1].get_secret_value())
    db = settings.data_dir / "matrix" / DEFAULT_STORE_NAME
    conn = sqlcipher3.connect(str(db))
    try:
        conn.execute(f"PRAGMA key = \"x'{store_key(master).hex()}'\"")
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: [repr(row) for row in conn.execute(f"SELECT * FROM {t}")]  # noqa: S608
            for t in tables
        }
    finally:
        conn.close()


def holding(rows: dict[str, list[str]], value: str) -> list[str]:
    """The tables with a row that contains ``value``."""
    return sorted(t for t, lines in rows.items() if any(value in line for line in lines))


async def test_delete_leaves_and_forgets_the_dm_and_the_person_leaves_the_crypto_store(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-18")
    person = await new_peer(synapse, "leaver")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    transport = MatrixTransport(settings, sync_timeout_ms=5000)
    memory = MemoryTransport()  # staff elsewhere: the person is the only other Matrix user
    try:
        async with running(settings, [transport, memory], memory_directory(directory)):
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            await intake_to_case(person, dm, message="Hallo")
            assert person.client.olm is not None
            curve = person.client.olm.account.identity_keys["curve25519"]
            # control: the store knows the person now
            rows = store_rows(settings)
            assert holding(rows, person.user_id) == ["devicekeys"]
            assert "keys" in holding(rows, curve)
            assert holding(rows, dm)

            got = await person.say(dm, "/delete", "wirklich")
            done = await person.say(dm, option(got, "Ja, alles löschen"), "Quittung")
            assert any("neuen Chat" in b for b in done)  # told how to come back

            def bot_left() -> bool:
                room = person.client.rooms.get(dm)
                return room is not None and bot_user.user_id not in room.users

            await sync_until([person.client], bot_left, what="the bot to leave the chat")
            status, joined_rooms = await asyncio.to_thread(
                synapse.request,
                "GET",
                "/_matrix/client/v3/joined_rooms",
                token=bot_user.access_token,
            )
            assert status == 200
            assert dm not in joined_rooms["joined_rooms"]
            # forgotten: not even a sync that asks for left rooms shows it
            leave_filter = quote(json.dumps({"room": {"include_leave": True}}))
            status, sync = await asyncio.to_thread(
                synapse.request,
                "GET",
                f"/_matrix/client/v3/sync?timeout=0&filter={leave_filter}",
                token=bot_user.access_token,
            )
            assert status == 200
            rooms = sync.get("rooms", {})
            assert dm not in rooms.get("leave", {})
            assert dm not in rooms.get("join", {})
            assert transport.client is not None
            assert dm not in transport.client.rooms
        rows = store_rows(settings)  # after stop: everything nio wrote is on disk
        for value in (person.user_id, curve, dm):
            assert holding(rows, value) == [], value
        assert rows["accounts"], "the bot's own account is still there"
    finally:
        await person.close()
