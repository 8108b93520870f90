"""Group commit: under load several units of work share one transaction.

A unit of work (one inbound message) is handed to :meth:`GroupCommit.run` as a
function of its :class:`~storage.repositories.UnitOfWork`. Units that arrive while
the committer is busy, or in the same turn of the event loop, are run one after the
other on one connection, each inside its own SAVEPOINT, and committed together:

* per-unit isolation: a unit that raises is rolled back to its savepoint only (its
  caller gets the exception, the router answers with its kind fallback); the others
  commit;
* a result is handed back only after the shared COMMIT (an update counts as handled
  only once its transaction committed: de-duplication and outbox unchanged);
* a unit alone runs as before, without savepoints (no added statement, no wait);
* new data keys of all units go to the key store in one transaction before the
  commit, shredded keys are destroyed after it (the order of :func:`unit`);
* a broken connection or a failed COMMIT fails every unit of the batch with that
  error (nothing of them was stored); the router tries each again.

Why: per message the connection checkout, the commit and the pool's reset cost
about a quarter of the core's time; on PostgreSQL every commit is a round trip and
a WAL flush. See docs/PERFORMANCE.md ("Core").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from storage import outbox
from storage.db import Database, is_disconnect
from storage.keystore import KeyStore
from storage.repositories import UnitOfWork, after_commit, unit

log = logging.getLogger(__name__)
_T = TypeVar("_T")
#: Most units in one transaction: bounds the wait of the last one in a batch.
MAX_BATCH = 32
Work = Callable[[UnitOfWork], Awaitable[_T]]


@dataclass(slots=True)
class _Item(Generic[_T]):
    work: Work[_T]
    future: asyncio.Future[_T]


@dataclass(slots=True)
class Stats:
    """How the units were committed (for the benchmark and the tests)."""

    units: int = 0
    batches: int = 0
    alone: int = 0
    rolled_back: int = 0
    largest: int = 0


class GroupCommit:
    """Runs units of work; several share one transaction when they arrive together.

    Args:
        db: the main database.
        keystore: the key store (new keys before, shreds after the commit).
        now: the clock (one ``now`` per transaction).
        prologue: run first in every transaction (the router deletes the outbox
            entries of replies already handed over); a failure skips it.
        max_batch: most units per transaction.
    """

    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        now: Callable[[], datetime],
        *,
        prologue: Callable[[UnitOfWork], Awaitable[None]] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.db = db
        self.keystore = keystore
        self.now = now
        self.prologue = prologue
        self.max_batch = max_batch
        self.stats = Stats()
        self._pending: deque[_Item[Any]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Work[_T]) -> _T:
        """Run ``work`` in a transaction; returns its result once that committed.

        The unit waits at most for the batch in progress: the committer starts in the
        next turn of the event loop, taking every unit that arrived by then.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._pending.append(_Item(work, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[_Item[Any]] = []
        try:
            while self._pending:
                batch = []
                while self._pending and len(batch) < self.max_batch:
                    item = self._pending.popleft()
                    if not item.future.done():  # the caller gave up (cancelled) meanwhile
                        batch.append(item)
                if len(batch) == 1:
                    await self._alone(batch[0])
                elif batch:
                    await self._together(batch)
        except BaseException:
            for item in batch:
                if not item.future.done():
                    item.future.cancel()
            raise
        finally:
            self._drainer = None
            if self._pending:  # cancelled with units waiting: a new committer takes them
                self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _alone(self, item: _Item[Any]) -> None:
        """One unit in its own transaction (exactly as :func:`unit` runs it)."""
        self.stats.units += 1
        self.stats.alone += 1
        try:
            async with unit(self.db, self.keystore, self.now()) as uow:
                if self.prologue is not None:
                    await self.prologue(uow)
                result = await item.work(uow)
        except Exception as exc:
            _settle(item, exc=exc)
            return
        _settle(item, result=result)

    async def _together(self, batch: list[_Item[Any]]) -> None:
        """Several units in one transaction, each in a savepoint."""
        stats = self.stats
        stats.units += len(batch)
        stats.batches += 1
        stats.largest = max(stats.largest, len(batch))
        now = self.now()
        done: list[tuple[_Item[Any], UnitOfWork, Any]] = []
        failed: list[tuple[_Item[Any], Exception]] = []
        try:
            async with self.db.engine.connect() as conn:
                await self.db.begin_group(conn)
                head = UnitOfWork(conn, self.keystore, now)
                if self.prologue is not None and not await _in_savepoint(
                    head, self.prologue
                ):
                    head = UnitOfWork(conn, self.keystore, now)  # skipped: nothing of it
                units = [head]
                for item in batch:
                    uow = UnitOfWork(conn, self.keystore, now)
                    try:
                        result = await _savepoint(uow, item.work)
                    except Exception as exc:
                        if is_disconnect(exc):
                            raise
                        stats.rolled_back += 1
                        failed.append((item, exc))
                        continue
                    units.append(uow)
                    done.append((item, uow, result))
                shredding = [k for u in units for k in u.keys.shredding]
                if shredding:  # waiting replies only these keys open: gone with them
                    await outbox.drop_covered(conn, shredding)
                await self.keystore.store([k for u in units for k in u.keys.take_new()], now)
                await conn.commit()
        except Exception as exc:  # the connection broke or the commit failed: none stored
            for item in batch:
                _settle(item, exc=exc)
            return
        # Committed: whatever fails from here on is logged, and every unit still gets
        # its result (a cancelled one would count as not handled and pin the platform).
        await after_commit(self.db, self.keystore, units)
        for item, _, value in done:
            _settle(item, result=value)
        for item, error in failed:
            _settle(item, exc=error)


async def _savepoint(uow: UnitOfWork, work: Work[_T]) -> _T:
    """Run ``work`` inside a SAVEPOINT; on an exception roll back to it and re-raise."""
    nested = await uow.conn.begin_nested()
    try:
        result = await work(uow)
        await uow.flush()
        await nested.commit()
        return result
    except BaseException:
        if nested.is_active:
            await nested.rollback()
        raise
    finally:
        await uow.close()


async def _in_savepoint(uow: UnitOfWork, work: Callable[[UnitOfWork], Awaitable[None]]) -> bool:
    """:func:`_savepoint` that logs a failure instead of raising (a disconnect raises)."""
    try:
        await _savepoint(uow, work)
    except Exception as exc:
        if is_disconnect(exc):
            raise
        log.error("batch prologue failed: %s", type(exc).__name__)
        return False
    return True


def _settle(item: _Item[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    if item.future.done():  # the caller was cancelled
        return
    if exc is not None:
        item.future.set_exception(exc)
    else:
        item.future.set_result(result)
