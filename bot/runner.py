"""Run the app until SIGTERM / SIGINT: start, report readiness, stop cleanly.

SIGHUP reloads the programme directory (access changes take effect at once; a
broken file keeps the old one). Readiness is reported three ways once every
transport has finished its first round (``wait_ready`` where a transport has
one) and at least one platform is connected (``connected`` / ``wait_connected``
where a transport has them): a log line ``ready``, an optional ready file (for
container health checks; removed on stop) and systemd's ``READY=1`` when
``NOTIFY_SOCKET`` is set. A bot that started while every platform was unreachable
is not ready: until one connects, the health status (a ``health`` file next to
the ready file, systemd's ``STATUS=`` and a log line) names the platforms missing.
On a signal the transports stop first (each finishes the update in hand), then
the database closes; a signal during the start stops it at once. The HTTP
endpoint ``/readyz`` (bot/health.py) follows the same verdict (``Readiness``).

An instance on standby (another instance leads, bot/leader.py) counts its
leader-only platforms as neither connected nor missing: it is ready to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bot.health import Readiness, ready_line

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Next to the ready file: what is connected, or which platforms are missing.
HEALTH_FILE = "health"


class Runnable(Protocol):
    """What the runner needs of :class:`bot.app.App`."""

    @property
    def transports(self) -> Mapping[Any, Any]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about a state change; no-op without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(state.encode(), address)


def _write_ready(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("ready\n")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _ready(app: Runnable, limit: float) -> None:
    waits: list[Awaitable[None]] = []
    standby = getattr(app, "standby", None)
    for transport in app.transports.values():
        if callable(standby) and standby(transport):
            continue  # not started here: the leader runs it
        wait: Callable[[], Awaitable[None]] | None = getattr(transport, "wait_ready", None)
        if wait is not None:
            waits.append(wait())
    if waits:
        async with asyncio.timeout(limit):
            await asyncio.gather(*waits)


def _name(key: Any, transport: Any) -> str:
    platform = getattr(transport, "platform", key)
    return str(getattr(platform, "value", platform))


def _connected(app: Runnable) -> tuple[list[str], list[str]]:
    """(connected, missing) platform names; a transport without the notion counts as
    connected (memory, console)."""
    up: list[str] = []
    down: list[str] = []
    standby = getattr(app, "standby", None)
    for key, transport in app.transports.items():
        if callable(standby) and standby(transport):
            continue  # held by the leader
        (up if getattr(transport, "connected", True) else down).append(_name(key, transport))
    return up, down


def _held(app: Runnable) -> list[str]:
    """Platforms held by another instance (this one is on standby)."""
    standby = getattr(app, "standby", None)
    if not callable(standby):
        return []
    return [_name(k, t) for k, t in app.transports.items() if standby(t)]


def _health(path: Path | None, status: str) -> None:
    """Report the health status: file (mode 0600), systemd STATUS=, nothing logged here."""
    _sd_notify(f"STATUS={status}")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(status + "\n")


async def _first_connection(app: Runnable, stop: asyncio.Event, health: Path | None) -> bool:
    """Wait until at least one platform is connected (True) or a stop came first (False)."""
    up, down = _connected(app)
    if up or not down:
        return True
    status = "not ready: no platform connected (missing: " + ", ".join(down) + ")"
    log.warning("%s; retrying in the background", status)
    _health(health, status)
    standby = getattr(app, "standby", None)
    waits = [
        asyncio.ensure_future(t.wait_connected())
        for t in app.transports.values()
        if callable(getattr(t, "wait_connected", None)) and not (callable(standby) and standby(t))
    ]
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([*waits, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (*waits, stopped):
            waiter.cancel()
        await asyncio.gather(*waits, stopped, return_exceptions=True)
    return not stop.is_set()


async def _started(app: Runnable, limit: float, stop: asyncio.Event) -> bool:
    """Start the app and wait for its first round; False when a signal came first.

    A SIGTERM during a long start (migrations, an unreachable platform's retries, a
    big first Matrix sync) must not wait for it: the start is cancelled and the app
    stopped by the caller.
    """

    async def start() -> None:
        await app.start()
        await _ready(app, limit)

    starting = asyncio.ensure_future(start())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, stopped, return_exceptions=True)
    if starting.cancelled():
        return False
    starting.result()  # a failed start (TimeoutError, ConfigError) propagates
    return True


def _reload(reload: Callable[[], None]) -> None:
    """SIGHUP: read the programme directory again (e.g. a counsellor was removed)."""
    try:
        reload()
        log.info("directory reloaded")
    except Exception as exc:  # a broken file keeps the old directory in force
        log.error("directory not reloaded, the old one stays in force: %s", type(exc).__name__)


async def run_until_stopped(
    app: Runnable,
    *,
    ready_file: Path | None = None,
    ready_timeout: float = 120.0,
    stop: asyncio.Event | None = None,
    reload: Callable[[], None] | None = None,
    verdict: Readiness | None = None,
) -> None:
    """Start ``app``, report readiness, wait for SIGTERM/SIGINT (or ``stop``), stop ``app``.

    Args:
        app: the application (started and stopped here).
        ready_file: written (mode 0600, contains ``ready``) once ready; removed on stop.
        ready_timeout: how long transports may take for their first round.
        stop: an event that stops the app like a signal (tests, embedding).
        reload: what SIGHUP runs (default: the app's ``reload_directory``); raising
            keeps the old directory.
        verdict: set ready at the moment the ready file is written, cleared on stop
            (what ``/readyz`` starts from).

    Raises:
        TimeoutError: a transport did not become ready in time (the app is stopped).
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed = []
    handlers: list[tuple[signal.Signals, Callable[[], None]]] = [
        (sig, stop.set) for sig in _SIGNALS
    ]
    reload = reload or getattr(app, "reload_directory", None)
    if callable(reload):
        handlers.append((signal.SIGHUP, lambda: _reload(reload)))
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            pass
    health = ready_file.with_name(HEALTH_FILE) if ready_file is not None else None
    for stale in (ready_file, health):
        if stale is not None:
            _remove(stale)  # left behind by a killed process: not ready yet
    verdict = verdict or Readiness()
    try:
        if await _started(app, ready_timeout, stop) and await _first_connection(app, stop, health):
            if ready_file is not None:
                _write_ready(ready_file)
            up, down = _connected(app)
            status = ready_line(up, down, _held(app))
            _health(health, status)
            verdict.status, verdict.ready = status, True
            _sd_notify("READY=1")
            log.info("ready")
            await stop.wait()
        log.info("stopping")
        _sd_notify("STOPPING=1")
    finally:
        verdict.status, verdict.ready = "not ready: stopping", False
        for sig in installed:
            loop.remove_signal_handler(sig)
        for path in (ready_file, health):
            if path is not None:
                _remove(path)
        await app.stop()
        log.info("stopped")
