"""PostgreSQL in production (issue 15 part 2): plain URLs, one-line failures, migrations
down and up on both databases, and a connection killed under load loses nothing."""

from __future__ import annotations

import asyncio
import logging
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from config.i18n import translator
from config.settings import Settings
from handlers.limits import Limits, LimitSettings
from storage.db import Database, is_disconnect, normalise_url, unavailable_reason
from storage.migrate import current, downgrade, head, upgrade
from storage.models import Base
from tests.conftest import PG_URL, memory_directory, process_env, production_directory
from tests.telegram.conftest import telegram_directory

ROOT = Path(__file__).resolve().parent.parent
RAW_PG = PG_URL.replace("+asyncpg", "")
#: Rounds of pg_terminate_backend during the load (0.2 s apart).
KILL_ROUNDS = 8


@pytest.fixture
def pg(pg_reason: str | None) -> str:
    if pg_reason:
        pytest.skip(pg_reason)
    return RAW_PG


async def _sql(sql: str) -> Any:
    conn = await asyncpg.connect(RAW_PG)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


@pytest.fixture
async def schema(pg: str) -> AsyncIterator[str]:
    name = "t_" + secrets.token_hex(6)
    await _sql(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        await _sql(f"DROP SCHEMA {name} CASCADE")


@pytest.mark.parametrize("scheme", ["postgresql://", "postgres://"])
async def test_plain_postgres_urls_work(scheme: str, schema: str) -> None:
    """The URLs hosting panels and psql use, without ``+asyncpg``."""
    url = scheme + RAW_PG.split("://", 1)[1]
    assert normalise_url(url).startswith("postgresql+asyncpg://")
    db = Database(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        await upgrade(db.engine)
        assert await current(db.engine) == head()
    finally:
        await db.dispose()


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = process_env(tmp_path, **env)
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True, text=True, env=base, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ausweg:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["migrate", "run"])
def test_missing_database_or_unreachable_server_gives_one_line(
    command: str, tmp_path: Path, pg: str, directory: Directory
) -> None:
    settings = {
        "AUSWEG_DIRECTORY_PATH": str(
            production_directory(telegram_directory(directory), tmp_path / "d.yaml")
        ),
        "AUSWEG_TELEGRAM__ENABLED": "true",
        "AUSWEG_TELEGRAM__TOKEN": "123456:" + secrets.token_urlsafe(30),
        "AUSWEG_TELEGRAM__BASE_URL": "http://127.0.0.1:9",
    }
    missing = RAW_PG.rsplit("/", 1)[0] + "/ausweg_missing_" + secrets.token_hex(4)
    line = _one_line(_cli(tmp_path, command, AUSWEG_DATABASE__URL=missing, **settings))
    assert "no such database" in line
    assert missing.rsplit("/", 1)[1] in line
    # Nothing listens on port 9 (discard) here: refused at once.
    gone = "postgres://ausweg:topsecret@127.0.0.1:9/ausweg"
    line = _one_line(_cli(tmp_path, command, AUSWEG_DATABASE__URL=gone, **settings))
    assert "cannot connect" in line
    assert "topsecret" not in line  # the URL is shown without its password
    assert "postgresql+asyncpg://ausweg:***@127.0.0.1:9/ausweg" in line


def test_wrong_password_reads_as_one_line() -> None:
    """The test server trusts every login, so the driver's error is built here."""
    cause = asyncpg.exceptions.InvalidPasswordError('password authentication failed for user "x"')
    wrapped = DBAPIError("connect", None, cause)
    assert unavailable_reason(wrapped) == (
        'wrong password: password authentication failed for user "x"'
    )
    assert unavailable_reason(ValueError("other")) is None
    assert not is_disconnect(wrapped)


async def test_migrations_down_to_nothing_and_up_again(settings: Settings) -> None:
    db = Database(settings.database_url, connect_args=settings.database.connect_args)

    async def tables() -> set[str]:
        async with db.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    try:
        await upgrade(db.engine)
        full = await tables()
        assert {"contacts", "cases", "outbox"} <= full
        await downgrade(db.engine, "-1")  # one step back, then forward: the last revision
        assert await current(db.engine) not in {None, head()}
        await upgrade(db.engine)
        await downgrade(db.engine, "base")
        assert await current(db.engine) is None
        assert await tables() <= {"alembic_version"}
        await upgrade(db.engine)
        assert await tables() == full

        def diff(conn: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


async def test_connection_killed_under_load_every_message_answered_once(
    tmp_path: Path,
    schema: str,
    directory: Directory,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.conftest import make_settings

    tag = "ausweg-kill-" + secrets.token_hex(4)  # only this test's connections are killed
    settings = make_settings(
        tmp_path / "data", PG_URL, server_settings={"search_path": schema, "application_name": tag}
    )
    transport = MemoryTransport(redelivers=True)  # like Telegram and Matrix: with an outbox
    # Newcomer limits off: a retried update asks them again (see the report).
    limits = Limits(LimitSettings(new_contacts_burst=10_000, person_burst=10_000))
    app = App(
        settings, [transport], clock=clock, directory=memory_directory(directory), limits=limits
    )
    await app.start()
    error = translator("de")("error.generic")
    try:
        # What one person gets, undisturbed: the expected answers.
        await transport.push("p-control", "/start")
        consent = transport.last_buttons("p-control")[0]
        await transport.push("p-control", button=consent)
        expected = [m.text for m in transport.pop("p-control")]
        assert expected

        kills = 0
        running = True
        kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
        kill += f"'{tag}'"  # our own hex tag

        async def killer() -> None:
            """Kill this test's connections a few times while messages flow (like a
            failover or a PostgreSQL restart; not a server that never comes back)."""
            nonlocal kills
            for _ in range(KILL_ROUNDS):
                if not running:
                    return
                rows = await _sql(kill)
                kills += sum(1 for r in rows if r[0])
                await asyncio.sleep(0.2)

        async def person(n: int) -> None:
            who = f"p{n}"
            await transport.push(who, "/start")
            await transport.push(who, button=consent)

        caplog.set_level(logging.WARNING, logger="bot.router")
        task = asyncio.create_task(killer())
        try:
            await asyncio.gather(*(person(n) for n in range(40)))
        finally:
            running = False
            await task
        assert kills > 0
        for n in range(40):
            got = [m.text for m in transport.pop(f"p{n}")]
            assert error not in got, n
            assert got == expected, n  # every reply, exactly once, in order
        assert any("connection lost" in r.getMessage() for r in caplog.records)
    finally:
        await app.stop()
