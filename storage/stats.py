"""Statistics for funders, from the anonymous ``case_events`` rows (counts only).

Every figure is a count of cases; counts below :data:`MIN_COUNT` are shown as
``"<5"``, and never derivable from the totals: where a breakdown has exactly one
hidden cell, the smallest other cell is hidden too (secondary suppression), and a
hidden cell stands for 0 to 4, so even two hidden cells that add up to a small
number do not tell which is which. When the total itself is small, everything is
hidden.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from storage.db import Database
from storage.models import CaseEvent

MIN_COUNT = 5
HIDDEN = "<5"
#: Breakdowns in report order (their names are column headers and chart titles).
DIMENSIONS = ("month", "audience", "scene", "region", "source", "outcome", "first_reply")
#: Waiting time to the first counsellor reply, in days: (label, lowest, highest).
WAIT_BUCKETS = (("0", 0, 0), ("1", 1, 1), ("2-3", 2, 3), ("4-7", 4, 7), (">7", 8, 10**6))


@dataclass(slots=True)
class Breakdown:
    """One dimension: value -> shown count (an int, or :data:`HIDDEN`)."""

    name: str
    cells: dict[str, int | str] = field(default_factory=dict)
    total: int | str = 0


@dataclass(slots=True)
class FunderReport:
    """What ``ausweg report`` shows: opened cases in a period, broken down."""

    start: date
    end: date
    programme: str | None
    breakdowns: dict[str, Breakdown]


def suppress(counts: dict[str, int], total: int | None = None) -> Breakdown:
    """Hide small counts so that none can be worked out from the rest.

    Args:
        counts: the true counts per value (0 allowed).
        total: the total the reader also sees (default: the sum).
    """
    total = sum(counts.values()) if total is None else total
    if total < MIN_COUNT:
        return Breakdown("", dict.fromkeys(counts, HIDDEN), HIDDEN)
    hidden = {k for k, n in counts.items() if n < MIN_COUNT}
    if len(hidden) == 1:  # the one hidden cell would be total minus the shown ones
        rest = sorted((n, k) for k, n in counts.items() if k not in hidden)
        if rest:
            hidden.add(rest[0][1])
    cells: dict[str, int | str] = {k: (HIDDEN if k in hidden else n) for k, n in counts.items()}
    return Breakdown("", cells, total)


def _bucket(days: int) -> str:
    return next(label for label, lo, hi in WAIT_BUCKETS if lo <= days <= hi)


def _months(start: date, end: date) -> list[str]:
    months, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


async def funder_report(
    db: Database, start: date, end: date, programme: str | None = None
) -> FunderReport:
    """Cases opened from ``start`` to ``end`` (inclusive days), per dimension.

    Outcomes and first replies are counted for the cases opened in the period
    whose event still exists; cases transferred in count where they were opened.
    """
    where = [CaseEvent.day >= start, CaseEvent.day <= end]
    if programme:
        where.append(CaseEvent.programme_id == programme)
    cols = (
        CaseEvent.kind,
        CaseEvent.day,
        CaseEvent.audience,
        CaseEvent.scene,
        CaseEvent.region,
        CaseEvent.source,
        CaseEvent.wait_days,
    )
    kinds = CaseEvent.kind.in_(("opened", "first_reply")) | CaseEvent.kind.like("outcome:%")
    async with db.transaction() as s:
        rows = (await s.execute(select(*cols).where(kinds, *where))).all()
    raw: dict[str, Counter[str]] = {d: Counter() for d in DIMENSIONS}
    raw["month"].update(dict.fromkeys(_months(start, end), 0))
    raw["first_reply"].update({label: 0 for label, _, _ in WAIT_BUCKETS})
    opened = 0
    for kind, when, audience, scene, region, source, wait in rows:
        if kind == "opened":
            opened += 1
            raw["month"][f"{when:%Y-%m}"] += 1
            raw["audience"][audience or "unknown"] += 1
            raw["scene"][scene or "unknown"] += 1
            raw["region"][region or "unknown"] += 1
            raw["source"][source or "direct"] += 1
        elif kind == "first_reply" and wait is not None:
            raw["first_reply"][_bucket(wait)] += 1
        elif kind.startswith("outcome:"):
            raw["outcome"][kind.split(":", 1)[1]] += 1
    breakdowns = {}
    for name in DIMENSIONS:
        counts = dict(raw[name])
        shown_total = opened if name in ("month", "audience", "scene", "region", "source") else None
        b = suppress(counts, shown_total)
        b.name = name
        breakdowns[name] = b
    return FunderReport(start, end, programme, breakdowns)
