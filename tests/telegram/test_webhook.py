"""Webhook mode. Privacy check 9: a missing or wrong secret gets 403 and nothing is processed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.transports.telegram import TelegramTransport
from config.clock import FakeClock
from config.directory import Directory
from config.messages import InboundMessage, OutboundMessage
from storage.models import Contact
from tests.conftest import make_settings
from tests.fakes.telegram_api import SECRET_HEADER, FakeBotApi, free_port
from tests.telegram.conftest import FastSleep, Tg, fake_config, start_tg, texts

PERSON = 5_580_000_001
STRANGER = 5_580_000_666
SECRET = "wh-S3cret_for-the-tests-0123456789"


def webhook(port: int) -> dict[str, Any]:
    return {
        "mode": "webhook",
        "webhook_url": f"http://127.0.0.1:{port}/telegram/hook",
        "webhook_listen": "127.0.0.1",
        "webhook_port": port,
        "webhook_secret": SECRET,
    }


@pytest.fixture
async def hooked(
    api: FakeBotApi, tmp_path: Path, clock: FakeClock, directory: Directory
) -> AsyncIterator[tuple[Tg, str]]:
    port = free_port()
    tg = await start_tg(api, make_settings(tmp_path / "data"), clock, directory, **webhook(port))
    try:
        yield tg, str(webhook(port)["webhook_url"])
    finally:
        await tg.app.stop()


async def contacts(app: App) -> int:
    assert app.db is not None
    async with app.db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(Contact))).scalar_one())


def update_for(user: int, text: str, update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 1, "text": text,
            "chat": {"id": user, "type": "private", "first_name": "X"},
            "from": {"id": user, "is_bot": False, "first_name": "X", "language_code": "de"},
        },
    }  # fmt: skip


async def test_secret_is_checked_before_anything_else(hooked: tuple[Tg, str]) -> None:
    tg, url = hooked
    api = tg.api
    assert (await tg.transport.bot.get_webhook_info()).url == url

    # a real update through Telegram's (the fake's) delivery, with the secret
    update = api.push_message(PERSON, PERSON, "/start")
    delivery = await api.wait_for_delivery(update["update_id"])
    assert delivery.status == 200
    assert len(texts(api.sent, PERSON)) == 2  # answered before the 200
    assert await contacts(tg.app) == 1
    received = tg.transport.stats.received

    forged = update_for(STRANGER, "/start", 999_999)
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]},
                        {SECRET_HEADER: SECRET + "x"}, {SECRET_HEADER: "ä" * 8}):  # fmt: skip
            async with session.post(url, json=forged, headers=headers) as response:
                assert response.status == 403
        # not even parsed: garbage with a wrong secret is refused the same way
        async with session.post(url, data=b"{not json", headers={SECRET_HEADER: "x"}) as response:
            assert response.status == 403
        assert tg.transport.stats.rejected == 6
        assert tg.transport.stats.received == received
        assert [c for c in api.sent if c["params"].get("chat_id") == STRANGER] == []
        assert await contacts(tg.app) == 1

        # a replayed webhook with the right secret is a duplicate: no second answer
        replay = {**update, "message": {**update["message"]}}
        async with session.post(url, json=replay, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 200
        assert len(texts(api.sent, PERSON)) == 2

        # the right secret works for a new person; garbage with it is skipped, not retried
        async with session.post(url, data=b"{not json", headers={SECRET_HEADER: SECRET}) as r:
            assert r.status == 200
        api.register_chat(STRANGER)
        genuine = update_for(STRANGER, "/start", 999_998)
        async with session.post(url, json=genuine, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 200
    assert len(texts(api.sent, STRANGER)) == 2
    assert tg.transport.stats.malformed == 1


async def test_200_only_after_the_core_returned(api: FakeBotApi) -> None:
    port = free_port()
    entered, release = asyncio.Event(), asyncio.Event()
    seen: list[InboundMessage] = []
    transport = TelegramTransport(fake_config(api, **webhook(port)), sleep=FastSleep())

    async def slow_core(msg: InboundMessage) -> None:
        seen.append(msg)
        entered.set()
        await release.wait()
        await transport.send(OutboundMessage(msg.address, "fertig"))

    api.register_chat(PERSON)
    await transport.start(slow_core)
    try:
        async with aiohttp.ClientSession() as session:
            post = asyncio.create_task(
                session.post(
                    str(webhook(port)["webhook_url"]),
                    data=json.dumps(update_for(PERSON, "hallo", 5)),
                    headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"},
                )
            )
            await entered.wait()
            for _ in range(50):  # give a premature 200 every chance to arrive
                await asyncio.sleep(0)
            assert not post.done(), "answered before the core returned"
            release.set()
            response = await post
            assert response.status == 200
            assert [m["text"] for m in api.messages_in(PERSON)] == ["fertig"]
            response.release()
    finally:
        await transport.stop()
    assert [m.text for m in seen] == ["hallo"]


async def test_switching_back_to_polling_removes_the_webhook(hooked: tuple[Tg, str]) -> None:
    tg, _ = hooked
    api = tg.api
    seen: list[str] = []

    async def core(msg: InboundMessage) -> None:
        seen.append(msg.text)

    await tg.app.stop()
    polling = TelegramTransport(fake_config(api), sleep=FastSleep())
    await polling.start(core)
    try:
        update = api.push_message(PERSON, PERSON, "per Polling")
        await polling.wait_handled(update["update_id"])
    finally:
        await polling.stop()
    assert seen == ["per Polling"]
    assert (await_info := api.calls("deleteWebhook"))
    assert await_info[-1]["ok"]
