"""Who answers when: office hours, the urgent window, coordinators, absence notes.

Only what the directory states is promised. An unclaimed urgent case has a window
(office time counted) after which the coordinator - the programme's own, else the
state's coordination office, else the team and a backup programme - is called.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from config.clock import hour
from config.directory import Programme
from config.i18n import Translator
from config.messages import OutboundMessage
from config.vocabulary import Kind
from handlers.casework.service import CaseContext, Person, StaffRole
from storage.models import Case, StaffAway


class Availability:
    """Office hours and urgent windows, coordination, alerts, absence notes."""

    def __init__(self, ctx: CaseContext) -> None:
        self.ctx = ctx

    def availability(self, programme: Programme, t: Translator, *, urgent: bool = False) -> str:
        """Who answers when - only what the directory states (no invented promises).

        An urgent case has its own, much shorter window: the usual response time would
        read as "in a day" right after the crisis numbers.
        """
        now = self.ctx.now
        oh = programme.office_hours
        hours = None if urgent else programme.response_time_hours
        if oh is None and hours is None:
            return t("availability.none")
        parts = []
        if oh is not None and oh.is_open(now):
            parts.append(t("availability.open"))
        elif oh is not None:
            nxt = oh.next_opening(now)
            when = nxt.astimezone(oh.zone) if nxt else t("availability.unknown")
            parts.append(t("availability.closed", when=when))
        if hours is not None:
            parts.append(t("availability.response", hours=hours))
        if oh is None:
            parts.append(t("crisis.short"))
        return " ".join(parts)

    def closed_notice(
        self, person: Person, programme: Programme, t: Translator
    ) -> list[OutboundMessage]:
        """Outside office hours, say honestly that nobody may read it now, and who helps.

        Without office hours nobody knows (a 24/7 service states all days 00:00-24:00).
        """
        now = self.ctx.now
        oh = programme.office_hours
        if oh is None:
            return [self.ctx.to_person(person, t("crisis.closed.unknown"))]
        if oh.is_open(now):
            return []
        nxt = oh.next_opening(now)
        when = nxt.astimezone(oh.zone) if nxt else t("availability.unknown")  # per locale
        return [self.ctx.to_person(person, t("crisis.closed", when=when))]

    # -- the urgent window ------------------------------------------------------------
    def urgent_due(self, programme: Programme, factor: int = 1) -> datetime:
        """When an unclaimed urgent case goes to the coordinator (office time counted)."""
        window = programme.urgent_window_minutes * factor
        oh = programme.office_hours
        if oh is None:
            return self.ctx.now + timedelta(minutes=window)
        return oh.after_open_time(self.ctx.now, window)

    def set_urgent_due(
        self, case: Case, programme: Programme, dek: bytes, rounds: int = 0
    ) -> datetime:
        """Start the urgent window of an unclaimed case; returns when it ends. ``rounds``
        counts the escalations so far: after the first, staff are reminded again after
        a window that doubles each time (at most 16 windows), never left to go quiet."""
        due = self.urgent_due(programme, factor=2 ** min(max(rounds - 1, 0), 4))
        case.urgent_due_ct = self.ctx.uow.keys.seal_json(
            dek, "cases", "urgent_due", case.id, {"due": due.isoformat(), "rounds": rounds}
        )
        return due

    async def restart_urgent_window(self, case: Case, programme: Programme) -> datetime | None:
        """An urgent case back in a queue (released, transferred): a new window from now."""
        if not case.urgent or case.key_id is None:
            return None
        return self.set_urgent_due(case, programme, await self.ctx.uow.keys.get(case.key_id))

    # -- coordination -----------------------------------------------------------------
    def coordinator_of(self, programme: Programme, case: Case) -> Programme:
        """The programme itself if it has a coordinator, else the state's coordination office."""
        return self.coordination(programme, case.region)

    def coordination(self, programme: Programme, region: str | None) -> Programme:
        """:meth:`coordinator_of` for a region (no case needed)."""
        if any(m.role == "coordinator" for m in programme.staff):
            return programme
        for p in self.ctx.directory.programmes:
            if p.kind is Kind.COORDINATION and region in p.states and p.staff_rooms:
                return p
        return programme

    def alert_coordinator(
        self, case: Case, programme: Programme, key: str, *, always: bool = False, **params: object
    ) -> list[OutboundMessage]:
        """Tell the coordinator about an urgent case (by alias in the programme's room,
        or in the state coordination office's room). Without any coordinator the
        programme's room reads it only if ``always`` (it was told already otherwise)."""
        coordinator = self.coordinator_of(programme, case)
        ct = self.ctx.staff_t(coordinator)
        alias = next((m.alias for m in coordinator.staff if m.role == "coordinator"), None)
        if alias is None and not always:
            return []
        alias = alias or ct("staff.urgent.team")
        text = ct(
            key,
            code=case.code,
            danger=self.ctx.danger_label(case, ct),
            programme=programme.name,
            alias=alias,
            **params,
        )
        same = coordinator.id == programme.id
        return self.ctx.to_staff(coordinator, text, case=case if same else None, urgent=True)

    def alert_backup(self, case: Case, programme: Programme, minutes: int) -> list[OutboundMessage]:
        """Without any coordinator (own or state office), the first other programme of
        the fallback chain with a staff room hears of the unclaimed urgent case too
        (category and code only; the case stays where it is)."""
        coordinator = self.coordinator_of(programme, case)
        if any(m.role == "coordinator" for m in coordinator.staff):
            return []
        for pid in self.ctx.directory.fallback:
            backup = self.ctx.directory.by_id.get(pid)
            if backup is None or backup.id == programme.id or not backup.staff_rooms:
                continue
            bt = self.ctx.staff_t(backup)
            text = bt(
                "staff.urgent.backup",
                code=case.code,
                danger=self.ctx.danger_label(case, bt),
                programme=programme.name,
                minutes=minutes,
            )
            return self.ctx.to_staff(backup, text, urgent=True)
        return []

    def urgent_refused(
        self, programme: Programme, danger: str | None, region: str | None
    ) -> list[OutboundMessage]:
        """A cap refused an urgent request: the coordinator (or the team) learns of it.

        Only the kind of danger and how many were refused this hour - no code, no text,
        nothing that points to the person. Told on the first refusal of an hour and then
        every tenth, so a flood of fake requests cannot flood the staff room as well.
        """
        count = self.ctx.limits.urgent_refused(programme.id, time.monotonic())
        if count != 1 and count % 10:
            return []
        target = self.coordination(programme, region)
        st = self.ctx.staff_t(target)
        alias = next((m.alias for m in target.staff if m.role == "coordinator"), None)
        text = st(
            "staff.urgent.refused",
            danger=st(f"staff.danger.{danger}" if danger else "staff.danger.unknown"),
            programme=programme.name,
            count=count,
            alias=alias or st("staff.urgent.team"),
        )
        return self.ctx.to_staff(target, text, urgent=True)

    # -- absence ----------------------------------------------------------------------
    async def away(self, role: StaffRole, text: str | None) -> list[OutboundMessage]:
        """Set or clear a counsellor's absence note."""
        uow = self.ctx.uow
        st = self.ctx.staff_t(role.programme)
        row = await uow.session.get(StaffAway, role.key)
        if text:
            if row is None:
                uow.session.add(
                    StaffAway(
                        staff_key=role.key,
                        text=text[:500],
                        delete_after=hour(self.ctx.now) + timedelta(days=90),
                    )
                )
            else:
                row.text = text[:500]
            return self.ctx.to_staff(role.programme, st("staff.away.set", alias=role.member.alias))
        if row is not None:
            await uow.session.delete(row)
        return self.ctx.to_staff(role.programme, st("staff.away.cleared", alias=role.member.alias))
