"""Issue 10, observation 2 on Telegram: a transfer opens a topic in the new programme's
forum and closes the old programme's topic; the old forum reads nothing more of the case.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.transports.telegram import TelegramTransport
from config.clock import FakeClock
from config.directory import parse_directory
from config.settings import Settings
from tests.fakes.telegram_api import ApiCall, FakeBotApi
from tests.telegram.conftest import FastSleep, Tg, fake_config, texts

PERSON = 5_550_000_101
ALPHA_FORUM = -1_001_000_000_001
BETA_FORUM = -1_001_000_000_002
ALEX = 7_100_000_101
ROBIN = 7_100_000_102
CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
INTAKE = ("consent:yes", "safety:no", "audience:self", "scene:right", "state:MV",
          "district:LUP", "prison:no", "language:de")  # fmt: skip
DIRECTORY = f"""
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
      - {{id: a1, alias: Alex, accounts: {{telegram: "{ALEX}"}}}}
    staff_rooms: {{telegram: "{ALPHA_FORUM}"}}
  - id: beta
    name: Beta NRW
    kind: exit
    scenes: [left, right]
    audiences: [self, relative]
    states: [NW]
    description: {{de: Beta hilft in NRW., en: Beta helps in NRW.}}
    staff:
      - {{id: b1, alias: Robin, accounts: {{telegram: "{ROBIN}"}}}}
    staff_rooms: {{telegram: "{BETA_FORUM}"}}
"""


@pytest.fixture
async def two_forums(api: FakeBotApi, settings: Settings, clock: FakeClock) -> AsyncIterator[Tg]:
    """The app on Telegram; alpha and beta each have a forum supergroup of their own."""
    api.register_forum(ALPHA_FORUM, "Alpha staff")
    api.register_forum(BETA_FORUM, "Beta staff")
    sleep = FastSleep()
    transport = TelegramTransport(fake_config(api), sleep=sleep)
    app = App(settings, [transport], clock=clock, directory=parse_directory(DIRECTORY))
    await app.start()
    try:
        yield Tg(api, app, transport, clock, sleep)
    finally:
        await app.stop()


async def in_forum(tg: Tg, forum: int, user: int, text: str, thread: int) -> list[ApiCall]:
    """A staff account writes in a topic of a forum."""
    since = len(tg.api.sent)
    update = tg.api.push_message(
        forum, user, text, chat_type="supergroup", message_thread_id=thread, is_topic_message=True
    )
    await tg.handled(update)
    return tg.api.sent[since:]


def topic_of(api: FakeBotApi, forum: int, code: str) -> int:
    [thread] = [t for t, info in api.topics_in(forum).items() if info["name"] == code]
    return thread


def to_forum(calls: list[ApiCall], forum: int) -> list[ApiCall]:
    return [c for c in calls if c["params"].get("chat_id") == forum]


async def test_transfer_opens_topic_in_new_forum_and_closes_the_old_one(two_forums: Tg) -> None:
    tg, api = two_forums, two_forums.api
    await tg.say(PERSON, "/start")
    for answer in INTAKE:
        await tg.press(PERSON, answer)
    got = await tg.say(PERSON, "Hallo Alpha")
    found = CODE.search("\n".join(texts(got, PERSON)))
    assert found is not None
    code = found.group()
    old = topic_of(api, ALPHA_FORUM, code)
    await tg.press(ALEX, f"claim:{code}", chat=ALPHA_FORUM)
    await in_forum(tg, ALPHA_FORUM, ALEX, f"/transfer {code} beta", old)
    assert any(b.startswith("transfer:") for b in tg.buttons(PERSON)), "the person is asked first"

    since = len(api.sent)
    await tg.press(PERSON, "transfer:yes")
    moved = api.sent[since:]
    # Beta: a topic of its own, the announcement with the claim button in it.
    new = topic_of(api, BETA_FORUM, code)
    announce = [c for c in to_forum(moved, BETA_FORUM) if c["method"] == "sendMessage"]
    assert [c["params"].get("message_thread_id") for c in announce] == [new]
    assert code in announce[0]["params"]["text"]
    assert f"claim:{code}" in str(announce[0]["params"]["reply_markup"])
    # Alpha: told once in its topic, then the topic is closed.
    alpha = to_forum(moved, ALPHA_FORUM)
    assert [c["method"] for c in alpha] == ["sendMessage", "closeForumTopic"]
    assert all(c["ok"] for c in alpha)
    assert alpha[1]["params"]["message_thread_id"] == old
    assert api.topics_in(ALPHA_FORUM)[old]["closed"] is True

    # From now on nothing of the case reaches alpha's forum.
    since = len(api.sent)
    await tg.say(PERSON, "nach dem Wechsel")
    claimed = await tg.press(ROBIN, f"claim:{code}", chat=BETA_FORUM)
    held = [c for c in to_forum(claimed, BETA_FORUM) if c["method"] == "sendMessage"]
    assert any("nach dem Wechsel" in c["params"]["text"] for c in held)
    assert all(c["params"].get("message_thread_id") == new for c in held)
    await in_forum(tg, BETA_FORUM, ROBIN, "Hallo, hier ist Robin.", new)
    assert texts(api.sent, PERSON)[-1].endswith("Hallo, hier ist Robin.")
    back = await tg.say(PERSON, "Hallo Robin")
    assert [c["params"].get("message_thread_id") for c in to_forum(back, BETA_FORUM)] == [new]
    assert to_forum(api.sent[since:], ALPHA_FORUM) == []
