"""Engine and sessions: SQLite (WAL, secure_delete) by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.models import Base
from storage.sqlite_inline import InlineDBAPI, creator, inline_savepoints

#: How long a checkpoint after an erasure waits for readers in other processes (ms).
CHECKPOINT_WAIT_MS = 200
#: The usual wait for SQLite's lock (ms); see ``_sqlite_pragmas``.
BUSY_TIMEOUT_MS = 5000
#: Async drivers for URLs written without one (or with a blocking one).
_ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
_BLOCKING_DRIVERS = {"", "psycopg2", "pg8000", "pysqlite"}
#: Seconds to wait for a PostgreSQL server before giving up on a connection.
CONNECT_TIMEOUT = 10
#: PostgreSQL error classes that no retry can fix: a wrong name or password.
_FATAL_SQLSTATES = {"3D000": "no such database", "28P01": "wrong password", "28000": "refused"}


def normalise_url(url: str) -> str:
    """The URL with the async driver this project uses.

    ``postgres://`` and ``postgresql://`` (the forms hosting panels and ``psql`` use)
    become ``postgresql+asyncpg://``; ``sqlite://`` becomes ``sqlite+aiosqlite://``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    backend, _, driver = scheme.partition("+")
    backend = "postgresql" if backend.lower() in {"postgres", "postgresql"} else backend
    wanted = _ASYNC_DRIVERS.get(backend.lower())
    if wanted is None:
        return url
    if driver.lower() in _BLOCKING_DRIVERS:
        driver = wanted
    return f"{backend}+{driver}://{rest}"


def display_url(url: str) -> str:
    """The normalised URL without its password (for output and logs)."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what caused it and what it wraps (SQLAlchemy's ``orig``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return seen


def unavailable_reason(exc: BaseException) -> str | None:
    """Why a database could not be opened at all, in one line; None for other errors.

    Covers a missing database, a wrong user or password, an unreachable or silent
    server and an SQLite file that cannot be opened.
    """
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str) and state in _FATAL_SQLSTATES:
            return f"{_FATAL_SQLSTATES[state]}: {e}"
        if isinstance(e, TimeoutError):
            return f"the server did not answer within {CONNECT_TIMEOUT} s"
        if isinstance(e, OSError):
            return f"cannot connect ({e.strerror or e})"
        if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
            return f"cannot open the SQLite file ({e})"
    return None


def is_disconnect(exc: BaseException) -> bool:
    """The connection broke (server restart, killed backend, network): worth a retry."""
    for e in _chain(exc):
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
        name = type(e).__name__
        if name in {"ConnectionDoesNotExistError", "ConnectionFailureError"}:
            return True
        if getattr(e, "sqlstate", None) in {"57P01", "57P02", "57P03", "08000", "08003", "08006"}:
            return True  # admin shutdown / crash shutdown / cannot connect now / lost
        if isinstance(e, ConnectionError):
            return True
        if name == "InterfaceError" and "connection is closed" in str(e):
            return True
    return False


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "secure_delete=ON",
        f"busy_timeout={BUSY_TIMEOUT_MS}",
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


class Database:
    """Owns the engine and hands out transactional sessions."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        connect_args: dict[str, Any] | None = None,
        inline_sqlite: bool = True,
    ) -> None:
        url = normalise_url(url)
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if connect_args:
            kwargs["connect_args"] = connect_args
        if not self.is_sqlite:
            # A connection the server dropped while idle in the pool is replaced on
            # checkout instead of failing the next unit of work.
            kwargs["pool_pre_ping"] = True
            if self.url.get_driver_name() == "asyncpg":
                kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT, **(connect_args or {})}
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            path = Path(self.url.database)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            if inline_sqlite:
                # One connection: statements run on the loop thread, so a second
                # connection waiting on SQLite's write lock would block the loop.
                kwargs.update(
                    async_creator=creator(path), module=InlineDBAPI(), pool_size=1, max_overflow=0
                )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            if inline_sqlite:
                inline_savepoints(self.engine.sync_engine.dialect)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        #: Seconds the last :meth:`checkpoint` took (None: none ran).
        self.last_checkpoint: float | None = None

    @property
    def display(self) -> str:
        """The URL without its password."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

    async def begin_group(self, conn: AsyncConnection) -> None:
        """Begin the transaction of a group commit (see storage.group_commit) explicitly.

        SQLite: Python's sqlite3 begins a transaction only before a write, and a
        SAVEPOINT outside a transaction starts one whose RELEASE commits it; an explicit
        ``BEGIN`` keeps every unit's savepoint inside the one transaction. PostgreSQL
        (asyncpg) begins on the first statement anyway.
        """
        if self.is_sqlite:
            await conn.exec_driver_sql("BEGIN")

    async def maintain(self, *, vacuum: bool = False, tables: Sequence[str] = ()) -> None:
        """Make deletions physical where the backend allows it.

        SQLite: optional ``VACUUM`` (rebuilds the file, drops free pages), then
        ``wal_checkpoint(TRUNCATE)``: deleted rows (already zeroed by
        ``secure_delete``) reach the main file and the WAL shrinks to zero bytes.
        PostgreSQL: optional plain ``VACUUM`` of ``tables`` (dead tuples become
        reusable; autovacuum does the same on its own schedule).
        """
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                if vacuum:
                    await conn.exec_driver_sql("VACUUM")
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            elif vacuum and tables:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.exec_driver_sql("VACUUM " + ", ".join(tables))

    async def checkpoint(self) -> bool:
        """SQLite: move the WAL into the main file and truncate it to zero bytes.

        Run right after an erasure committed: the deleted rows are zeroed in their
        newest page (``secure_delete``), but older copies of those pages stay in the
        WAL until a checkpoint, and in its tail even after SQLite's own (passive)
        checkpoints. It costs about one copy of the WAL's pages (milliseconds; see
        docs/PERFORMANCE.md). A reader in another process (a backup) can keep it from
        finishing: it then waits at most ``CHECKPOINT_WAIT_MS`` instead of the usual
        lock timeout, since it runs on the event loop; the hourly purge tries again.

        Returns whether it finished (always True on PostgreSQL, where it does nothing:
        see docs/PRIVACY.md on VACUUM and WAL retention).
        """
        if not self.is_sqlite:
            return True
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
            try:
                result = await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                row = result.first()
            finally:
                await conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.last_checkpoint = time.perf_counter() - started
        return row is not None and row[0] == 0

    async def create_all(self) -> None:
        """Create tables directly (tests); production uses :func:`storage.migrate.upgrade`."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def dispose(self) -> None:
        """Close all connections."""
        await self.engine.dispose()
