"""Telegram end-to-end fixtures: the fake Bot API, the app on the Telegram transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.app import App
from bot.transports.telegram import TelegramConfig, TelegramTransport
from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.telegram_api import ApiCall, FakeBotApi

#: Staff accounts of the example directory, as Telegram user ids.
COUNSELLOR = 7_100_000_001
COUNSELLOR2 = 7_100_000_002
COORDINATOR = 7_100_000_003
STAFF_IDS = {"counsellor": COUNSELLOR, "counsellor2": COUNSELLOR2, "coordinator": COORDINATOR}
#: The staff forum supergroup all example programmes share.
FORUM = -1_001_234_567_890
#: What a counsellor's Telegram profile shows (must never reach a person).
COUNSELLOR_FIRST_NAME = "Brunhilde-Staffname"
COUNSELLOR_USERNAME = "brunhilde_private_handle"


def telegram_directory(directory: Directory, room: int = FORUM) -> Directory:
    """The example directory with Telegram staff accounts and one staff group."""
    data = directory.model_dump(mode="python")
    for programme in data["programmes"]:
        for member in programme["staff"]:
            account = member["accounts"].get("console")
            if account in STAFF_IDS:
                member["accounts"] = {**member["accounts"], "telegram": str(STAFF_IDS[account])}
        if programme["staff_rooms"]:
            programme["staff_rooms"] = {"telegram": str(room)}
    return Directory.model_validate(data)


def fake_config(api: FakeBotApi, **overrides: Any) -> TelegramConfig:
    """A transport config for the fake: no throttle, short polls, fast back-off."""
    values: dict[str, Any] = {
        "token": api.token,
        "base_url": api.base_url,
        "rate_limit": False,
        "poll_timeout": 5,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "stop_timeout": 5.0,
    }
    values.update(overrides)
    return TelegramConfig(**values)


class FastSleep:
    """A ``sleep`` for the transport that records how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def to_chat(chat: int, method: str | None = None) -> Callable[[ApiCall], bool]:
    """Predicate: a call addressed to ``chat`` (optionally of one method)."""

    def predicate(call: ApiCall) -> bool:
        return call["params"].get("chat_id") == chat and (
            method is None or call["method"] == method
        )

    return predicate


@dataclass
class Tg:
    """The app on the Telegram transport, with helpers to play people and staff."""

    api: FakeBotApi
    app: App
    transport: TelegramTransport
    clock: FakeClock
    sleep: FastSleep = field(default_factory=FastSleep)

    async def handled(self, update: dict[str, Any]) -> None:
        """The update returned, and its button answer and keyboard removal (which run
        apart) are done: tests look at the whole exchange."""
        await self.transport.wait_handled(int(update["update_id"]))
        await self.transport.wait_tidied(int(update["update_id"]))

    async def say(self, user: int, text: str, **kw: Any) -> list[ApiCall]:
        """A person writes in their private chat; returns the calls made while handling."""
        since = len(self.api.sent)
        await self.handled(self.api.push_message(user, user, text, **kw))
        return self.api.sent[since:]

    async def press(
        self, user: int, data: str, chat: int | None = None, **kw: Any
    ) -> list[ApiCall]:
        """Press the newest button with ``data`` in ``chat`` (default: the private chat)."""
        where = user if chat is None else chat
        since = len(self.api.sent)
        update = self.api.push_callback(where, user, data, self.message_with(where, data), **kw)
        await self.handled(update)
        return self.api.sent[since:]

    async def staff(
        self, user: int, text: str, thread: int | None = None, **kw: Any
    ) -> list[ApiCall]:
        """A staff account writes in the forum (in a topic when ``thread`` is given)."""
        since = len(self.api.sent)
        update = self.api.push_message(
            FORUM,
            user,
            text,
            chat_type="supergroup",
            message_thread_id=thread,
            is_topic_message=thread is not None,
            **kw,
        )
        await self.handled(update)
        return self.api.sent[since:]

    def message_with(self, chat: int, data: str) -> int:
        """Id of the newest message in ``chat`` with a button carrying ``data``."""
        for message in reversed(self.api.messages_in(chat)):
            rows = message.get("reply_markup", {}).get("inline_keyboard", [])
            if any(b.get("callback_data") == data for row in rows for b in row):
                return int(message["message_id"])
        raise AssertionError(f"no button {data!r} in chat")

    def buttons(self, chat: int) -> list[str]:
        """Callback data of the newest message with buttons in ``chat``."""
        for message in reversed(self.api.messages_in(chat)):
            rows = message.get("reply_markup", {}).get("inline_keyboard", [])
            if rows:
                return [b["callback_data"] for row in rows for b in row]
        return []


def texts(calls: list[ApiCall], chat: int | None = None) -> list[str]:
    """Texts of the sendMessage calls (to ``chat``)."""
    return [
        str(c["params"]["text"])
        for c in calls
        if c["method"] == "sendMessage"
        and c["ok"]
        and (chat is None or c["params"]["chat_id"] == chat)
    ]


def payload(call: ApiCall) -> str:
    """A call's parameters as the JSON text they travelled in."""
    return json.dumps(call["params"], ensure_ascii=False, default=str)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """A started fake Bot API with the staff forum registered."""
    fake = FakeBotApi()
    await fake.start()
    fake.register_forum(FORUM)
    try:
        yield fake
    finally:
        await fake.stop()


async def start_tg(
    api: FakeBotApi,
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    **overrides: Any,
) -> Tg:
    """Start an app on the Telegram transport (stop it with ``tg.app.stop()``)."""
    sleep = FastSleep()
    transport = TelegramTransport(fake_config(api, **overrides), sleep=sleep)
    app = App(settings, [transport], clock=clock, directory=telegram_directory(directory))
    await app.start()
    return Tg(api, app, transport, clock, sleep)


@pytest.fixture
async def tg(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> AsyncIterator[Tg]:
    """The app on the Telegram transport (polling), on SQLite and PostgreSQL."""
    harness = await start_tg(api, settings, clock, directory)
    try:
        yield harness
    finally:
        await harness.app.stop()
