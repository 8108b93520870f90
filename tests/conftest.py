"""Shared fixtures: fake clock, settings with fresh keys, databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

# python-telegram-bot 22: RetryAfter.retry_after as timedelta (the float form warns).
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory, load_directory
from config.messages import OutboundMessage
from config.settings import (
    CryptoSettings,
    DatabaseSettings,
    OperatorSettings,
    Settings,
    new_key,
)

PG_URL = os.environ.get("AUSWEG_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
#: Set by .ci/run: a missing service is a failure there, not a skip.
REQUIRE_SERVICES = os.environ.get("AUSWEG_REQUIRE_SERVICES") == "1"
#: The example directory plus invented office hours, response times and languages that
#: tests rely on (the shipped example keeps only published facts).
TEST_DIRECTORY = Path(__file__).resolve().parent / "data" / "directory.test.yaml"
#: The controller every production start needs (told to people before consent).
OPERATOR = OperatorSettings(
    name="Verein Testweg e.V.",
    privacy_contact="datenschutz@testweg.example",
    privacy_url="https://testweg.example/datenschutz",
)
#: The same as environment variables, for ``python -m bot run`` in a child process.
OPERATOR_ENV = {
    f"AUSWEG_OPERATOR__{name.upper()}": str(getattr(OPERATOR, name))
    for name in OperatorSettings.model_fields
}
#: Tuesday 17 Nov 2026, 10:00 in Berlin: inside office hours.
OFFICE_TIME = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    """Why PostgreSQL tests cannot run (None: they can)."""
    reason = _pg_available()
    if reason and REQUIRE_SERVICES:
        pytest.fail(f"{reason} (AUSWEG_REQUIRE_SERVICES=1)")
    return reason


@pytest.fixture
def clock() -> FakeClock:
    """A clock inside office hours."""
    return FakeClock(OFFICE_TIME)


@pytest.fixture(scope="session")
def directory() -> Directory:
    """The test directory (the example with invented hours, response times, languages)."""
    return load_directory(TEST_DIRECTORY)


def process_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """Environment for ``python -m bot run`` as a child process: fresh keys in a 0600 key
    file, data under ``tmp_path``, the caller's ``AUSWEG_*`` settings, nothing inherited."""
    keys = tmp_path / "keys.json"
    fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"master_keys": {"1": new_key()}, "pseudonym_keys": {"1": new_key()}}, fh)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUSWEG_")}
    env.update(
        AUSWEG_ENV_FILE=str(tmp_path / "absent.env"),
        AUSWEG_DATA_DIR=str(tmp_path / "data"),
        AUSWEG_CRYPTO__KEY_FILE=str(keys),
        AUSWEG_LOG_LEVEL="DEBUG",
        **OPERATOR_ENV,
        AUSWEG_HEALTH__PORT="0",  # any free port: processes of parallel tests do not clash
        **settings,
    )
    return env


def production_directory(directory: Directory, path: Path) -> Path:
    """Write ``directory`` to ``path`` as a verified copy (``verify_before_going_live``
    off): ``ausweg run`` refuses the shipped example and anything still marked."""
    import yaml

    data = directory.model_dump(mode="json")
    data["verify_before_going_live"] = False
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def make_settings(data_dir: Path, db_url: str | None = None, **connect: object) -> Settings:
    """Settings with fresh random keys in a private data folder."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        mode="production",
        crypto=CryptoSettings(
            master_keys={1: SecretStr(new_key())}, pseudonym_keys={1: SecretStr(new_key())}
        ),
        database=DatabaseSettings(url=db_url, connect_args=dict(connect)),
        operator=OPERATOR,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, pg_reason: str | None) -> str:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "postgresql" and pg_reason:
        pytest.skip(pg_reason)
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str) -> Iterator[Settings]:
    """Settings for the backend; PostgreSQL gets a private schema per test."""
    if backend == "sqlite":
        yield make_settings(tmp_path / "data")
        return
    import asyncpg

    schema = "t_" + secrets.token_hex(6)
    raw = PG_URL.replace("+asyncpg", "")

    async def ddl(sql: str) -> None:
        conn = await asyncpg.connect(raw)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(ddl(f"CREATE SCHEMA {schema}"))
    try:
        yield make_settings(tmp_path / "data", PG_URL, server_settings={"search_path": schema})
    finally:
        asyncio.run(ddl(f"DROP SCHEMA {schema} CASCADE"))


@dataclass
class Harness:
    """An app on the memory transport with helpers to play people and counsellors."""

    app: App
    transport: MemoryTransport
    clock: FakeClock
    log: list[OutboundMessage] = field(default_factory=list)

    async def say(self, who: str, text: str = "", **kw: object) -> list[OutboundMessage]:
        """Send as a person (private chat = account id); return what the person got."""
        await self.transport.push(who, text, **kw)  # type: ignore[arg-type]
        return self.transport.pop(who)

    async def press(self, who: str, data: str) -> list[OutboundMessage]:
        """Press a button."""
        return await self.say(who, button=data)

    async def staff(
        self, who: str, text: str = "", room: str = "staff", **kw: object
    ) -> list[OutboundMessage]:
        """Send as a staff account in a staff room; return what the room got."""
        await self.transport.push(who, text, chat=room, group=True, **kw)  # type: ignore[arg-type]
        return self.transport.pop(room)

    def room(self, room: str = "staff") -> list[OutboundMessage]:
        """Take what a staff room received."""
        return self.transport.pop(room)


def memory_directory(directory: Directory) -> Directory:
    """The example directory with staff accounts and rooms on the memory platform."""
    data = directory.model_dump(mode="python")
    for p in data["programmes"]:
        for m in p["staff"]:
            if "console" in m["accounts"]:
                m["accounts"] = {**m["accounts"], "memory": m["accounts"]["console"]}
        p["staff_rooms"] = {
            ("memory" if k == "console" else k): v for k, v in p["staff_rooms"].items()
        }
    return Directory.model_validate(data)


@pytest.fixture
async def harness(
    settings: Settings, clock: FakeClock, directory: Directory
) -> AsyncIterator[Harness]:
    """A started app with the memory transport."""
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=memory_directory(directory))
    await app.start()
    try:
        yield Harness(app, transport, clock)
    finally:
        await app.stop()


# Fixtures for several test modules: the casework world (tests/world.py) and the example
# directory on the memory transport (tests/phone.py: discretion, lock screens, dead ends).
from tests.phone import phone  # noqa: E402, F401
from tests.world import world  # noqa: E402, F401
