"""The queue and a case's life in it: announce, claim, release, orphans, pause, close.

A new case is announced to its programme's staff rooms (code and categories only,
never account data). A claim hands the held messages over in one digest; a release,
or a claimer who left the directory, puts the case back into the queue (an invited
colleague goes on with it first). Closing shreds the case key after the grace period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from config.clock import hour
from config.directory import Programme
from config.i18n import Translator
from config.messages import Button, OutboundMessage, OutKind
from config.register import addressed
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES
from handlers.casework.availability import Availability
from handlers.casework.relay import Relay
from handlers.casework.service import CaseContext, StaffRole, language_name
from handlers.routing import Route, speaks
from storage.models import Case, CaseMember, CaseNote
from storage.repositories import drop_followups


def reasons(route: Route, t: Translator) -> str:
    """The matched facts of a route (region, audience, language ...), listed."""
    parts = []
    for kind, value in route.reasons:
        if kind == "state":
            parts.append(STATES.get(value, value))
        elif kind == "district":
            parts.append(MV_DISTRICTS.get(value, value))
        elif kind == "language":
            parts.append(LANGUAGES.get(value, value))
        else:
            parts.append(t(f"reason.{kind}.{value}"))
    return ", ".join(parts)


def explain(route: Route, t: Translator, *, staff: bool = False) -> str:
    """Why this programme, in the reader's words (``staff``: the routing reason for
    staff, never a text addressed to the person)."""
    key = f"staff.route.{route.step}" if staff else f"route.step.{route.step}"
    return t(key, reasons=reasons(route, t))


class Lifecycle:
    """A case in its programme's queue: announced, claimed, released, paused, closed."""

    def __init__(self, ctx: CaseContext, availability: Availability, relay: Relay) -> None:
        self.ctx = ctx
        self.availability = availability
        self.relay = relay

    # -- the queue ----------------------------------------------------------------------
    def announce(
        self,
        case: Case,
        programme: Programme,
        route: Route | None = None,
        due: datetime | None = None,
    ) -> list[OutboundMessage]:
        """Tell the programme's staff rooms about a new case (no account data); an urgent
        one says until when it must be claimed (``due``)."""
        st = self.ctx.staff_t(programme)
        text = self.describe(case, st)
        if case.urgent and due is not None:
            zone = programme.office_hours.zone if programme.office_hours else None
            local = due.astimezone(zone) if zone else due
            # Promise the coordinator only where there is one.
            coordinator = self.availability.coordinator_of(programme, case)
            lead = any(m.role == "coordinator" for m in coordinator.staff)
            key = "staff.urgent.window" if lead else "staff.urgent.window.team"
            text += "\n" + st(key, due=local)
        if route is not None:
            text += "\n" + st("staff.case.why", reasons=explain(route, st, staff=True))
        buttons = ((Button(st("staff.claim.button"), f"claim:{case.code}"),),)
        return self.ctx.to_staff(
            programme,
            text,
            case=case,
            buttons=buttons,
            urgent=case.urgent,
            kind=OutKind.CASE_OPENED,
        )

    def describe(self, case: Case, st: Translator) -> str:
        """One case for staff: code, audience, scene, region, language, urgency, waiting."""
        region = STATES.get(case.region or "", st("staff.case.no_region"))
        if case.district:
            region += f" ({MV_DISTRICTS.get(case.district, case.district)})"
        waited = max(0, int((hour(self.ctx.now) - case.opened_at).total_seconds() // 3600))
        danger = self.ctx.danger_label
        return st(
            "staff.case.summary",
            code=case.code,
            urgent=st("staff.case.urgent", danger=danger(case, st)) if case.urgent else "",
            audience=st(f"reason.audience.{case.audience}"),
            scene=st(f"reason.scene.{case.scene}") if case.scene else "-",
            region=region,
            language=self._case_language(case, st),
            prison=st("staff.case.prison") if case.in_prison else "",
            waited=waited,
        )

    def _case_language(self, case: Case, st: Translator) -> str:
        """The person's language on a case card, flagged when the programme is not known
        to speak it (with the region's mediation service, if any)."""
        text = language_name(case.language)
        programme = self.ctx.directory.by_id.get(case.programme_id)
        if programme is None or speaks(programme, case.language):
            return text
        text += st("staff.case.no_common_language")
        mediation = self.ctx.directory.mediation_for(case.region, case.language)
        if mediation is not None:
            text += st("staff.case.mediation", name=mediation.name)
        return text

    # -- claiming -----------------------------------------------------------------------
    async def claim(self, case: Case, role: StaffRole) -> list[OutboundMessage] | None:
        """Claim a case; None when someone else was faster."""
        ctx = self.ctx
        if not await ctx.uow.cases.claim(case.id, role.key, hour(ctx.now)):
            return None
        await ctx.uow.session.refresh(case)
        ctx.event(case, case.programme_id, "status:claimed")
        st = ctx.staff_t(role.programme)
        accounts = tuple(f"{p}:{a}" for p, a in role.member.accounts.items())
        out = ctx.to_staff(
            role.programme,
            st("staff.claimed", alias=role.member.alias, code=case.code),
            case=case,
            kind=OutKind.CASE_CLAIMED,
            invite=accounts,
        )
        out.extend(await self.relay.held_digest(case, role.programme, st))
        person = await ctx.person_of(case)
        if person is not None:
            pt = addressed(person.contact.locale, case.audience)
            out.append(
                ctx.to_person(
                    person,
                    pt("case.claimed", alias=role.member.alias, programme=role.programme.name),
                )
            )
        return out

    async def release(self, case: Case, role: StaffRole) -> list[OutboundMessage]:
        """Put a claimed case back into the queue."""
        ctx = self.ctx
        case.claimed_by = None
        ctx.set_status(case, "new")
        # back in the queue: an urgent case gets a fresh window
        due = await self.availability.restart_urgent_window(case, role.programme)
        await ctx.uow.session.execute(delete(CaseMember).where(CaseMember.case_id == case.id))
        st = ctx.staff_t(role.programme)
        out = ctx.to_staff(role.programme, st("staff.released", code=case.code), case=case)
        return out + self.announce(case, role.programme, due=due)

    async def release_orphans(self) -> list[OutboundMessage]:
        """After a directory change: cases held by staff who left go back to the queue.

        Their programme's room reads a note and the new-case announcement (urgent ones
        with a fresh window, and the coordinator is called); the person learns that
        someone else will answer. Further counsellors who left are taken off the case.
        """
        session = self.ctx.uow.session
        held = (
            await session.execute(
                select(Case).where(Case.claimed_by.is_not(None), Case.status != "closed")
            )
        ).scalars()
        out: list[OutboundMessage] = []
        for case in list(held):
            if case.claimed_by is not None and self.ctx.gone(case, case.claimed_by):
                out.extend(await self.release_orphan(case))
        shared = (await session.execute(select(CaseMember))).scalars()
        for row in list(shared):
            on = await session.get(Case, row.case_id)
            if on is None or self.ctx.gone(on, row.staff_key):
                await session.delete(row)
        return out

    async def release_orphan(self, case: Case) -> list[OutboundMessage]:
        """One case whose claimer left: to a colleague already on it, else back to the
        queue (see :meth:`release_orphans`)."""
        ctx = self.ctx
        programme = ctx.programme_of(case)
        if programme is None:  # the programme itself left: not this method's business
            return []
        rows = (
            await ctx.uow.session.execute(select(CaseMember).where(CaseMember.case_id == case.id))
        ).scalars()
        for row in list(rows):
            _, _, member_id = row.staff_key.partition("/")
            gone = ctx.gone(case, row.staff_key)
            member = None if gone else ctx.directory.member(programme.id, member_id)
            if member is None or member.role != "counsellor":
                continue
            # A colleague invited to the case goes on with it (the person knows them).
            case.claimed_by = row.staff_key
            await ctx.uow.session.delete(row)
            ctx.event(case, programme.id, "handover")
            st = ctx.staff_t(programme)
            out = ctx.to_staff(
                programme, st("staff.handover", code=case.code, alias=member.alias), case=case
            )
            person = await ctx.person_of(case)
            if person is not None:
                pt = addressed(person.contact.locale, case.audience)
                text = pt("case.handover", alias=member.alias, programme=programme.name)
                out.append(ctx.to_person(person, text))
            return out
        case.claimed_by = None
        ctx.set_status(case, "new")
        ctx.event(case, programme.id, "status:orphaned")
        due = await self.availability.restart_urgent_window(case, programme)
        await ctx.uow.session.execute(delete(CaseMember).where(CaseMember.case_id == case.id))
        st = ctx.staff_t(programme)
        out = ctx.to_staff(programme, st("staff.orphaned", code=case.code), case=case)
        out.extend(self.announce(case, programme, due=due))
        if case.urgent:
            out.extend(
                self.availability.alert_coordinator(case, programme, "staff.urgent.coordinator")
            )
        person = await ctx.person_of(case)
        if person is not None:
            pt = addressed(person.contact.locale, case.audience)
            out.append(ctx.to_person(person, pt("case.orphaned")))
        return out

    # -- pausing and closing ------------------------------------------------------------
    async def pause(self, case: Case, role: StaffRole) -> list[OutboundMessage]:
        """Mark a case as waiting (e.g. for the person); a message from them resumes it."""
        self.ctx.set_status(case, "waiting")
        st = self.ctx.staff_t(role.programme)
        return self.ctx.to_staff(role.programme, st("staff.paused", code=case.code), case=case)

    async def close(self, case: Case, role: StaffRole, outcome: str) -> list[OutboundMessage]:
        """Close a case with an outcome; its keys are shredded after the grace period."""
        ctx = self.ctx
        uow, retention = ctx.uow, ctx.retention
        ctx.set_status(case, "closed")
        case.outcome = outcome
        case.danger, case.urgent_due_ct = None, None  # the kind of danger ends with the case
        ctx.event(case, case.programme_id, f"outcome:{outcome}")
        case.delete_after = hour(ctx.now) + timedelta(days=retention.closed_grace_days)
        await drop_followups(uow, [case.id])
        st = ctx.staff_t(role.programme)
        out = ctx.to_staff(
            role.programme, st("staff.closed", code=case.code, outcome=outcome), case=case
        )
        person = await ctx.person_of(case)
        if person is not None:
            person.contact.state = "new"
            person.contact.delete_after = hour(ctx.now) + timedelta(hours=retention.intake_hours)
            pt = addressed(person.contact.locale, case.audience)
            out.append(ctx.to_person(person, pt("case.closed")))
        if retention.closed_grace_days == 0:
            await uow.held.drop([case.id])
            await uow.session.execute(delete(CaseNote).where(CaseNote.case_id == case.id))
            if case.key_id:
                key_id, case.key_id = case.key_id, None
                await uow.session.flush()
                uow.keys.shred([key_id])
        return out
