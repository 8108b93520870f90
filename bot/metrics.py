"""Prometheus metrics: counts and gauges that can never single out a person or a case.

Labels are only ``platform``, ``programme`` (a directory id), ``state`` (a case
status) and ``kind`` (a fixed word: a table, an error kind). No id, pseudonym, case
code or text ever becomes a label value (a test parses /metrics and checks it).
Gauges about cases and follow-ups are read from the database when /metrics is
scraped (a few grouped counts, no rows).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select

from storage.models import Case, FollowUp

if TYPE_CHECKING:
    from storage.db import Database

log = logging.getLogger(__name__)

#: Error kinds counted (the only values of ``kind`` on ausweg_errors_total).
ERROR_KINDS = ("handler", "send", "followup", "purge", "retry")


class Metrics:
    """The app's metrics in a registry of their own (one per app; tests run many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_in = Counter(
            "ausweg_messages_in", "Messages received", ["platform"], registry=r
        )
        self.messages_out = Counter(
            "ausweg_messages_out", "Messages handed to a platform", ["platform"], registry=r
        )
        self.send_retries = Counter(
            "ausweg_send_retries",
            "Replies kept to be sent again (platform unreachable)",
            ["platform"],
            registry=r,
        )
        self.errors = Counter("ausweg_errors", "Errors by kind", ["kind"], registry=r)
        self.purged = Counter(
            "ausweg_purged_rows", "Rows deleted by the retention purge", ["kind"], registry=r
        )
        self.purges = Counter("ausweg_purges", "Purge runs", registry=r)
        self.followups_fired = Counter("ausweg_followups_fired", "Follow-up jobs run", registry=r)
        self.leader = Gauge("ausweg_leader", "1 while this instance leads", registry=r)
        self.outbox_waiting = Gauge(
            "ausweg_outbox_waiting", "Reply sets waiting for an unreachable platform", registry=r
        )
        self.cases = Gauge(
            "ausweg_cases", "Cases by programme and state", ["programme", "state"], registry=r
        )
        self.queue_wait = Gauge(
            "ausweg_queue_wait_seconds",
            "Longest wait of an unclaimed case (to the hour the data keeps)",
            ["programme"],
            registry=r,
        )
        self.urgent_waiting = Gauge(
            "ausweg_urgent_waiting", "Urgent cases not yet claimed", ["programme"], registry=r
        )
        self.followups_due = Gauge(
            "ausweg_followups_due", "Follow-ups due and not yet sent", registry=r
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)  # every series present from the start

    def error(self, kind: str) -> None:
        """Count one error of a known kind."""
        self.errors.labels(kind=kind if kind in ERROR_KINDS else "handler").inc()

    async def refresh(self, db: Database, now: datetime, programmes: set[str]) -> None:
        """Read the case and follow-up gauges from the database (grouped counts only).

        Programme ids not in ``programmes`` (the directory) are reported as ``other``.
        """

        def programme(value: str) -> str:
            return value if value in programmes else "other"

        async with db.transaction() as s:
            by_state = (
                await s.execute(
                    select(Case.programme_id, Case.status, func.count()).group_by(
                        Case.programme_id, Case.status
                    )
                )
            ).all()
            waiting = (
                await s.execute(
                    select(Case.programme_id, func.min(Case.opened_at), func.count())
                    .where(Case.status.in_(("new", "waiting")), Case.claimed_by.is_(None))
                    .group_by(Case.programme_id)
                )
            ).all()
            urgent = (
                await s.execute(
                    select(Case.programme_id, func.count())
                    .where(
                        Case.urgent.is_(True),
                        Case.claimed_by.is_(None),
                        Case.status != "closed",
                    )
                    .group_by(Case.programme_id)
                )
            ).all()
            due = (
                await s.execute(
                    select(func.count()).select_from(FollowUp).where(FollowUp.due_at <= now)
                )
            ).scalar_one()
        self.cases.clear()
        for prog, state, count in by_state:
            self.cases.labels(programme=programme(prog), state=state).inc(count)
        self.queue_wait.clear()
        self.urgent_waiting.clear()
        for prog in programmes:
            self.urgent_waiting.labels(programme=prog).set(0)
        longest: dict[str, float] = {}
        for prog, oldest, _ in waiting:
            if oldest is not None:
                name = programme(prog)
                longest[name] = max(longest.get(name, 0.0), (now - oldest).total_seconds())
        for name, wait in longest.items():
            self.queue_wait.labels(programme=name).set(max(0.0, wait))
        for prog, count in urgent:
            self.urgent_waiting.labels(programme=programme(prog)).inc(count)
        self.followups_due.set(int(due))
