"""Engine and sessions: SQLite (WAL, secure_delete) by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.models import Base
from storage.sqlite_inline import InlineDBAPI, creator

#: How long a checkpoint after an erasure waits for readers in other processes (ms).
CHECKPOINT_WAIT_MS = 200
#: The usual wait for SQLite's lock (ms); see ``_sqlite_pragmas``.
BUSY_TIMEOUT_MS = 5000


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
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if connect_args:
            kwargs["connect_args"] = connect_args
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
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        #: Seconds the last :meth:`checkpoint` took (None: none ran).
        self.last_checkpoint: float | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

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
