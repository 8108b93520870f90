"""A small HTTP server for health checks and Prometheus: /healthz, /readyz, /metrics.

Bound to 127.0.0.1:9090 by default (settings ``health.listen`` / ``health.port``):
the answers name platforms and programmes, nothing about people, but they are for
the operator's monitoring, not for the internet.

- ``/healthz``: 200 while the process runs its event loop (alive).
- ``/readyz``: 200 only when the runner has reported ready (the moment the ready file
  is written and systemd hears READY=1) *and*, right now, the database answers and at
  least one platform is connected (a standby instance counts its leader-only
  platforms as held elsewhere). Otherwise 503 with one line that says what is missing.
- ``/metrics``: Prometheus text format (see :mod:`bot.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from config.settings import ConfigError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

#: How long /readyz waits for the database.
DB_TIMEOUT = 2.0


class Readiness:
    """The runner's verdict, shared with the HTTP server (same moment as the ready file)."""

    def __init__(self) -> None:
        self.ready = False
        self.status = "not ready: starting"


def platforms(app: App) -> tuple[list[str], list[str], list[str]]:
    """(connected, missing, standby) platform names. A transport without the notion of
    a connection counts as connected (memory, console); a leader-only one on an
    instance that does not lead is on standby."""
    up: list[str] = []
    down: list[str] = []
    standby: list[str] = []
    for transport in app.transports.values():
        name = transport.platform.value
        if app.standby(transport):
            standby.append(name)
        elif getattr(transport, "connected", True):
            up.append(name)
        else:
            down.append(name)
    return up, down, standby


async def database_ok(app: App) -> bool:
    """The main database answers within :data:`DB_TIMEOUT`."""
    if app.db is None:
        return False
    try:
        async with asyncio.timeout(DB_TIMEOUT), app.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def readiness(app: App, verdict: Readiness) -> tuple[bool, str]:
    """(ready, one line) as /readyz reports it."""
    if not verdict.ready:
        return False, verdict.status
    missing: list[str] = []
    if not await database_ok(app):
        missing.append("database unreachable")
    up, down, standby = platforms(app)
    if not up and not (standby and not down):
        missing.append("no platform connected (missing: " + ", ".join(down) + ")")
    if missing:
        return False, "not ready: " + "; ".join(missing)
    return True, ready_line(up, down, standby)


def ready_line(up: list[str], down: list[str], held: list[str]) -> str:
    """``ready: telegram (missing: matrix)``; on standby ``ready: standby (telegram held
    by the leader)``. The runner's health status uses the same words."""
    line = "ready: " + (", ".join(up) if up or not held else "standby")
    notes = [f"missing: {', '.join(down)}"] if down else []
    if held:
        notes.append(f"{', '.join(held)} held by the leader")
    return line + "".join(f" ({note})" for note in notes)


class HealthServer:
    """The aiohttp server; started before the app (alive during start-up)."""

    def __init__(self, app: App, verdict: Readiness, listen: str, port: int) -> None:
        self.app = app
        self.verdict = verdict
        self.listen = listen
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen (port 0: any free port; see :attr:`bound_port`)."""
        web_app = web.Application()
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/readyz", self._readyz)
        web_app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(web_app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.listen, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"health.port {self.port} on {self.listen} cannot be used ({exc.strerror});"
                " give each instance on this host its own AUSWEG_HEALTH__PORT"
            ) from None
        self._runner = runner
        log.info("health endpoints on %s:%d", self.listen, self.bound_port)

    @property
    def bound_port(self) -> int:
        """The port actually listened on."""
        if self._runner is None or not self._runner.addresses:
            return self.port
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ok, line = await readiness(self.app, self.verdict)
        return web.Response(text=line + "\n", status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        await self.app.refresh_metrics()
        body = generate_latest(self.app.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
