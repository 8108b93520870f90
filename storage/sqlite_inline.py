"""An aiosqlite-compatible connection that runs sqlite3 calls inline on the event loop.

Why: aiosqlite hands every call (cursor, execute, fetch, close) to a worker
thread; a unit of work of ~6 statements cost ~25 thread round trips and capped
the core at ~350 messages/s. SQLite in WAL mode with ``synchronous=NORMAL``
answers these statements in microseconds without fsync, so running them on the
loop thread is cheaper than the hand-off (see docs/PERFORMANCE.md). The process
is the only writer, so a lock wait (``busy_timeout``) is not expected.

It plugs into SQLAlchemy's aiosqlite dialect through ``async_creator`` and
``module`` (:class:`InlineDBAPI`). Calls that cannot matter to the event loop
(cursor, fetch, close, commit, rollback) return :class:`Done`, which the adapter
takes without SQLAlchemy's greenlet round trip; statement execution stays a
coroutine, so SQLAlchemy still sees the "async" driver it requires.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_only

_T = TypeVar("_T")


class Done(Generic[_T]):
    """An awaitable that already holds its result."""

    __slots__ = ("value",)

    def __init__(self, value: _T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, _T]:
        return self.value
        yield  # unreachable: makes this a generator


def _await(awaitable: Any) -> Any:
    """SQLAlchemy's ``await_`` for this adapter: a finished call costs no switch."""
    if type(awaitable) is Done:
        return awaitable.value
    return await_only(awaitable)


class _Adapted(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    await_ = staticmethod(_await)


class InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI adapter, handing out connections that take :class:`Done`."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        """Open through ``async_creator`` (see :func:`creator`)."""
        creator_fn = kw.pop("async_creator_fn")
        return _Adapted(self, await_only(creator_fn(*arg, **kw)))


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

    def fetchall(self) -> Done[list[Any]]:
        """All remaining rows."""
        return Done(self._cur.fetchall())

    def fetchone(self) -> Done[Any]:
        """The next row."""
        return Done(self._cur.fetchone())

    def fetchmany(self, size: int = 1) -> Done[list[Any]]:
        """Up to ``size`` rows."""
        return Done(self._cur.fetchmany(size))

    def close(self) -> Done[None]:
        """Close the cursor."""
        self._cur.close()
        return Done(None)


class InlineConnection:
    """Async facade over a sqlite3 connection (the subset SQLAlchemy uses)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._tx = _Immediate()

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection itself."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        """The sqlite3 isolation level."""
        return self._conn.isolation_level

    def cursor(self) -> Done[InlineCursor]:
        """A new cursor."""
        return Done(InlineCursor(self._conn.cursor()))

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        """Run a statement on a fresh cursor."""
        return await InlineCursor(self._conn.cursor()).execute(sql, parameters)

    async def create_function(self, *args: Any, **kw: Any) -> None:
        """Register an SQL function."""
        self._conn.create_function(*args, **kw)

    def commit(self) -> Done[None]:
        """Commit."""
        self._conn.commit()
        return Done(None)

    def rollback(self) -> Done[None]:
        """Roll back."""
        self._conn.rollback()
        return Done(None)

    async def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def stop(self) -> None:
        """Terminate (used by SQLAlchemy's pool on hard close)."""
        self._conn.close()


def _raw(connection: Any) -> sqlite3.Connection:
    """The sqlite3 connection under an SQLAlchemy ``Connection`` on this adapter."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, InlineConnection):  # pragma: no cover - another driver
        raise TypeError("not an inline SQLite connection")
    return driver.raw


def inline_savepoints(dialect: Any) -> None:
    """Savepoint statements straight to sqlite3 (no statement compilation, no result).

    A group commit (storage.group_commit) puts every message in a savepoint: through
    SQLAlchemy's execution path the two extra statements cost about as much as a
    query; here they cost microseconds. SQLAlchemy keeps its own savepoint state.
    """

    def savepoint(connection: Any, name: str) -> None:
        _raw(connection).execute(f'SAVEPOINT "{name}"')

    def rollback_to(connection: Any, name: str) -> None:
        _raw(connection).execute(f'ROLLBACK TO SAVEPOINT "{name}"')

    def release(connection: Any, name: str) -> None:
        _raw(connection).execute(f'RELEASE SAVEPOINT "{name}"')

    dialect.do_savepoint = savepoint
    dialect.do_rollback_to_savepoint = rollback_to
    dialect.do_release_savepoint = release


def creator(path: str | Path) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening ``path``."""

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(str(path), check_same_thread=False)
        return InlineConnection(conn)

    return connect
