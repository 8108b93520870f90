"""Readiness (issue 10, obs 7): with the Bot API unreachable at start the bot runs but is
not ready; the health status names Telegram; once the API answers, it is ready."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import App
from bot.runner import run_until_stopped
from bot.transports.telegram import TelegramTransport
from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import FastSleep, fake_config, telegram_directory


async def test_ready_only_once_the_bot_api_is_connected(
    api: FakeBotApi,
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = int(api.base_url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)  # the way to the Bot API, down at first
    transport = TelegramTransport(
        fake_config(api, base_url=proxy.url, network_retries=1), sleep=FastSleep()
    )
    app = App(settings, [transport], clock=clock, directory=telegram_directory(directory))
    states: list[str] = []
    waiting, ready = asyncio.Event(), asyncio.Event()

    def notify(state: str) -> None:
        states.append(state)
        if state.startswith("STATUS=not ready"):
            waiting.set()
        if state == "READY=1":
            ready.set()

    monkeypatch.setattr("bot.runner._sd_notify", notify)
    stop = asyncio.Event()
    ready_file = tmp_path / "run" / "ready"
    task = asyncio.create_task(run_until_stopped(app, ready_file=ready_file, stop=stop))
    try:
        async with asyncio.timeout(30):
            await waiting.wait()
        assert not ready_file.exists()
        assert "READY=1" not in states
        assert "missing: telegram" in (tmp_path / "run" / "health").read_text()

        await proxy.up()
        async with asyncio.timeout(30):
            await ready.wait()
        assert ready_file.read_text() == "ready\n"
        assert (tmp_path / "run" / "health").read_text() == "ready: telegram\n"
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
        await proxy.down()
