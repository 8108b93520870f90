"""Abuse resistance: rate limits per person and overall, caps on new cases and held text.

Everything here is in memory, so a flood costs little. Crisis numbers are never
limited: whoever writes a crisis word gets them at once, even when nothing else is
done for them (no contact over the newcomer limit, no case over a cap).
A limited person is told kindly, at most once per ``notice_every`` seconds, so the
bot does not amplify a flood.

Case caps (privacy check 20): per programme and hour, urgent cases under their own
cap (a threat word must not open unlimited cases, nor crowd out everyone else), and
per account (keyed by pseudonym, kept in memory for ``account_window`` seconds, so an
account that erases itself and starts again does not start from zero).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Limits; defaults leave ordinary use untouched.

    Attributes:
        cases_per_programme_per_hour: new non-urgent cases per programme and hour.
        urgent_cases_per_programme_per_hour: new urgent cases per programme and hour.
        cases_per_account: new cases one account may open within ``account_window``
            seconds (erasure does not reset it).
        held_messages_per_case: messages kept for an unclaimed case.
        held_bytes_per_case: stored size of those messages (about as many characters).
        staff_hint_every: seconds between two "not passed on" hints in one staff room
            (team chat there is normal; a hint on every line becomes noise).
    """

    person_burst: float = 20.0
    person_per_second: float = 0.5
    new_contacts_burst: float = 60.0
    new_contacts_per_second: float = 1.0
    cases_per_programme_per_hour: int = 30
    urgent_cases_per_programme_per_hour: int = 10
    cases_per_account: int = 3
    account_window: float = 86_400.0
    held_messages_per_case: int = 30
    held_bytes_per_case: int = 16_000
    notice_every: float = 30.0
    staff_hint_every: float = 600.0
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


class SlidingWindows:
    """Event times per key within ``window`` seconds, bounded in memory.

    Keys are kept in order of their newest event, so keys whose window passed are
    dropped from the front: a key is forgotten once its window is over.
    """

    def __init__(self, window: float, max_keys: int) -> None:
        self.window, self.max_keys = window, max_keys
        self._times: OrderedDict[str, list[float]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._times:
            key, times = next(iter(self._times.items()))
            if now - times[-1] < self.window and len(self._times) <= self.max_keys:
                return
            del self._times[key]

    def count(self, key: str, now: float) -> int:
        """Events of ``key`` within the window."""
        self._expire(now)
        times = self._times.get(key)
        if times is None:
            return 0
        times[:] = [t for t in times if now - t < self.window]
        return len(times)

    def add(self, key: str, now: float) -> None:
        """Record an event of ``key``."""
        self._times.setdefault(key, []).append(now)
        self._times.move_to_end(key)
        self._expire(now)

    def __len__(self) -> int:
        return len(self._times)


class Limits:
    """The limits the router consults (time is passed in: monotonic seconds)."""

    def __init__(self, settings: LimitSettings | None = None) -> None:
        self.settings = s = settings or LimitSettings()
        self.people = TokenBuckets(s.person_burst, s.person_per_second, s.max_tracked)
        self.newcomers = TokenBuckets(s.new_contacts_burst, s.new_contacts_per_second, 1)
        self._cases = SlidingWindows(3600.0, s.max_tracked)
        self.accounts = SlidingWindows(s.account_window, s.max_tracked)
        #: Unclaimed cases whose person was told that no more messages are kept.
        self._held_told: OrderedDict[str, None] = OrderedDict()
        #: When each staff room last got the "not passed on" hint.
        self._staff_hints = TokenBuckets(1.0, 0.0, s.max_tracked)
        #: When a limited account's crisis message last went the whole way.
        self._crisis = TokenBuckets(1.0, 0.0, s.max_tracked)
        #: Accounts that used their one urgent request past the account cap (per window).
        self._urgent_exempt = SlidingWindows(s.account_window, s.max_tracked)
        #: Urgent requests a cap refused, per programme and hour (staff are told).
        self._urgent_refused = SlidingWindows(3600.0, s.max_tracked)
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

    def crisis_pass(self, pseudonym: str, now: float) -> bool:
        """Whether a rate-limited account's crisis message is handled in full now.

        Once per ``notice_every`` seconds: the case is marked urgent and staff alerted,
        but a burst of crisis words cannot turn the limit into an amplifier.
        """
        return self._crisis.should_notice(pseudonym, now, self.settings.notice_every)

    def allow_case(self, programme_id: str, now: float, *, urgent: bool = False) -> bool:
        """A new case for a programme within its hourly cap (urgent ones: their own cap)."""
        key = f"{programme_id}\x00{'urgent' if urgent else 'case'}"
        cap = (
            self.settings.urgent_cases_per_programme_per_hour
            if urgent
            else self.settings.cases_per_programme_per_hour
        )
        if self._cases.count(key, now) >= cap:
            self.blocked += 1
            return False
        self._cases.add(key, now)
        return True

    def case_refusal(
        self, programme_id: str, pseudonym: str, now: float, *, urgent: bool
    ) -> str | None:
        """Why a new case may not open now (a catalog key), or None - then it is counted.

        Every path that opens a case asks this first (see ``CaseService.open_case``).
        """
        exempt = False
        if self.accounts.count(pseudonym, now) >= self.settings.cases_per_account:
            # One urgent request per window gets past the account's own cap (someone who
            # erases after every talk, as advised, may be in danger later the same day);
            # it still counts against the programme's urgent cap.
            exempt = urgent and self._urgent_exempt.count(pseudonym, now) == 0
            if not exempt:
                self.blocked += 1
                return "limits.account_cap"
        if not self.allow_case(programme_id, now, urgent=urgent):
            return "limits.case_cap"
        self.accounts.add(pseudonym, now)
        if exempt:
            self._urgent_exempt.add(pseudonym, now)
        return None

    def urgent_refused(self, programme_id: str, now: float) -> int:
        """Count an urgent request a cap refused; returns the programme's count this hour."""
        self._urgent_refused.add(programme_id, now)
        return self._urgent_refused.count(programme_id, now)

    def held_full(self, count: int, size: int) -> bool:
        """Whether one more message may not be held: ``count`` held now, ``size`` the
        stored bytes including the new message."""
        s = self.settings
        return count >= s.held_messages_per_case or size > s.held_bytes_per_case

    def tell_held_full(self, case_id: str) -> bool:
        """True the first time for a case (the person is told once)."""
        if case_id in self._held_told:
            return False
        self._held_told[case_id] = None
        while len(self._held_told) > self.settings.max_tracked:
            self._held_told.popitem(last=False)
        return True

    def held_taken(self, case_id: str) -> None:
        """The held messages were handed to a counsellor: a later cap is told again."""
        self._held_told.pop(case_id, None)

    def staff_hint_due(self, room: str, now: float) -> bool:
        """Whether a staff room should get the "not passed on" hint now: once per
        ``staff_hint_every`` seconds (the hint stays visible to the whole team)."""
        return self._staff_hints.should_notice(room, now, self.settings.staff_hint_every)
