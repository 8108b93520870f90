"""Scheduled work of the leader: follow-ups, escalations, retention, metrics.

A mixin of :class:`bot.app.App` (the composition root): each job runs one unit of
work through the router and hands its replies to the send queues like any update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from bot.metrics import Metrics
from bot.router import Handled, Router
from bot.scheduler import Scheduler
from config.clock import Clock
from config.messages import OutboundMessage, OutKind
from config.settings import Settings
from handlers.casework.inactivity import InactivityReport, close_inactive
from storage.db import Database
from storage.keystore import KeyStore
from storage.models import FollowUp
from storage.repositories import JobChange
from storage.retention import PurgeReport, purge
from storage.threads import ThreadMap

log = logging.getLogger(__name__)
#: The hourly purge also runs VACUUM once a day.
VACUUM_EVERY = 24


class Jobs:
    """Scheduler callbacks (mixed into App, which provides the attributes below)."""

    settings: Settings
    clock: Clock
    db: Database | None
    keystore: KeyStore | None
    router: Router | None
    scheduler: Scheduler | None
    metrics: Metrics
    threads: ThreadMap
    last_purge: PurgeReport | None
    last_inactivity: InactivityReport | None
    _purges: int

    async def _finish(self, handled: Handled) -> None:
        raise NotImplementedError

    async def _send(self, out: Sequence[OutboundMessage]) -> None:
        raise NotImplementedError

    async def fire_followup(self, followup_id: str) -> None:
        """Scheduler callback: send one follow-up if it is due."""
        if self.router is not None:
            self.metrics.followups_fired.inc()
            try:
                handled = await self.router.run("followup", followup_id)
            except Exception:
                self.metrics.error("followup")
                raise
            await self._finish(handled)

    async def escalate(self) -> None:
        """Scheduler callback: remind staff of overdue cases."""
        if self.router is not None:
            await self._finish(await self.router.run("escalate"))

    async def escalate_urgent(self) -> None:
        """Scheduler callback: unclaimed urgent cases past their window to the coordinator."""
        if self.router is not None:
            await self._finish(await self.router.run("urgent"))

    async def purge(self, *, vacuum: bool | None = None) -> None:
        """Scheduler callback: retention by the app's clock (see storage.retention).

        Warns about and closes inactive cases (their messages go to the send queues),
        purges expired rows, removes jobs of purged follow-ups. Reports land in
        ``last_inactivity`` / ``last_purge``; failures are logged by type only and
        retried at the next run.
        """
        if self.db is None or self.keystore is None or self.router is None:
            return
        now = self.clock.now()
        self._purges += 1
        try:
            inactive = await close_inactive(
                self.db, self.keystore, self.router.directory, self.settings.retention, now
            )
            self._apply_jobs(inactive.jobs)
            await self._send(inactive.out)
            if vacuum is None:
                vacuum = self._purges % VACUUM_EVERY == 0
            report = await purge(self.db, self.keystore, now, vacuum=vacuum)
        except Exception as exc:
            log.error("purge failed: %s", type(exc).__name__)
            self.metrics.error("purge")
            return
        self.metrics.purges.inc()
        for kind, count in report.counts.items():
            self.metrics.purged.labels(kind=kind).inc(count)
        self._apply_jobs([JobChange(fid, None) for fid in report.followup_ids])
        forget = [OutboundMessage(room, "", kind=OutKind.FORGET) for room in report.rooms]
        for code in report.case_codes:  # the person's chat on platforms with rooms, threads
            forget += [
                OutboundMessage(thread, "", kind=OutKind.FORGET)
                for thread in self.threads.threads_of(code)
            ]
            self.threads.forget(code)
        await self._send(forget)
        self.last_inactivity, self.last_purge = inactive, report
        log.info(
            "purge: %d rows, %d keys, %d warned, %d closed inactive, %.2f s",
            report.total,
            report.counts["data_keys"],
            inactive.warned,
            inactive.closed,
            report.seconds,
        )

    def _apply_jobs(self, jobs: Sequence[JobChange]) -> None:
        if self.scheduler is not None:
            for job in jobs:
                self.scheduler.followup(job.followup_id, job.due)

    async def run_due_followups(self) -> int:
        """Fire every follow-up that is due by the app's clock; returns how many ran."""
        if self.db is None:
            return 0
        async with self.db.transaction() as s:
            rows = await s.execute(select(FollowUp.id).where(FollowUp.due_at <= self.clock.now()))
            due = [fid for (fid,) in rows]
        for fid in due:
            await self.fire_followup(fid)
        return len(due)

    async def load_followup_window(self) -> int:
        """Schedule the stored follow-ups due within the scheduler's window (at start, after
        a restart, and periodically); returns how many. One indexed range query."""
        if self.db is None or self.scheduler is None:
            return 0
        end = self.scheduler.window_end()
        async with self.db.transaction() as s:
            rows = (
                await s.execute(select(FollowUp.id, FollowUp.due_at).where(FollowUp.due_at <= end))
            ).all()
        for fid, due in rows:
            self.scheduler.followup(fid, due)
        return len(rows)
