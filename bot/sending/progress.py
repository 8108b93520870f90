"""Progress per reply, recorded in the outbox right after each send (group commit).

A reply set used to stay in the outbox whole until its last reply went out, so a
set in flight at a crash was sent again whole. Now each reply is marked as soon as
its platform took it (:func:`storage.outbox.mark_sent`). Marks of all destinations
are written together, one transaction per batch, while the previous batch commits;
a destination's worker waits for its mark before its next send, so after a crash
at most one reply per destination is in doubt (the one whose request was in flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from storage import outbox
from storage.db import Database

log = logging.getLogger(__name__)
#: After an erasure's checkpoint, mark batches checkpoint too for this long.
FOLLOW_SECONDS = 2.0


class Progress:
    """Batches marks of sent replies and commits them; ``finished`` learns of entries
    with nothing left to send (after the commit that says so)."""

    def __init__(self, db: Database, finished: Callable[[str], None]) -> None:
        self._db = db
        self._finished = finished
        self._marks: dict[str, set[int]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        #: The database's last checkpoint seen (an erasure checkpoints; see ``_run``).
        self._checkpoint = db.last_checkpoint
        self._follow_until = 0.0
        #: Batches written (for tests and metrics).
        self.batches = 0
        self.failures = 0

    def mark(self, box: str, position: int) -> asyncio.Future[None]:
        """Record that reply ``position`` of entry ``box`` was sent; the future is done
        once that is committed (or could not be: the reply may then be sent again)."""
        self._marks.setdefault(box, set()).add(position)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return waiter

    async def _run(self) -> None:
        while self._marks:
            marks, self._marks = self._marks, {}
            waiters, self._waiters = self._waiters, []
            finished: set[str] = set()
            try:
                async with self._db.transaction() as session:
                    conn = await session.connection()
                    finished = await outbox.mark_sent(conn, marks)
                self.batches += 1
                await self._follow_checkpoint()
            except Exception as exc:  # the database is away: at worst sent again after a crash
                self.failures += 1
                log.error("recording sent replies failed: %s", type(exc).__name__)
            for box in finished:
                self._finished(box)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _follow_checkpoint(self) -> None:
        """An erasure empties the WAL (SQLite); marks of the replies that follow it (its
        receipt) keep it empty for ``FOLLOW_SECONDS``. Nothing to do on PostgreSQL."""
        if self._db.last_checkpoint is not self._checkpoint:  # not ours: an erasure's
            self._follow_until = time.monotonic() + FOLLOW_SECONDS
        if time.monotonic() < self._follow_until:
            await self._db.checkpoint()
        self._checkpoint = self._db.last_checkpoint

    async def flush(self) -> None:
        """Wait until every mark so far is committed."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def abandon(self) -> None:
        """Drop marks not yet written (tests: the process dies)."""
        if self._task is not None:
            self._task.cancel()
        self._marks.clear()
