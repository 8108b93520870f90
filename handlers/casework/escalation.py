"""Urgency and escalation: a person in danger, and cases nobody claims in time.

Staff read the kind of danger only, never the person's text. An unclaimed urgent
case is never forgotten: the coordinator is called when its window ends, and the
staff room is reminded every (growing) window until someone claims it. Ordinary
cases past the promised response time remind the staff room, then the coordinator.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select

from config.i18n import Translator
from config.messages import OutboundMessage
from config.register import addressed
from handlers.casework.availability import Availability
from handlers.casework.lifecycle import Lifecycle
from handlers.casework.service import CaseContext, Person
from storage.models import Case, StaffAway


class Escalation:
    """Marks people and cases urgent; escalates unclaimed cases on the scheduler's tick."""

    def __init__(self, ctx: CaseContext, availability: Availability, lifecycle: Lifecycle) -> None:
        self.ctx = ctx
        self.availability = availability
        self.lifecycle = lifecycle

    async def mark_urgent(
        self, person: Person, danger: str | None = None, t: Translator | None = None
    ) -> list[OutboundMessage]:
        """Flag the person (and an open case) urgent; alert staff at once, every time.

        Claimed: the claimer is called by alias in the case's thread. Unclaimed: the
        staff room, and the coordinator too. Staff read the kind of danger only.
        """
        ctx, av = self.ctx, self.availability
        person.contact.urgent = True
        case = await ctx.open_case_of(person)
        if case is None:
            return []
        case.urgent = True
        case.danger = danger or case.danger
        programme = ctx.programme_of(case)
        if programme is None:
            return []
        st = ctx.staff_t(programme)
        label = ctx.danger_label(case, st)
        out: list[OutboundMessage] = []
        if case.claimed_by and case.status != "new" and ctx.gone(case, case.claimed_by):
            out.extend(await self.lifecycle.release_orphan(case))  # nobody holds it: the queue's
        away = None
        if case.claimed_by and case.status != "new":
            away = await ctx.uow.session.get(StaffAway, case.claimed_by)
        if t is not None:
            # "We told your counsellor" only when that counsellor is there to read it.
            alerted = "crisis.case.alerted" if away is None else "crisis.case.alerted_team"
            out.append(ctx.to_person(person, t(alerted)))
            out.extend(av.closed_notice(person, programme, t))
        if case.claimed_by and case.status != "new":
            member = ctx.directory.member(*case.claimed_by.split("/", 1))
            alias = member.alias if member else "-"
            text = st("staff.urgent.claimed", code=case.code, danger=label, alias=alias)
            out.extend(ctx.to_staff(programme, text, case=case, urgent=True))
            if away is not None:  # the claimer is away: the coordinator (or the team) too
                out.extend(
                    av.alert_coordinator(
                        case, programme, "staff.urgent.away", always=True, claimer=alias
                    )
                )
            return out
        if case.urgent_due_ct is None and case.key_id is not None:
            av.set_urgent_due(case, programme, await ctx.uow.keys.get(case.key_id))
        coordinator = av.coordinator_of(programme, case)
        if coordinator.id == programme.id:  # one message in the room, calling the coordinator
            lead = next((m.alias for m in programme.staff if m.role == "coordinator"), None)
            cc = st("staff.urgent.cc", alias=lead) if lead else ""
            text = st("staff.urgent.unclaimed", code=case.code, danger=label, cc=cc)
            return [*out, *ctx.to_staff(programme, text, case=case, urgent=True)]
        text = st("staff.urgent.unclaimed", code=case.code, danger=label, cc="")
        out.extend(ctx.to_staff(programme, text, case=case, urgent=True))
        out.extend(av.alert_coordinator(case, programme, "staff.urgent.coordinator"))
        return out

    async def escalate_urgent(self) -> list[OutboundMessage]:
        """Unclaimed urgent cases past their window. The first time: the coordinator (or,
        without one, the team and the fallback's room), and the person is told once,
        honestly, that it takes longer and which numbers help now. After that: a
        reminder to the staff room and the coordinator every (growing) window until
        someone claims it - an urgent case is never forgotten."""
        ctx, av = self.ctx, self.availability
        out: list[OutboundMessage] = []
        rows = (
            (
                await ctx.uow.session.execute(
                    select(Case).where(Case.status == "new", Case.urgent_due_ct.is_not(None))
                )
            )
            .scalars()
            .all()
        )
        keys = await ctx.uow.keys.get_many([c.key_id for c in rows if c.key_id])
        for case in rows:
            dek = keys.get(case.key_id or "")
            if dek is None or case.urgent_due_ct is None:
                continue
            state = ctx.uow.keys.open_json(dek, "cases", "urgent_due", case.id, case.urgent_due_ct)
            # Older rows hold only the deadline (no rounds yet).
            due, rounds = (
                (state["due"], int(state["rounds"])) if isinstance(state, dict) else (state, 0)
            )
            if datetime.fromisoformat(str(due)) > ctx.now:
                continue
            programme = ctx.programme_of(case)
            if programme is None:
                case.urgent_due_ct = None
                continue
            av.set_urgent_due(case, programme, dek, rounds + 1)
            waited = max(1, int((ctx.now - case.opened_at).total_seconds() // 60))
            if rounds == 0:
                ctx.event(case, programme.id, "escalated_urgent")
                out.extend(
                    av.alert_coordinator(
                        case,
                        programme,
                        "staff.urgent.escalated",
                        always=True,
                        minutes=programme.urgent_window_minutes,
                    )
                )
                out.extend(av.alert_backup(case, programme, waited))
                out.extend(await self.tell_delayed(case))
                continue
            st = ctx.staff_t(programme)
            label = ctx.danger_label(case, st)
            text = st("staff.urgent.reminder", code=case.code, danger=label, minutes=waited)
            out.extend(ctx.to_staff(programme, text, case=case, urgent=True))
            out.extend(
                av.alert_coordinator(
                    case, programme, "staff.urgent.reminder.coordinator", minutes=waited
                )
            )
            out.extend(av.alert_backup(case, programme, waited))
        return out

    async def tell_delayed(self, case: Case) -> list[OutboundMessage]:
        """Tell the person once, honestly, that it takes longer, and which numbers help."""
        person = await self.ctx.person_of(case)
        if person is None:
            return []
        t = addressed(person.contact.locale, case.audience)
        return [replace(self.ctx.to_person(person, t("crisis.delayed")), urgent=True)]

    async def escalate_overdue(self) -> list[OutboundMessage]:
        """Remind staff of unclaimed cases past the promised time, then the coordinator;
        urgent cases past their (much shorter) window first."""
        ctx = self.ctx
        out: list[OutboundMessage] = await self.escalate_urgent()
        rows = (
            (
                await ctx.uow.session.execute(
                    select(Case).where(Case.status == "new", Case.escalated < 2)
                )
            )
            .scalars()
            .all()
        )
        for case in rows:
            programme = ctx.programme_of(case)
            if programme is None:
                continue
            limit = timedelta(hours=programme.response_time_hours or 48)
            waited = ctx.now - case.opened_at
            if case.escalated == 0 and waited >= limit:
                case.escalated = 1
                st = ctx.staff_t(programme)
                out.extend(
                    ctx.to_staff(
                        programme,
                        st(
                            "staff.escalate.reminder",
                            code=case.code,
                            hours=int(waited.total_seconds() // 3600),
                        ),
                        case=case,
                        urgent=case.urgent,
                    )
                )
            elif case.escalated == 1 and waited >= 2 * limit:
                case.escalated = 2
                ctx.event(case, programme.id, "escalated")
                coordinator = self.availability.coordinator_of(programme, case)
                st = ctx.staff_t(coordinator)
                out.extend(
                    ctx.to_staff(
                        coordinator,
                        st(
                            "staff.escalate.coordinator",
                            code=case.code,
                            programme=programme.name,
                            hours=int(waited.total_seconds() // 3600),
                        ),
                    )
                )
        return out
