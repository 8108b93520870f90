"""Time source. Tests use :class:`FakeClock`; stored times are coarse (see :func:`hour`).

Shared by every layer, so it lives in the lowest one (config; docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current aware UTC time."""

    def now(self) -> datetime:
        """The current time (aware, UTC)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time (aware, UTC)."""
        return datetime.now(UTC)


class FakeClock:
    """A clock tests can move."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 17, 10, 0, tzinfo=UTC)

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def advance(self, **delta: float) -> None:
        """Move forward by a ``timedelta(**delta)``."""
        self._now += timedelta(**delta)

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (aware)."""
        self._now = when


def hour(when: datetime) -> datetime:
    """Round down to the hour: stored timestamps need no more precision."""
    return when.replace(minute=0, second=0, microsecond=0)


def day(when: datetime) -> date:
    """The UTC day of a moment, for statistics."""
    return when.astimezone(UTC).date()
