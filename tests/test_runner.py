"""The process runner: readiness, SIGTERM, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from bot.runner import run_until_stopped


class FakeTransport:
    def __init__(self) -> None:
        self.ready = asyncio.Event()

    async def wait_ready(self) -> None:
        await self.ready.wait()


class FakeApp:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.transports: dict[Any, Any] = {"t": self.transport}
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")
        self.transport.ready.set()

    async def stop(self) -> None:
        self.calls.append("stop")


async def test_sigterm_stops_cleanly_and_ready_file_comes_and_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = FakeApp()
    ready = tmp_path / "run" / "ready"
    notified: list[str] = []
    is_ready = asyncio.Event()

    def notify(state: str) -> None:  # systemd's READY=1 comes right after the ready file
        notified.append(state)
        if state == "READY=1":
            is_ready.set()

    monkeypatch.setattr("bot.runner._sd_notify", notify)
    task = asyncio.create_task(run_until_stopped(app, ready_file=ready))
    async with asyncio.timeout(5):
        await is_ready.wait()
    assert ready.read_text() == "ready\n"
    assert app.calls == ["start"]
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(5):
        await task
    assert app.calls == ["start", "stop"]
    # STATUS= lines carry the health status (what is connected): tested below.
    assert [n for n in notified if not n.startswith("STATUS=")] == ["READY=1", "STOPPING=1"]
    assert not ready.exists()
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)  # handlers were removed


async def test_not_ready_in_time_still_stops(tmp_path: Path) -> None:
    app = FakeApp()
    ready = tmp_path / "ready"
    ready.write_text("ready\n")  # left behind by a process killed with SIGKILL
    seen: list[bool] = []

    async def start() -> None:
        app.calls.append("start")  # never ready
        seen.append(ready.exists())

    app.start = start  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        await run_until_stopped(app, ready_file=ready, ready_timeout=0.05)
    assert app.calls == ["start", "stop"]
    assert seen == [False], "a stale ready file claimed readiness during the start"
    assert not ready.exists()


async def test_sighup_reloads_the_directory_and_a_broken_one_is_survived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = FakeApp()
    reloaded = asyncio.Event()
    attempts: list[int] = []

    def reload_directory() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("broken yaml")
        reloaded.set()

    app.reload_directory = reload_directory  # type: ignore[attr-defined]
    is_ready = asyncio.Event()
    monkeypatch.setattr(
        "bot.runner._sd_notify", lambda state: is_ready.set() if state == "READY=1" else None
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_until_stopped(app, stop=stop))
    async with asyncio.timeout(5):
        await is_ready.wait()
    os.kill(os.getpid(), signal.SIGHUP)  # the first reload fails: the app keeps running
    os.kill(os.getpid(), signal.SIGHUP)
    async with asyncio.timeout(5):
        await reloaded.wait()
    assert len(attempts) == 2
    assert not task.done()
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert app.calls == ["start", "stop"]


class Platformed:
    """A transport with a connection that comes (or not) after the start."""

    def __init__(self, name: str, connected: bool = False) -> None:
        self.platform = name
        self.up = asyncio.Event()
        if connected:
            self.up.set()

    async def wait_ready(self) -> None:  # the first round is over (connected or not)
        return None

    @property
    def connected(self) -> bool:
        return self.up.is_set()

    async def wait_connected(self) -> None:
        await self.up.wait()


class TwoPlatformApp(FakeApp):
    def __init__(self, *, telegram: bool = False, matrix: bool = False) -> None:
        super().__init__()
        self.telegram = Platformed("telegram", telegram)
        self.matrix = Platformed("matrix", matrix)
        self.transports = {"telegram": self.telegram, "matrix": self.matrix}

    async def start(self) -> None:
        self.calls.append("start")


async def test_not_ready_while_no_platform_is_connected_and_health_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TwoPlatformApp()
    ready = tmp_path / "ready"
    health = tmp_path / "health"
    notified: list[str] = []
    waiting = asyncio.Event()
    is_ready = asyncio.Event()

    def notify(state: str) -> None:
        notified.append(state)
        if state.startswith("STATUS=not ready"):
            waiting.set()
        if state == "READY=1":
            is_ready.set()

    monkeypatch.setattr("bot.runner._sd_notify", notify)
    stop = asyncio.Event()
    task = asyncio.create_task(run_until_stopped(app, ready_file=ready, stop=stop))
    async with asyncio.timeout(5):
        await waiting.wait()
    assert not ready.exists(), "ready with no platform connected"
    assert "READY=1" not in notified
    status = health.read_text()
    assert "no platform connected" in status
    assert "telegram" in status
    assert "matrix" in status
    assert oct(health.stat().st_mode & 0o777) == "0o600"

    app.matrix.up.set()  # the homeserver answers after a while
    async with asyncio.timeout(5):
        await is_ready.wait()
    assert ready.read_text() == "ready\n"
    assert health.read_text() == "ready: matrix (missing: telegram)\n"
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert app.calls == ["start", "stop"]
    assert not ready.exists()
    assert not health.exists()


async def test_stop_while_waiting_for_a_platform_never_reports_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TwoPlatformApp()
    notified: list[str] = []
    waiting = asyncio.Event()

    def notify(state: str) -> None:
        notified.append(state)
        if state.startswith("STATUS=not ready"):
            waiting.set()

    monkeypatch.setattr("bot.runner._sd_notify", notify)
    stop = asyncio.Event()
    task = asyncio.create_task(run_until_stopped(app, ready_file=tmp_path / "ready", stop=stop))
    async with asyncio.timeout(5):
        await waiting.wait()
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert "READY=1" not in notified
    assert app.calls == ["start", "stop"]


async def test_one_connected_platform_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = TwoPlatformApp(telegram=True)
    is_ready = asyncio.Event()
    monkeypatch.setattr(
        "bot.runner._sd_notify", lambda state: is_ready.set() if state == "READY=1" else None
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_until_stopped(app, ready_file=tmp_path / "ready", stop=stop))
    async with asyncio.timeout(5):
        await is_ready.wait()
    assert (tmp_path / "health").read_text() == "ready: telegram (missing: matrix)\n"
    stop.set()
    async with asyncio.timeout(5):
        await task


async def test_sigterm_during_a_long_start_stops_at_once(tmp_path: Path) -> None:
    """A start that hangs (a homeserver that does not answer its 10 s probe, Bot API
    retries, a long first sync) does not hold SIGTERM up: it is cancelled and the app
    stopped (issue 15: SIGTERM took 10 s)."""
    app = FakeApp()
    entered = asyncio.Event()

    async def start() -> None:
        app.calls.append("start")
        entered.set()
        await asyncio.Event().wait()  # never finishes on its own

    app.start = start  # type: ignore[method-assign]
    ready = tmp_path / "ready"
    task = asyncio.create_task(run_until_stopped(app, ready_file=ready))
    await entered.wait()
    loop = asyncio.get_running_loop()
    began = loop.time()
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(5):
        await task
    assert loop.time() - began < 1.0
    assert app.calls == ["start", "stop"]
    assert not ready.exists()
