"""APScheduler 3 wrapper: jobs carry only ids; the database is the truth.

Follow-up jobs are one-off date jobs named ``followup:<id>``; periodic jobs run
escalation and the retention purge. Due times come from the app's clock, so a
fake clock in tests maps onto real delays.

Only follow-ups due within :data:`HORIZON` become jobs: APScheduler keeps every job
in memory (100,000 date jobs cost ~8 s and ~130 MB), so the database stays the truth
and a periodic job (every :data:`REFRESH_MINUTES`) loads the next window from it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from config.clock import Clock

log = logging.getLogger(__name__)

#: Follow-ups due within this horizon are scheduled in memory; later ones wait in the database.
HORIZON = timedelta(hours=6)
#: How often the window is reloaded (well inside the horizon, so nothing due is missed).
REFRESH_MINUTES = 60.0

FollowUpCallback = Callable[[str], Awaitable[None]]
Periodic = Callable[[], Awaitable[object]]


class Scheduler:
    """Schedules follow-ups and periodic jobs on the running event loop."""

    def __init__(self, clock: Clock, horizon: timedelta = HORIZON) -> None:
        self.clock = clock
        self.horizon = horizon
        self._sched = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": None,
            },
        )
        self._fire: FollowUpCallback | None = None

    def start(self, fire_followup: FollowUpCallback) -> None:
        """Start; ``fire_followup(id)`` runs when a follow-up is due."""
        self._fire = fire_followup
        self._sched.start()

    def stop(self) -> None:
        """Stop without waiting for jobs (they are idempotent and rebuilt at start)."""
        if self._sched.running:
            self._sched.shutdown(wait=False)

    def every(self, name: str, minutes: float, job: Periodic) -> None:
        """Run ``job`` periodically (first run after one interval)."""
        self._sched.add_job(job, IntervalTrigger(minutes=minutes), id=name, replace_existing=True)

    def window_end(self) -> datetime:
        """The latest due time (app clock) that is scheduled in memory."""
        return self.clock.now() + self.horizon

    def followup(self, followup_id: str, due: datetime | None) -> None:
        """(Re)schedule or remove a follow-up job; one due beyond the window waits in the
        database until :meth:`window_end` reaches it."""
        job_id = f"followup:{followup_id}"
        if due is None or due > self.window_end():
            if self._sched.get_job(job_id):
                self._sched.remove_job(job_id)
            return
        delay = max(timedelta(0), due - self.clock.now())
        run_at = datetime.now(UTC) + delay
        self._sched.add_job(
            self._run,
            DateTrigger(run_date=run_at),
            args=[followup_id],
            id=job_id,
            replace_existing=True,
        )

    def followup_jobs(self) -> dict[str, datetime]:
        """Scheduled follow-up ids and their run times."""
        return {
            j.id.split(":", 1)[1]: j.next_run_time
            for j in self._sched.get_jobs()
            if j.id.startswith("followup:")
        }

    async def _run(self, followup_id: str) -> None:
        if self._fire is not None:
            try:
                await self._fire(followup_id)
            except Exception as exc:
                log.error("follow-up job failed: %s", type(exc).__name__)
