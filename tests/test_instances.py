"""Issue 15 part 3 in process: who leads (PostgreSQL advisory lock), SQLite refuses a
second instance, a follower takes the leader's parts over when the lease frees."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.app import App
from bot.leader import FileLease, PgLease
from bot.transports.base import InboundHandler
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from config.messages import OutboundMessage, Platform, SendResult
from config.settings import ConfigError, Settings
from tests.conftest import PG_URL, process_env, production_directory
from tests.telegram.conftest import telegram_directory
from tests.world import directory_without

ROOT = Path(__file__).resolve().parents[1]
#: Fast lease timings for tests (production: 1 s each).
FAST = {"retry": 0.05, "check": 0.1}


@dataclass
class PollingTransport:
    """Stands for Telegram polling / the Matrix sync: runs on the leader only."""

    platform: Platform = Platform.TELEGRAM
    leader_only: bool = True
    started: asyncio.Event = field(default_factory=asyncio.Event)
    starts: int = 0

    async def start(self, on_message: InboundHandler) -> None:
        self.starts += 1
        self.started.set()

    async def stop(self) -> None:
        self.started.clear()

    async def send(self, message: OutboundMessage) -> SendResult | None:
        return None


def pg_lease(settings: Settings, **kw: Any) -> PgLease:
    return PgLease(settings.database_url, settings.database.connect_args, **{**FAST, **kw})


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_refuses_a_second_instance_with_one_line(
    settings: Settings, clock: FakeClock
) -> None:
    first = App(settings, [MemoryTransport()], clock=clock, directory=directory_without())
    await first.start()
    try:
        second = App(settings, [MemoryTransport()], clock=clock, directory=directory_without())
        with pytest.raises(ConfigError, match="SQLite supports one instance") as refused:
            await second.start()
        assert "\n" not in str(refused.value)
        assert second.db is None, "refused before the database was opened"
        assert first.leading
    finally:
        await first.stop()
    # The lock goes with the instance: a restart runs.
    again = App(settings, [MemoryTransport()], clock=clock, directory=directory_without())
    await again.start()
    await again.stop()


async def test_file_lease_is_freed_when_released(tmp_path: Any) -> None:
    one, two = FileLease(tmp_path / "db.lock"), FileLease(tmp_path / "db.lock")
    assert await one.acquire()
    with pytest.raises(ConfigError):
        await two.acquire()
    await one.release()
    assert await two.acquire()
    await two.release()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_one_leader_and_a_lost_connection_hands_the_lease_over(settings: Settings) -> None:
    one, two = pg_lease(settings), pg_lease(settings)
    events: list[str] = []
    gained, lost = asyncio.Event(), asyncio.Event()

    async def two_gains() -> None:
        events.append("two leads")
        gained.set()

    async def one_loses() -> None:
        events.append("one lost")
        lost.set()

    async def nothing() -> None:
        return None

    try:
        assert await one.acquire()
        assert not await two.acquire(), "the lock is held: no second leader"
        one.watch(nothing, one_loses)
        two.watch(two_gains, nothing)
        # The leader's connection dies (server restart, network): it stands down and the
        # other instance takes the lease.
        raw = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
        try:
            pid = one._conn.get_server_pid()
            killed = await raw.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await raw.close()
        assert killed is True
        async with asyncio.timeout(5):
            await lost.wait()
            await gained.wait()
        assert not one.leading
        assert two.leading
        assert set(events) == {"one lost", "two leads"}
    finally:
        await one.release()
        await two.release()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_follower_runs_no_leader_parts_and_takes_over(
    settings: Settings, clock: FakeClock
) -> None:
    poll1, poll2 = PollingTransport(), PollingTransport()
    apps = [
        App(settings, [p], clock=clock, directory=directory_without(), lease=pg_lease(settings))
        for p in (poll1, poll2)
    ]
    app1, app2 = apps
    await app1.start()
    try:
        await app2.start()
        assert app1.leading
        assert poll1.started.is_set()
        assert app1.scheduler is not None
        assert app1.scheduler._sched.running
        assert not app2.leading
        assert poll2.starts == 0, "a follower does not poll"
        assert app2.scheduler is not None
        assert not app2.scheduler._sched.running
        assert app2.standby(poll2)
        assert not app1.standby(poll1)
        await app1.stop()  # the leader goes: the follower takes over
        async with asyncio.timeout(5):
            await poll2.started.wait()
        assert app2.leading
        assert app2.scheduler._sched.running
        assert {"purge", "escalate", "urgent", "followup-window"} <= {
            j.id for j in app2.scheduler._sched.get_jobs()
        }
    finally:
        await app1.stop()
        await app2.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_ausweg_run_refuses_a_second_instance_on_sqlite_in_one_line(
    settings: Settings, clock: FakeClock, directory: Directory, tmp_path: Path
) -> None:
    """`ausweg run` beside a running instance on the same SQLite data: exit 2, one line."""
    first = App(settings, [MemoryTransport()], clock=clock, directory=directory_without())
    await first.start()
    try:
        assert settings.data_dir == tmp_path / "data"  # where process_env puts the data too
        env = process_env(
            tmp_path,
            AUSWEG_DIRECTORY_PATH=str(
                production_directory(telegram_directory(directory), tmp_path / "d.yaml")
            ),
            AUSWEG_TELEGRAM__ENABLED="true",
            AUSWEG_TELEGRAM__TOKEN="123456:" + "A" * 35,
            AUSWEG_TELEGRAM__BASE_URL="http://127.0.0.1:9",  # never reached
        )
        env["PYTHONPATH"] = str(ROOT)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    finally:
        await first.stop()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("ausweg: another instance already runs on this SQLite database")
    assert "use PostgreSQL to run two" in lines[-1]
    assert "Traceback" not in err.decode()
