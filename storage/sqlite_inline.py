"""An aiosqlite-compatible connection that runs sqlite3 calls inline on the event loop.

Why: aiosqlite hands every call (cursor, execute, fetch, close) to a worker
thread; a unit of work of ~6 statements cost ~25 thread round trips and capped
the core at ~350 messages/s. SQLite in WAL mode with ``synchronous=NORMAL``
answers these statements in microseconds without fsync, so running them on the
loop thread is cheaper than the hand-off (see docs/PERFORMANCE.md). The process
is the only writer, so a lock wait (``busy_timeout``) is not expected.

It plugs into SQLAlchemy's aiosqlite dialect through ``async_creator``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


class _Immediate:
    """Stands in for aiosqlite's request queue: runs the function at once."""

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting side
            future.set_exception(exc)


class InlineCursor:
    """Async facade over a sqlite3 cursor; every method completes immediately."""

    __slots__ = ("_cur",)

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    @property
    def description(self) -> Any:
        """Column description of the last query."""
        return self._cur.description

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        return self._cur.rowcount

    @property
    def lastrowid(self) -> int | None:
        """Row id of the last insert."""
        return self._cur.lastrowid

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        """Run one statement."""
        self._cur.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> InlineCursor:
        """Run one statement for many parameter sets."""
        self._cur.executemany(sql, seq)
        return self

    async def fetchall(self) -> list[Any]:
        """All remaining rows."""
        return self._cur.fetchall()

    async def fetchone(self) -> Any:
        """The next row."""
        return self._cur.fetchone()

    async def fetchmany(self, size: int = 1) -> list[Any]:
        """Up to ``size`` rows."""
        return self._cur.fetchmany(size)

    async def close(self) -> None:
        """Close the cursor."""
        self._cur.close()


class InlineConnection:
    """Async facade over a sqlite3 connection (the subset SQLAlchemy uses)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._tx = _Immediate()

    @property
    def isolation_level(self) -> str | None:
        """The sqlite3 isolation level."""
        return self._conn.isolation_level

    async def cursor(self) -> InlineCursor:
        """A new cursor."""
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        """Run a statement on a fresh cursor."""
        return await InlineCursor(self._conn.cursor()).execute(sql, parameters)

    async def create_function(self, *args: Any, **kw: Any) -> None:
        """Register an SQL function."""
        self._conn.create_function(*args, **kw)

    async def commit(self) -> None:
        """Commit."""
        self._conn.commit()

    async def rollback(self) -> None:
        """Roll back."""
        self._conn.rollback()

    async def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def stop(self) -> None:
        """Terminate (used by SQLAlchemy's pool on hard close)."""
        self._conn.close()


def creator(path: str | Path) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening ``path``."""

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(str(path), check_same_thread=False)
        return InlineConnection(conn)

    return connect
