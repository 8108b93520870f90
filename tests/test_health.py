"""Issue 15 part 4: /healthz, /readyz (agrees with the ready file, says what is missing)
and /metrics (the series are there, no label can single out a person or a case)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.app import App
from bot.health import HealthServer, Readiness
from bot.leader import FileLease
from bot.metrics import ERROR_KINDS
from bot.runner import run_until_stopped
from bot.transports.base import InboundHandler
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.messages import OutboundMessage, Platform, SendResult
from config.settings import DatabaseSettings, Settings
from storage.models import Case, Contact
from storage.retention import TABLES
from tests.fakes.tcp_proxy import TcpProxy
from tests.world import CODE, World, directory_without

#: Case states the core uses (the only values of ``state``).
STATES = {"new", "waiting", "claimed", "referred", "closed"}
LABELS = {"platform", "programme", "state", "kind"}


@dataclass
class Switchable:
    """A platform whose connection the test switches (like Telegram during an outage)."""

    platform: Platform = Platform.TELEGRAM
    connected: bool = True

    async def start(self, on_message: InboundHandler) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> SendResult | None:
        return None


async def get(server: HealthServer, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.bound_port}{path}") as response,
    ):
        return response.status, await response.text()


@pytest.fixture
async def served(
    settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[App, HealthServer, Switchable, Path, asyncio.Event]]:
    """An app run by the runner (as `ausweg run` does) with its health server."""
    platform = Switchable()
    app = App(settings, [MemoryTransport(), platform], clock=clock, directory=directory_without())
    verdict = Readiness()
    server = HealthServer(app, verdict, "127.0.0.1", 0)
    await server.start()
    ready = asyncio.Event()
    monkeypatch.setattr(
        "bot.runner._sd_notify", lambda state: ready.set() if state == "READY=1" else None
    )
    stop = asyncio.Event()
    ready_file = tmp_path / "ready"
    run = asyncio.create_task(
        run_until_stopped(app, ready_file=ready_file, stop=stop, verdict=verdict)
    )
    try:
        yield app, server, platform, ready_file, ready
    finally:
        stop.set()
        await run
        await server.stop()


async def test_readyz_agrees_with_the_ready_file_and_names_what_is_missing(
    served: tuple[App, HealthServer, Switchable, Path, asyncio.Event],
) -> None:
    app, server, platform, ready_file, ready = served
    assert await get(server, "/healthz") == (200, "ok\n")
    async with asyncio.timeout(30):
        await ready.wait()
    assert ready_file.exists()
    status, line = await get(server, "/readyz")
    assert status == 200, line
    assert line == "ready: memory, telegram\n"

    platform.connected = False  # one platform down: still ready, and it says which
    status, line = await get(server, "/readyz")
    assert (status, line) == (200, "ready: memory (missing: telegram)\n")

    app.transports.pop(Platform.MEMORY)  # no platform left connected
    status, line = await get(server, "/readyz")
    assert (status, line) == (503, "not ready: no platform connected (missing: telegram)\n")


async def test_readyz_is_not_ready_before_the_runner_says_so(
    settings: Settings, clock: FakeClock
) -> None:
    app = App(settings, [MemoryTransport()], clock=clock, directory=directory_without())
    verdict = Readiness()
    server = HealthServer(app, verdict, "127.0.0.1", 0)
    await server.start()
    try:
        await app.start()
        # Started, but the runner has not reported ready (no ready file yet).
        assert await get(server, "/readyz") == (503, "not ready: starting\n")
        assert (await get(server, "/healthz"))[0] == 200
    finally:
        await app.stop()
        await server.stop()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_readyz_says_the_database_is_unreachable(
    settings: Settings, clock: FakeClock
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.up()
    url = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != settings.database_url
    settings.database = DatabaseSettings(url=url, connect_args=settings.database.connect_args)
    app = App(
        settings, [MemoryTransport()], clock=clock, directory=directory_without(),
        lease=FileLease(None),  # the lease is not what this test is about
    )  # fmt: skip
    verdict = Readiness()
    verdict.ready = True  # as the runner sets it
    server = HealthServer(app, verdict, "127.0.0.1", 0)
    await server.start()
    try:
        await app.start()
        assert (await get(server, "/readyz"))[0] == 200
        await proxy.down()
        assert await get(server, "/readyz") == (503, "not ready: database unreachable\n")
        await proxy.up()
        assert (await get(server, "/readyz"))[0] == 200, "ready again once it answers"
    finally:
        await proxy.up()
        await app.stop()
        await server.stop()
        await proxy.down()


async def test_metrics_have_the_series_and_no_label_names_a_person_or_case(
    settings: Settings, clock: FakeClock
) -> None:
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    server = HealthServer(app, Readiness(), "127.0.0.1", 0)
    await server.start()
    w = World(app, transport, clock)
    try:
        people = [f"person-{i}" for i in range(4)]
        codes = [await w.open(who) for who in people]
        await w.staff("a1", f"/claim {codes[0]}")
        await w.staff("a1", f"/followup {codes[0]} 3d")
        clock.advance(days=3, hours=2)  # the follow-up is due, the others wait longer
        await app.purge()
        status, body = await get(server, "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body)}
        for name in (
            "ausweg_messages_in", "ausweg_messages_out", "ausweg_send_retries", "ausweg_errors",
            "ausweg_purged_rows", "ausweg_purges", "ausweg_cases", "ausweg_queue_wait_seconds",
            "ausweg_urgent_waiting", "ausweg_followups_due", "ausweg_leader",
        ):  # fmt: skip
            assert name in families, name
        samples = [s for f in families.values() for s in f.samples]

        def value(name: str, **labels: str) -> float:
            return sum(
                s.value
                for s in samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
            )

        assert value("ausweg_messages_in_total", platform="memory") >= len(people) * 9
        assert value("ausweg_messages_out_total", platform="memory") > 0
        assert value("ausweg_cases", programme="alpha") == len(codes)
        assert value("ausweg_cases", programme="alpha", state="claimed") == 1
        assert value("ausweg_queue_wait_seconds", programme="alpha") >= 3 * 86400
        assert value("ausweg_followups_due") == 1
        assert value("ausweg_purges_total") == 1
        assert value("ausweg_leader") == 1

        # No label could single out a person or a case.
        assert app.db is not None
        async with app.db.transaction() as s:
            secrets = set((await s.execute(select(Contact.pseudonym))).scalars())
            secrets |= set((await s.execute(select(Contact.id))).scalars())
            secrets |= set((await s.execute(select(Case.id))).scalars())
        secrets |= set(codes) | set(people) | {"a1"}
        allowed = {
            "platform": {p.value for p in Platform},
            "programme": {"alpha", "beta", "other"},
            "state": STATES,
            "kind": set(ERROR_KINDS) | set(TABLES) | {"data_keys"},
        }
        for sample in samples:
            assert set(sample.labels) <= LABELS, sample
            for label, got in sample.labels.items():
                assert got in allowed[label], sample
                assert got not in secrets, sample
                assert not CODE.search(got), sample
        assert not any(secret in body for secret in secrets), "an identifier in /metrics"
    finally:
        await server.stop()
        await app.stop()
