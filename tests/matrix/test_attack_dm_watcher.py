"""Red-team review on a real Synapse: a third account in a person's chat reads the
counsellor's reply.

The person's chat is the one room the bot does not police: ``_allowed`` returns None
("every device of a person's chat") and the room becomes GROUP only when a message
arrives from it. If another account joins the person's DM (the person was pressured to
invite a scene member's account, or their partner controls a second account), the next
counsellor reply - a meeting point - is encrypted for the newcomer's devices too.

What should happen: before relaying to a person's Matrix chat, the bot checks that it
holds exactly the person and the bot (joined or invited); otherwise it holds the reply,
tells the counsellor, and (like for an unknown group) tells the person without content.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from bot.transports.matrix import MatrixTransport
from bot.transports.memory import MemoryTransport
from config.directory import Directory
from config.i18n import translator
from tests.conftest import memory_directory
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    accept_invite,
    bot_settings,
    create_room,
    intake_to_case,
    joined,
    new_peer,
    running,
)
from tests.matrix.nio_helpers import sync_until


async def test_attack_third_account_in_the_persons_dm_decrypts_the_counsellors_reply(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-x")
    person = await new_peer(synapse, "leaver")
    watcher = await new_peer(synapse, "watcher")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    matrix = MatrixTransport(settings, sync_timeout_ms=3000)
    memory = MemoryTransport()
    try:
        async with running(settings, [matrix, memory], memory_directory(directory)):
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo Team")
            await memory.push("counsellor", f"/claim {code}", chat="staff", group=True)
            memory.pop("staff")

            await person.client.room_invite(dm, watcher.user_id)
            assert await accept_invite(watcher, others=[person.client]) == dm
            await joined(person, dm, watcher.user_id)
            await sync_until(
                [person.client, watcher.client],
                lambda: watcher.user_id in (matrix.client.rooms[dm].users if matrix.client else {}),
                what="the bot to see the watcher",
                seconds=15,
            )

            secret = "Treffpunkt morgen 10 Uhr Bahnhof Nord"
            await memory.push("counsellor", f"/r {code} {secret}", chat="staff", group=True)
            # give the reply time to arrive; the person itself must still read it normally
            with contextlib.suppress(AssertionError):  # held: that is the wanted outcome
                await person.expect(dm, secret, others=[watcher.client], seconds=10)
            await sync_until([watcher.client], lambda: True, what="one more sync", seconds=3)
            assert not any(secret in b for b in watcher.bodies(dm)), (
                "a third account in the person's chat decrypted the counsellor's reply"
            )
            # the counsellor learns (staff side, case code only) that it was not delivered
            told = translator("de")("staff.person_chat_watched", code=code)
            assert any(m.text == told for m in memory.pop("staff"))
            # the person is told, without content; the watcher cannot read even that
            notice = translator("de")("person.chat_watched")
            await person.expect(dm, notice, others=[watcher.client], seconds=10)
            assert notice not in watcher.bodies(dm)
            assert matrix.stats["withheld"] >= 1
    finally:
        await person.close()
        await watcher.close()


async def test_an_account_left_alone_in_the_persons_chat_reads_nothing(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    """The person invites another account and leaves; the transport remembers nobody
    (as after a restart), so that account looks like the chat's only person. Replies
    of the person's case still go nowhere: the core names the person's own account
    with the address."""
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-y")
    person = await new_peer(synapse, "leaver")
    watcher = await new_peer(synapse, "watcher")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    matrix = MatrixTransport(settings, sync_timeout_ms=3000)
    memory = MemoryTransport()
    try:
        async with running(settings, [matrix, memory], memory_directory(directory)):
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo Team")
            await memory.push("counsellor", f"/claim {code}", chat="staff", group=True)
            memory.pop("staff")

            await person.client.room_invite(dm, watcher.user_id)
            assert await accept_invite(watcher, others=[person.client]) == dm
            await joined(person, dm, watcher.user_id)
            await person.client.room_leave(dm)

            def alone() -> bool:
                room = matrix.client.rooms.get(dm) if matrix.client else None
                return room is not None and set(room.users) == {bot_user.user_id, watcher.user_id}

            await sync_until([watcher.client], alone, what="the bot to see the person leave")
            matrix.rooms.people.clear()  # as after a restart: the transport remembers nobody
            secret = "Treffpunkt Mittwoch Hintereingang"
            await memory.push("counsellor", f"/r {code} {secret}", chat="staff", group=True)
            told = translator("de")("staff.person_chat_watched", code=code)
            assert any(m.text == told for m in memory.pop("staff"))
            await sync_until([watcher.client], lambda: True, what="one more sync", seconds=3)
            assert not any(secret in b for b in watcher.bodies(dm))
    finally:
        await person.close()
        await watcher.close()
