"""Issue 10, observation 2 on a real Synapse: after an accepted transfer the old case room
holds nobody (old staff removed, the bot gone) and the new programme gets its own room.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from urllib.parse import quote

from bot.transports.matrix import MatrixTransport
from config.directory import parse_directory
from tests.fakes.synapse import RegisteredUser, SynapseServer
from tests.matrix.journey import (
    accept_invite,
    bot_settings,
    create_room,
    intake_to_case,
    joined,
    new_peer,
    option,
    running,
)
from tests.matrix.nio_helpers import send_text, sync_until


def two_programmes(alpha: str, alpha_room: str, beta: str, beta_room: str) -> str:
    return f"""
fallback: [beta]
programmes:
  - id: alpha
    name: Alpha MV
    kind: exit
    scenes: [right]
    audiences: [self, relative]
    states: [MV]
    description: {{de: Alpha hilft beim Ausstieg., en: Alpha helps people leave.}}
    staff:
      - {{id: a1, alias: Alex, accounts: {{matrix: "{alpha}"}}}}
    staff_rooms: {{matrix: "{alpha_room}"}}
  - id: beta
    name: Beta NRW
    kind: exit
    scenes: [left, right]
    audiences: [self, relative]
    states: [NW]
    description: {{de: Beta hilft in NRW., en: Beta helps in NRW.}}
    staff:
      - {{id: b1, alias: Robin, accounts: {{matrix: "{beta}"}}}}
    staff_rooms: {{matrix: "{beta_room}"}}
"""


async def members(synapse: SynapseServer, room_id: str, user: RegisteredUser) -> int:
    """HTTP status of ``user`` asking the server for the room's joined members."""
    status, _ = await asyncio.to_thread(
        synapse.request,
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/joined_members",
        token=user.access_token,
    )
    return status


async def test_transfer_empties_the_old_case_room_and_opens_a_new_one(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    bot = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12))
    person = await new_peer(synapse, "mover")
    alex = await new_peer(synapse, "alex")
    robin = await new_peer(synapse, "robin")
    alpha_room = await create_room(alex, [bot.user_id], direct=False, name="Alpha")
    beta_room = await create_room(robin, [bot.user_id], direct=False, name="Beta")
    settings = bot_settings(tmp_path / "data", synapse, bot)
    transport = MatrixTransport(settings, staff_rooms=[alpha_room, beta_room], sync_timeout_ms=5000)
    directory = parse_directory(two_programmes(alex.user_id, alpha_room, robin.user_id, beta_room))
    try:
        async with running(settings, [transport], directory):
            await joined(alex, alpha_room, bot.user_id)
            await joined(robin, beta_room, bot.user_id)
            dm = await create_room(person, [bot.user_id], direct=True)
            await joined(person, dm, bot.user_id)
            code = await intake_to_case(person, dm, message=f"Hallo Alpha {tag}")
            await alex.say(alpha_room, f"/claim {code}", "übernommen")
            old_room = await accept_invite(alex)
            await alex.expect(old_room, f"Hallo Alpha {tag}")

            before = len(person.bodies(dm))
            await send_text(alex.client, old_room, f"/transfer {code} beta")
            asked = await person.expect(dm, "Ja, weiterleiten", before=before)
            await person.say(dm, option(asked, "Ja, weiterleiten"), "jetzt bei Beta NRW")

            # Beta is told in its staff room; the old case room is emptied and left.
            await robin.expect(beta_room, code)

            # The close runs in the send queue, apart from the handling: members are
            # removed first, then the bot leaves; wait for both.
            async with asyncio.timeout(20):
                while await members(synapse, old_room, alex.user) != 403 or (
                    await members(synapse, old_room, bot) != 403
                ):
                    await sync_until([alex.client, robin.client], lambda: True)
            assert await members(synapse, old_room, bot) == 403, "the bot left the old room"
            assert transport.client is not None
            # The bot forgets the room right after leaving it (the send queue runs apart
            # from the handling now): wait for that step, synced like the loop above.
            async with asyncio.timeout(20):
                while old_room in transport.client.rooms:
                    await sync_until([alex.client, robin.client], lambda: True)
            assert old_room not in transport.client.rooms
            assert old_room not in transport.case_rooms.values()

            # Everything after goes to beta, in a new case room; alpha hears nothing.
            seen_by_alex = sum(len(v) for v in alex.events.values())
            await send_text(person.client, dm, f"nach dem Wechsel {tag}")
            await robin.say(beta_room, f"/claim {code}", "übernommen")
            new_room = await accept_invite(robin)
            assert new_room != old_room
            await robin.expect(new_room, f"nach dem Wechsel {tag}")
            before = len(person.bodies(dm))
            await send_text(robin.client, new_room, "Hallo, hier ist Robin.")
            await person.expect(dm, "Hallo, hier ist Robin.", before=before)
            await send_text(person.client, dm, f"Hallo Robin {tag}")
            await robin.expect(new_room, f"Hallo Robin {tag}")
            await sync_until([alex.client], lambda: True, what="alex's last sync")
            assert sum(len(v) for v in alex.events.values()) == seen_by_alex
            assert not alex.invites
    finally:
        await person.close()
        await alex.close()
        await robin.close()
