"""APScheduler 3 wrapper: jobs carry only ids; the database is the truth.

Follow-up jobs are one-off date jobs named ``followup:<id>``; periodic jobs run
escalation and the retention purge. Due times come from the app's clock, so a
fake clock in tests maps onto real delays.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock

log = logging.getLogger(__name__)

FollowUpCallback = Callable[[str], Awaitable[None]]
Periodic = Callable[[], Awaitable[None]]


class Scheduler:
    """Schedules follow-ups and periodic jobs on the running event loop."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
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

    def followup(self, followup_id: str, due: datetime | None) -> None:
        """(Re)schedule or remove a follow-up job."""
        job_id = f"followup:{followup_id}"
        if due is None:
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
