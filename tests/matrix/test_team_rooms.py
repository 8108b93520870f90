"""Staff rooms the bot creates for programmes without a configured one (real Synapse)."""

from __future__ import annotations

import secrets
from pathlib import Path

from bot.transports.matrix import MatrixTransport
from bot.transports.memory import MemoryTransport
from config.directory import Directory
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import Peer, accept_invite, bot_settings, new_peer, running
from tests.matrix.nio_helpers import sync_until
from tests.world import World, directory_without


def with_matrix(directory: Directory, accounts: dict[str, str]) -> Directory:
    """Give staff members (by id) a Matrix account; no Matrix staff room is configured."""
    data = directory.model_dump(mode="python")
    for p in data["programmes"]:
        for m in p["staff"]:
            if m["id"] in accounts:
                m["accounts"] = {**m["accounts"], "matrix": accounts[m["id"]]}
    return Directory.model_validate(data)


def in_room(peer: Peer, room_id: str, user_id: str) -> bool:
    room = peer.client.rooms.get(room_id)
    return room is not None and user_id in room.users


async def test_staff_room_is_created_followed_and_reused(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-6")
    alex = await new_peer(synapse, "alex")
    sam = await new_peer(synapse, "sam")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    team = with_matrix(directory_without(), {"a1": alex.user_id, "a2": sam.user_id})
    try:
        matrix = MatrixTransport(settings, sync_timeout_ms=2000)
        memory = MemoryTransport()
        async with running(settings, [matrix, memory], team) as app:
            assert set(matrix.created_staff_rooms) == {"alpha"}  # beta has no Matrix staff
            room = matrix.created_staff_rooms["alpha"]
            assert await accept_invite(alex) == room
            await sync_until([alex.client], lambda: in_room(alex, room, sam.user_id))
            assert alex.client.rooms[room].encrypted

            # A new case of the programme is announced there; the counsellor claims it.
            code = await World(app, memory, app.clock).open("p1", message="Hallo Alpha")  # type: ignore[arg-type]
            await alex.expect(room, code)
            assert all("p1" not in b for b in alex.bodies(room))
            await alex.say(room, f"/claim {code}", "Alex")
            case_room = await accept_invite(alex)
            assert case_room != room
            await alex.expect(case_room, "Hallo Alpha")

            # Sam leaves the team: the bot takes the pending invite back.
            app.reload_directory(with_matrix(directory_without("a2"), {"a1": alex.user_id}))
            await sync_until(
                [alex.client], lambda: not in_room(alex, room, sam.user_id), what="the removal"
            )
            assert in_room(alex, room, alex.user_id)

        # After a restart the same room is used again (kept in the encrypted session).
        again = MatrixTransport(settings, sync_timeout_ms=2000)
        async with running(settings, [again, MemoryTransport()], team):
            assert again.created_staff_rooms == {"alpha": room}
            await sync_until(
                [alex.client], lambda: in_room(alex, room, sam.user_id), what="the re-invite"
            )
    finally:
        await alex.close()
        await sam.close()
