"""The crisis protocol on a real Synapse (issue 11): danger before consent in an
encrypted DM, the numbers at once, "1" presses "contact me now" (the last question),
and the urgent case reaches the staff room with the mark."""

from __future__ import annotations

import secrets
from pathlib import Path

from bot.commands import for_platform
from bot.transports.matrix import MatrixTransport
from config.directory import Directory
from config.i18n import translator
from config.messages import Platform
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    CODE,
    bot_settings,
    create_room,
    joined,
    matrix_directory,
    new_peer,
    running,
)

_DE = translator("de")


def DE(key: str) -> str:
    """A German text as Matrix shows it (commands named "!delete": issue 12 part 10)."""
    return for_platform(_DE(key), Platform.MATRIX)


async def test_crisis_before_consent_contact_now_reaches_the_staff_room_urgently(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    tag = secrets.token_hex(3)
    bot_user = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12))
    person = await new_peer(synapse, "crisis")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    try:
        async with running(
            settings, [transport], matrix_directory(directory, counsellor.user_id, staff_room)
        ):
            await joined(counsellor, staff_room, bot_user.user_id)
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)

            question = DE("crisis.contact.question")
            got = await person.say(dm, f"Ich will mich umbringen {tag}", question)
            assert got[0] == DE("crisis.suicide"), "the numbers come first"
            assert got[-1].startswith(question)
            assert all(tag not in b for b in counsellor.bodies(staff_room))

            got = await person.say(dm, "1", lambda b: any(CODE.search(x) for x in b))
            assert DE("crisis.contact.opened") in got
            found = next(CODE.search(b) for b in got if CODE.search(b))
            assert found is not None
            code = found.group()

            announced = await counsellor.expect(staff_room, code)
            urgent = [b for b in announced if code in b and b.startswith("🚨")]
            assert urgent, announced
            assert DE("staff.danger.suicide") in urgent[0]
            assert all(tag not in b for b in counsellor.bodies(staff_room)), (
                "the text sent before consent never reaches staff"
            )
    finally:
        await person.close()
        await counsellor.close()
