"""A person and a counsellor on Telegram, end to end through python-telegram-bot.

Privacy check 14 for Telegram: what the person receives carries no staff account data
and nothing is ever forwarded.
"""

from __future__ import annotations

import re

from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.telegram_api import ApiCall, FakeBotApi
from tests.telegram.conftest import (
    COUNSELLOR,
    COUNSELLOR_FIRST_NAME,
    COUNSELLOR_USERNAME,
    FORUM,
    Tg,
    payload,
    start_tg,
    texts,
)

PERSON = 5_550_000_001
CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
INTAKE = ("consent:yes", "safety:no", "audience:self", "scene:right", "state:MV",
          "district:LUP", "prison:no", "language:de")  # fmt: skip


def staff_profile() -> dict[str, str]:
    return {"first_name": COUNSELLOR_FIRST_NAME, "username": COUNSELLOR_USERNAME}


async def open_case(tg: Tg, person: int, message: str) -> tuple[str, int]:
    """Intake by buttons; returns the case code and its forum topic."""
    await tg.say(person, "/start")
    for answer in INTAKE:
        await tg.press(person, answer)
    got = await tg.say(person, message)
    found = CODE.search("\n".join(texts(got, person)))
    assert found is not None
    code = found.group()
    topics = {t["name"]: thread for thread, t in tg.api.topics_in(FORUM).items()}
    assert code in topics, "the case got its own forum topic"
    return code, topics[code]


async def test_intake_topic_claim_relay_delete(tg: Tg) -> None:
    api = tg.api
    got = await tg.say(PERSON, "/start")
    assert len(texts(got, PERSON)) == 2
    greeting = [c for c in got if c["method"] == "sendMessage"]
    assert all(c["params"]["protect_content"] is True for c in greeting)
    assert all("parse_mode" not in c["params"] for c in greeting)
    assert '"callback_data": "consent:yes"' in payload(greeting[-1])

    # every answered question loses its keyboard; every press is answered
    for answer in INTAKE:
        asked_in = tg.message_with(PERSON, answer)
        await tg.press(PERSON, answer)
        assert "reply_markup" not in next(
            m for m in api.messages_in(PERSON) if m["message_id"] == asked_in
        )
    answered = api.calls("answerCallbackQuery")
    assert len(answered) == len(INTAKE)
    assert all(c["ok"] for c in answered)

    got = await tg.say(PERSON, "Ich will raus. Geht das <anonym> & *schnell*?")
    code_match = CODE.search("\n".join(texts(got, PERSON)))
    assert code_match is not None
    code = code_match.group()
    topics = api.topics_in(FORUM)
    [(topic, info)] = topics.items()
    assert info["name"] == code
    announce = [c for c in got if c["method"] == "sendMessage" and c["params"]["chat_id"] == FORUM]
    assert announce[-1]["params"]["message_thread_id"] == topic
    assert announce[-1]["params"].get("protect_content") is not True  # staff may keep notes
    assert f"claim:{code}" in payload(announce[-1])

    # the counsellor takes the case with the button in its topic
    got = await tg.press(COUNSELLOR, f"claim:{code}", chat=FORUM, **staff_profile())
    in_topic = [
        c for c in got if c["params"].get("chat_id") == FORUM and c["method"] == "sendMessage"
    ]
    assert any(
        "Ich will raus. Geht das <anonym> & *schnell*?" in c["params"]["text"] for c in in_topic
    )
    assert all(c["params"].get("message_thread_id") == topic for c in in_topic)
    to_person = texts(got, PERSON)
    assert len(to_person) == 1
    assert "JUMP!" in to_person[0]

    # relay both ways, written in the topic, exactly as typed
    typed = "Hallo! Ich bin für dich da 🙂 <3 & _du_ bist *nicht* allein. مرحبا"
    got = await tg.staff(COUNSELLOR, typed, thread=topic, **staff_profile())
    [relayed] = [c for c in got if c["params"].get("chat_id") == PERSON]
    assert relayed["method"] == "sendMessage"
    assert relayed["params"]["text"].endswith(typed)
    assert relayed["params"]["text"].startswith("Alex:\n")  # alias only (issue 12 part 3)
    assert relayed["params"]["protect_content"] is True
    assert api.messages_in(PERSON)[-1]["text"].endswith(typed)  # Telegram shows it as sent

    got = await tg.say(PERSON, "Danke!")
    [back] = [c for c in got if c["params"].get("chat_id") == FORUM]
    assert back["params"]["text"].endswith("Danke!")
    assert back["params"].get("message_thread_id") == topic

    # /delete with confirmation: staff hear of it in the topic, the person gets a receipt
    got = await tg.say(PERSON, "/delete")
    confirm = [d for d in tg.buttons(PERSON) if d.startswith("delete:")]
    assert confirm
    yes = next(d for d in confirm if d.endswith(":yes"))
    got = await tg.press(PERSON, yes)
    assert texts(got, PERSON)
    assert any(code in t for t in texts(got, FORUM))

    # privacy check 14: nothing to the person carries staff account data; no forwarding
    person_calls = [c for c in api.sent if c["params"].get("chat_id") == PERSON]
    assert person_calls
    for call in person_calls:
        body = payload(call)
        for secret in (str(COUNSELLOR), COUNSELLOR_FIRST_NAME, COUNSELLOR_USERNAME):
            assert secret not in body, f"{call['method']} to the person carries staff data"
    assert not api.calls("forwardMessage")
    assert not api.calls("forwardMessages")
    assert all(c["ok"] for c in api.sent if c["method"] == "sendMessage"), _failed(api.sent)


