"""Who leads: one instance polls Telegram, syncs Matrix, fires follow-ups and purges.

PostgreSQL (:class:`PgLease`): the leader holds a session-level advisory lock on a
connection of its own. PostgreSQL drops the lock with the session, so a killed
leader (its socket closes) or a lost connection frees it at once and another
instance takes it at its next try (every ``retry`` seconds). The leader checks its
connection every ``check`` seconds; one that does not answer within ``check``
seconds counts as lost, and the instance stops leading before it reconnects.

SQLite (:class:`FileLease`): one instance only. An exclusive ``flock`` on a file
next to the database refuses a second instance with one clear line; the kernel
drops the lock when the process dies (also after SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from config.settings import ConfigError

log = logging.getLogger(__name__)

#: Seconds between attempts to take a free lease.
RETRY_SECONDS = 1.0
#: Seconds between checks of the leader's connection (also the answer's time limit).
CHECK_SECONDS = 1.0

Callback = Callable[[], Awaitable[None]]


class Lease(Protocol):
    """What the app needs of a lease."""

    @property
    def leading(self) -> bool: ...

    async def acquire(self) -> bool: ...

    def watch(self, on_gain: Callback, on_loss: Callback) -> None: ...

    async def unwatch(self) -> None: ...

    async def release(self) -> None: ...


class FileLease:
    """SQLite: the only instance, guarded by an exclusive lock file (see module doc)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: an in-memory database, nothing to share
        self._fd: int | None = None
        self._held = False

    @property
    def leading(self) -> bool:
        """Always, once acquired: there is no second instance to lead."""
        return self._held

    async def acquire(self) -> bool:
        """Take the lock file.

        Raises:
            ConfigError: another instance runs on this database.
        """
        if self.path is None:
            self._held = True
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another instance already runs on this SQLite database ({self.path.parent});"
                " SQLite supports one instance - use PostgreSQL to run two"
            ) from None
        self._fd, self._held = fd, True
        return True

    def watch(self, on_gain: Callback, on_loss: Callback) -> None:
        """Nothing to watch: a file lock is not lost while the process lives."""

    async def unwatch(self) -> None:
        """Nothing to stop."""

    async def release(self) -> None:
        """Drop the lock (the file stays; it holds nothing)."""
        fd, self._fd, self._held = self._fd, None, False
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_key(url: str, connect_args: dict[str, Any]) -> int:
    """The advisory lock's key: one per database and schema (search_path), so separate
    deployments (or test schemas) on one server do not share a leader."""
    parsed = make_url(url)
    schema = str((connect_args.get("server_settings") or {}).get("search_path", "public"))
    digest = hashlib.sha256(f"ausweg-leader:{parsed.database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgLease:
    """PostgreSQL: a session advisory lock on a dedicated connection (see module doc)."""

    def __init__(
        self,
        url: str,
        connect_args: dict[str, Any] | None = None,
        *,
        retry: float = RETRY_SECONDS,
        check: float = CHECK_SECONDS,
    ) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._args = dict(connect_args or {})
        self.key = lock_key(url, self._args)
        self.retry = retry
        self.check = check
        self._conn: Any = None
        self._leading = False
        self._task: asyncio.Task[None] | None = None
        #: How often leadership was gained and lost (metrics, tests).
        self.gained = 0
        self.lost = 0

    @property
    def leading(self) -> bool:
        """True while this instance holds the lock."""
        return self._leading

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        return await asyncpg.connect(self._dsn, timeout=self.check * 5, **self._args)

    async def acquire(self) -> bool:
        """One attempt; True when this instance now leads. Connection errors count as
        not leading (the watch loop tries again)."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            got = bool(
                await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self.key, timeout=self.check * 5
                )
            )
        except Exception as exc:  # unreachable, refused, timed out: not leading
            log.warning("leader lease: database not reachable (%s)", type(exc).__name__)
            await self._drop()
            return False
        if got:
            self._leading = True
            self.gained += 1
            log.info("leading: this instance polls, syncs, fires follow-ups and purges")
        return got

    async def _alive(self) -> bool:
        try:
            async with asyncio.timeout(self.check):
                await self._conn.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    def watch(self, on_gain: Callback, on_loss: Callback) -> None:
        """In the background: keep trying while following, keep checking while leading."""
        self._task = asyncio.create_task(self._loop(on_gain, on_loss), name="leader-lease")

    async def _loop(self, on_gain: Callback, on_loss: Callback) -> None:
        while True:
            if self._leading:
                await asyncio.sleep(self.check)
                if await self._alive():
                    continue
                self._leading = False
                self.lost += 1
                log.error("leader lease lost (database connection); standing by")
                await self._drop()
                await self._guard(on_loss)
            else:
                await asyncio.sleep(self.retry)
                if await self.acquire():
                    await self._guard(on_gain)

    @staticmethod
    async def _guard(callback: Callback) -> None:
        try:
            await callback()
        except Exception as exc:  # the lease loop must go on
            log.error("leadership change failed: %s", type(exc).__name__)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()  # no goodbye needed: the server frees the lock with it

    async def unwatch(self) -> None:
        """Stop the background loop (stopping: no more taking over); the lease is kept."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def release(self) -> None:
        """Stop watching and give the lease up (another instance takes it at once)."""
        await self.unwatch()
        conn, self._conn = self._conn, None
        self._leading = False
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.check):
                    await conn.close()  # closing the session frees the lock
            if not conn.is_closed():
                conn.terminate()


def lease_for(database_url: str, connect_args: dict[str, Any]) -> Lease:
    """The lease that fits the database: a lock file for SQLite, an advisory lock for
    PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return FileLease(None)
        path = Path(url.database)
        return FileLease(path.with_name(path.name + ".lock"))
    return PgLease(database_url, connect_args)
