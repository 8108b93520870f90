"""The Telegram transport's ``held`` hint for the send queues (bot.sending): a chat is
held while a send to it would wait - its group at the flood limit, or a 429 pause of
that chat - and only that chat; nothing is taken by asking."""

from __future__ import annotations

import asyncio

from bot.app import App
from bot.transports.telegram import TelegramTransport
from config.clock import FakeClock
from config.directory import Directory
from config.messages import Address, OutboundMessage, Platform
from config.settings import Settings
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import FORUM, fake_config, telegram_directory

PERSON, OTHER = 5_900_000_001, 5_900_000_002


def to(chat: int, text: str = "x") -> OutboundMessage:
    return OutboundMessage(Address(Platform.TELEGRAM, str(chat)), text)


async def test_a_group_at_its_flood_limit_is_held_no_other_chat_is(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    transport = TelegramTransport(
        fake_config(api, rate_limit=True, group_per_minute=2, overall_per_second=0)
    )
    assert not transport.held(to(FORUM)), "not started: nothing is held"
    app = App(settings, [transport], clock=clock, directory=telegram_directory(directory))
    await app.start()
    try:
        assert not transport.held(to(FORUM))
        for n in range(2):
            await transport.send(to(FORUM, f"staff {n}"))
        assert transport.held(to(FORUM)), "the group used its two sends of the minute"
        assert not transport.held(to(PERSON)), "a private chat has no group limit"
    finally:
        await app.stop()


async def test_a_chat_in_a_429_pause_is_held_until_the_pause_ends(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    pausing, gate = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        if seconds >= 1:  # the 429's retry_after: held open by the test
            pausing.set()
            await gate.wait()
        await asyncio.sleep(0)

    transport = TelegramTransport(fake_config(api), sleep=sleep)
    app = App(settings, [transport], clock=clock, directory=telegram_directory(directory))
    await app.start()
    try:
        api.fail_with_429(times=1, retry_after=1, method="sendMessage")
        send = asyncio.create_task(transport.send(to(PERSON)))
        await pausing.wait()
        assert transport.held(to(PERSON))
        assert not transport.held(to(OTHER)), "a 429 pauses only its own chat"
        gate.set()
        await send
        assert not transport.held(to(PERSON))
    finally:
        gate.set()
        await app.stop()
