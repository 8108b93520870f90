"""Abuse resistance: rate limits per person and overall, and a cap on new cases.

Everything here is in memory and decided before any database work, so a flood
costs little. Crisis messages are never limited (the router answers them first).
A limited person is told kindly, at most once per ``notice_every`` seconds, so the
bot does not amplify a flood.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Limits; defaults leave ordinary use untouched."""

    person_burst: float = 20.0
    person_per_second: float = 0.5
    new_contacts_burst: float = 60.0
    new_contacts_per_second: float = 1.0
    cases_per_programme_per_hour: int = 30
    notice_every: float = 30.0
    max_tracked: int = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    noticed: float = field(default=-1e18)


class TokenBuckets:
    """Token buckets keyed by an opaque string, bounded in memory (LRU)."""

    def __init__(self, burst: float, rate: float, max_keys: int) -> None:
        self.burst, self.rate, self.max_keys = burst, rate, max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
        return b

    def take(self, key: str, now: float) -> bool:
        """Spend one token; False when the key is over its limit."""
        b = self._bucket(key, now)
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

    def should_notice(self, key: str, now: float, every: float) -> bool:
        """Whether to tell a limited key (once per ``every`` seconds)."""
        b = self._bucket(key, now)
        if now - b.noticed >= every:
            b.noticed = now
            return True
        return False

    def __len__(self) -> int:
        return len(self._buckets)


class Limits:
    """The limits the router consults (time is passed in: monotonic seconds)."""

    def __init__(self, settings: LimitSettings | None = None) -> None:
        self.settings = s = settings or LimitSettings()
        self.people = TokenBuckets(s.person_burst, s.person_per_second, s.max_tracked)
        self.newcomers = TokenBuckets(s.new_contacts_burst, s.new_contacts_per_second, 1)
        self._cases: dict[str, list[float]] = {}
        self.blocked = 0

    def allow_message(self, pseudonym: str, now: float) -> bool:
        """A person's message within their rate."""
        ok = self.people.take(pseudonym, now)
        self.blocked += 0 if ok else 1
        return ok

    def allow_newcomer(self, now: float) -> bool:
        """A first message from an unknown account within the global rate."""
        ok = self.newcomers.take("all", now)
        self.blocked += 0 if ok else 1
        return ok

    def notice(self, pseudonym: str, now: float) -> bool:
        """Whether a limited person should be told now."""
        return self.people.should_notice(pseudonym, now, self.settings.notice_every)

    def allow_case(self, programme_id: str, now: float) -> bool:
        """A new case for a programme within its hourly cap (urgent cases are not counted)."""
        window = [t for t in self._cases.get(programme_id, []) if now - t < 3600.0]
        if len(window) >= self.settings.cases_per_programme_per_hour:
            self._cases[programme_id] = window
            return False
        window.append(now)
        self._cases[programme_id] = window
        return True
