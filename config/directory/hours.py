"""Office hours: weekly spans in a time zone, closed on public holidays and set dates.

Urgent cases wait for the coordinator only during open (staffed) time.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import cache, cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import holidays
from pydantic import AfterValidator, Field, field_validator

from config.directory.fields import Strict
from config.vocabulary import STATES

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")


@cache
def _public_holidays(state: str, year: int) -> frozenset[date]:
    """Public holidays of a German state in a year (computed once per process)."""
    return frozenset(holidays.country_holidays("DE", subdiv=state, years=year))


def _check_span(span: str) -> str:
    if not _SPAN.match(span):
        raise ValueError(f"'{span}' is not HH:MM-HH:MM (00:00 to 24:00)")
    start, end = span.split("-")
    if end != "24:00" and end <= start:
        raise ValueError(f"'{span}' ends before it starts (split spans that cross midnight)")
    return span


Span = Annotated[str, AfterValidator(_check_span)]


class OfficeHours(Strict):
    """Weekly hours in a time zone, closed on public holidays of a state."""

    timezone: str = "Europe/Berlin"
    weekly: dict[Weekday, list[Span]] = Field(default_factory=dict)
    holidays_state: str | None = None
    closed_dates: list[date] = Field(default_factory=list)

    @field_validator("holidays_state")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is not None and value not in STATES:
            raise ValueError(f"unknown state '{value}' (use one of {', '.join(STATES)})")
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        """The time zone object."""
        return ZoneInfo(self.timezone)

    def _closed_on(self, day: date) -> bool:
        if day in self.closed_dates:
            return True
        if self.holidays_state is None:
            return False
        return day in _public_holidays(self.holidays_state, day.year)

    def _spans_on(self, day: date) -> list[tuple[time, time]]:
        if self._closed_on(day):
            return []
        out = []
        for span in self.weekly.get(WEEKDAYS[day.weekday()], []):
            start, end = span.split("-")
            end_t = time.max if end == "24:00" else time.fromisoformat(end)
            out.append((time.fromisoformat(start), end_t))
        return out

    def is_open(self, when: datetime) -> bool:
        """Whether the programme is staffed at ``when`` (aware datetime)."""
        local = when.astimezone(self.zone)
        return any(s <= local.time() < e for s, e in self._spans_on(local.date()))

    def next_opening(self, when: datetime) -> datetime | None:
        """The next moment the programme opens (``when`` itself if open), within 3 weeks."""
        local = when.astimezone(self.zone)
        for offset in range(22):
            day = local.date() + timedelta(days=offset)
            for start, end in self._spans_on(day):
                begin = datetime.combine(day, start, self.zone)
                finish = datetime.combine(day, end, self.zone)
                if local < finish:
                    return max(begin, local)
        return None

    def after_open_time(self, when: datetime, minutes: int) -> datetime:
        """The moment ``minutes`` of open (staffed) time have passed since ``when``.

        Closed time does not count: a case that turns urgent at 16:55 with a 15-minute
        window in hours ending at 17:00 is due ten minutes after the next opening.
        Without an opening in the next three weeks, wall-clock time counts.
        """
        left = timedelta(minutes=minutes)
        cursor = when
        while left > timedelta(0):
            start = self.next_opening(cursor)
            if start is None:
                return cursor + left
            local = start.astimezone(self.zone)
            end = next(
                datetime.combine(local.date(), e, self.zone)
                for s, e in self._spans_on(local.date())
                if datetime.combine(local.date(), s, self.zone)
                <= local
                < datetime.combine(local.date(), e, self.zone)
            )
            if end.time() == time.max:  # "24:00": the span ends at midnight
                end = datetime.combine(local.date() + timedelta(days=1), time(), self.zone)
            step = min(left, end - local)
            left -= step
            cursor = local + step
        return cursor.astimezone(when.tzinfo)
