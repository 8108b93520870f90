"""Matrix: the bot leaves a room it is not configured for (issue 10, observation 1).

A staff member pulls the bot into a group room that is neither a staff room nor a case
room (an invite flagged as a direct chat, then a third member): the bot says once that
it is not set up there, answers no staff command, and leaves and forgets the room.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from bot.transports.matrix import MatrixTransport
from config.directory import Directory
from config.i18n import translator
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    accept_invite,
    bot_settings,
    create_room,
    joined,
    matrix_directory,
    new_peer,
    running,
)
from tests.matrix.nio_helpers import send_text, sync_until


async def test_bot_leaves_an_unconfigured_room_after_one_notice(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-4")
    counsellor = await new_peer(synapse, "counsellor")
    friend = await new_peer(synapse, "friend")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    try:
        staff_room = await create_room(counsellor, [bot_user.user_id], direct=False, name="Team")
        transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
        jump = matrix_directory(directory, counsellor.user_id, staff_room)
        async with running(settings, [transport], jump):
            await joined(counsellor, staff_room, bot_user.user_id)
            chat = await create_room(
                counsellor, [bot_user.user_id, friend.user_id], direct=True, name="Familie"
            )
            await joined(counsellor, chat, bot_user.user_id)
            assert await accept_invite(friend) == chat
            await joined(counsellor, chat, friend.user_id, others=[friend.client])

            await send_text(counsellor.client, chat, "/queue")
            notice = translator("de")("group.leaving")
            await counsellor.expect(chat, notice)

            def bot_gone() -> bool:
                room = counsellor.client.rooms.get(chat)
                return room is not None and bot_user.user_id not in room.users

            await sync_until([counsellor.client], bot_gone, what="the bot to leave")
            await send_text(counsellor.client, chat, "/queue")  # nobody answers any more
            await sync_until([counsellor.client], lambda: True, what="one more sync")
            bodies = counsellor.bodies(chat)
            assert bodies == [notice]  # told once, the command never answered
            assert chat not in transport.staff_rooms
            # The configured staff room is kept.
            staff = counsellor.client.rooms[staff_room]
            assert bot_user.user_id in staff.users
    finally:
        await counsellor.close()
        await friend.close()