def _failed(calls: list[ApiCall]) -> list[tuple[str, str | None]]:
    return [(c["method"], c["description"]) for c in calls if not c["ok"]]


async def test_claim_by_command_and_counsellor_of_other_programme_denied(tg: Tg) -> None:
    code, topic = await open_case(tg, PERSON, "Hallo?")
    got = await tg.staff(COUNSELLOR, f"/claim@ausweg_test_bot {code}", thread=topic)
    assert any("JUMP!" in t for t in texts(got, PERSON))
    got = await tg.staff(COUNSELLOR, "Wie kann ich helfen?", thread=topic)
    assert texts(got, PERSON)[-1].endswith("Wie kann ich helfen?")


async def test_strangers_in_the_staff_group_are_ignored(tg: Tg) -> None:
    code, topic = await open_case(tg, PERSON, "Hallo?")
    got = await tg.staff(6_666_000_001, f"/claim {code}", thread=topic)
    assert got == []
    got = await tg.press(6_666_000_001, f"claim:{code}", chat=FORUM)
    assert [c["method"] for c in got] == ["answerCallbackQuery"]


async def test_vanish_clears_the_chat_on_the_phone(tg: Tg) -> None:
    api = tg.api
    code, topic = await open_case(tg, PERSON, "Bitte melden")
    await tg.press(COUNSELLOR, f"claim:{code}", chat=FORUM)
    await tg.staff(COUNSELLOR, "Hallo, hier ist Alex.", thread=topic)
    await tg.say(PERSON, "Hallo Alex")
    before = {m["message_id"] for m in api.messages_in(PERSON)}
    assert len(before) > 10
    got = await tg.say(PERSON, "/vanish")
    assert "deleteMessages" in [c["method"] for c in got if c["params"].get("chat_id") == PERSON]
    left = {m["message_id"] for m in api.messages_in(PERSON)}
    assert not before & left, "the bot's and the person's messages are gone from the chat"


async def test_deep_link_start_payload_reaches_the_core(tg: Tg) -> None:
    from sqlalchemy import select

    from bot.links import create_link
    from storage.models import Case

    assert tg.app.db is not None
    assert tg.app.router is not None
    link = await create_link(
        tg.app.db, tg.app.router.directory, programme="jump", source="poster-schwerin",
        bot_username="ausweg_test_bot", now=tg.clock.now(),
    )  # fmt: skip
    payload_code = link.url.rsplit("start=", 1)[1]
    assert len(texts(await tg.say(PERSON, f"/start {payload_code}"), PERSON)) == 2
    for answer in INTAKE:
        await tg.press(PERSON, answer)
    await tg.press(PERSON, "message:skip")
    async with tg.app.db.transaction() as s:
        case = (await s.execute(select(Case))).scalar_one()
    assert (case.programme_id, case.source) == ("jump", "poster-schwerin")


async def test_photos_are_copied_never_forwarded_once_claimed(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    settings.relay_attachments = True
    tg = await start_tg(api, settings, clock, directory)
    try:
        await tg.say(PERSON, "/start")
        for answer in INTAKE:
            await tg.press(PERSON, answer)
        got = await tg.say(PERSON, "Hallo")
        code = CODE.search("\n".join(texts(got, PERSON)))
        assert code is not None
        [(topic, _)] = api.topics_in(FORUM).items()
        await tg.press(COUNSELLOR, f"claim:{code.group()}", chat=FORUM, **staff_profile())
        since = len(api.sent)
        await tg.handled(api.push_photo(PERSON, PERSON))
        copies = [c for c in api.sent[since:] if c["method"] == "copyMessage"]
        assert len(copies) == 1
        params = copies[0]["params"]
        assert (params["chat_id"], params["from_chat_id"]) == (FORUM, PERSON)
        assert params["message_thread_id"] == topic
        assert params["caption"] == f"[{code.group()}] (Foto)"
        assert copies[0]["ok"], copies[0]
        assert not api.calls("forwardMessage")
    finally:
        await tg.app.stop()
