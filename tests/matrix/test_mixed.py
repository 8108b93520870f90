"""Both platforms in one process: a person on Telegram, the counsellor on Matrix."""

from __future__ import annotations

import secrets
from pathlib import Path

from bot.transports.matrix import MatrixTransport
from bot.transports.telegram import TelegramTransport
from config.directory import Directory
from tests.fakes.synapse import SynapseServer
from tests.fakes.telegram_api import ApiCall, FakeBotApi
from tests.matrix.journey import (
    CODE,
    accept_invite,
    bot_settings,
    create_room,
    joined,
    matrix_directory,
    new_peer,
    running,
)
from tests.matrix.nio_helpers import send_text
from tests.telegram.conftest import fake_config

PERSON = 5_770_000_001


async def person_says(api: FakeBotApi, text: str) -> list[str]:
    """The person writes on Telegram; returns the bot's replies to that message."""
    since = len(api.sent)
    update = api.push_message(PERSON, PERSON, text)
    await api.wait_until_confirmed(update["update_id"], timeout=20)

    def mine(call: ApiCall) -> bool:
        return call["method"] == "sendMessage" and call["params"].get("chat_id") == PERSON

    return [str(c["params"]["text"]) for c in api.sent[since:] if mine(c)]


async def test_person_on_telegram_counsellor_on_matrix(
    api: FakeBotApi, synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    tag = secrets.token_hex(3)
    bot_user = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12))
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    matrix = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    telegram = TelegramTransport(fake_config(api))
    jump = matrix_directory(directory, counsellor.user_id, staff_room)
    alias = jump.by_id["jump"].staff[0].alias
    try:
        async with running(settings, [telegram, matrix], jump):
            await joined(counsellor, staff_room, bot_user.user_id)
            for answer in (
                "/start",
                "ja",
                "nein",
                "ich will raus",
                "stimmt",  # a read (not matched) answer is echoed: confirm it
                "rechts",
                "MV",
                "überspringen",
                "nein",
                "deutsch",
            ):
                assert await person_says(api, answer), answer
            got = await person_says(api, f"Hallo aus Telegram {tag}")
            code = next(m.group() for t in got if (m := CODE.search(t)))
            await counsellor.expect(staff_room, code)

            await counsellor.say(staff_room, f"!claim {code}", "übernommen")
            case_room = await accept_invite(counsellor)
            await counsellor.expect(case_room, f"Hallo aus Telegram {tag}")

            since = len(api.sent)
            await send_text(counsellor.client, case_room, f"Hallo, hier ist {alias}.")
            call = await api.wait_for_sent(
                lambda c: (
                    c["method"] == "sendMessage"
                    and c["params"].get("chat_id") == PERSON
                    and "hier ist" in str(c["params"]["text"])
                ),
                timeout=20,
                since=since,
            )
            assert str(call["params"]["text"]).startswith(f"{alias}:\n")  # alias only
            assert counsellor.user_id not in str(call["params"])

            before = len(counsellor.bodies(case_room))
            await person_says(api, f"Danke {tag}")
            await counsellor.expect(case_room, f"[{code}]\n> Danke {tag}", before=before)
            assert str(PERSON) not in "\n".join(counsellor.bodies(staff_room))
    finally:
        await counsellor.close()
