"""The person's own controls on a case: who reads along, and how check-ins go on."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from config.i18n import Translator
from config.messages import Button, OutboundMessage
from handlers.casework.service import CaseContext, Person, loc
from storage.models import FollowUp
from storage.repositories import JobChange


def followup_buttons(t: Translator, *, paused: bool = False) -> tuple[tuple[Button, ...], ...]:
    """The person's controls on every follow-up notice and check-in."""
    toggle = ("resume", "followup.button.resume") if paused else ("pause", "followup.button.pause")
    return (
        (Button(t("followup.button.less"), "followup:less"),),
        (Button(t(toggle[1]), f"followup:{toggle[0]}"),),
        (Button(t("followup.button.stop"), "followup:stop"),),
    )


class PersonControls:
    """/who, and the buttons on check-ins (pause, resume, less, stop)."""

    def __init__(self, ctx: CaseContext) -> None:
        self.ctx = ctx

    async def who(self, person: Person, t: Translator) -> list[OutboundMessage]:
        """Who reads along: the programme (and counsellor alias), on the person's request."""
        ctx = self.ctx
        case = await ctx.open_case_of(person)
        programme = ctx.programme_of(case) if case is not None else None
        if case is None or programme is None:
            return [ctx.to_person(person, t("who.none"))]
        description = programme.description[loc(t)]
        member = None
        if case.claimed_by:
            member = ctx.directory.member(*case.claimed_by.split("/", 1))
        if member is None:
            text = t("who.waiting", programme=programme.name, description=description)
        else:
            text = t(
                "who.case", alias=member.alias, programme=programme.name, description=description
            )
        return [ctx.to_person(person, text)]

    async def person_followups(
        self,
        person: Person,
        action: str,
        t: Translator,
    ) -> list[OutboundMessage]:
        """The person chooses how check-ins go on: ``pause``, ``resume``, ``less`` (twice
        the interval) or ``stop`` (the follow-up and its job are deleted). The counsellor
        is told what the person chose."""
        ctx = self.ctx
        uow = ctx.uow
        case = await ctx.open_case_of(person)
        row = None
        if case is not None:
            row = (
                await uow.session.execute(select(FollowUp).where(FollowUp.case_id == case.id))
            ).scalar_one_or_none()
        if row is None or case is None:
            return [ctx.to_person(person, t("followup.none"))]
        if action == "stop":
            uow.jobs.append(JobChange(row.id, None))
            await uow.session.delete(row)
            key = "followup.stopped"
        elif action == "less":
            if row.every_days:
                days = min(365, row.every_days * 2)
                row.due_at += timedelta(days=days - row.every_days)
                row.every_days = days
            else:  # a single check-in: twice as far away as it is now
                row.due_at += max(row.due_at - ctx.now, timedelta(days=1))
            row.paused = False
            uow.jobs.append(JobChange(row.id, row.due_at))
            key = "followup.less"
        else:
            row.paused = action == "pause"
            key = "followup.paused" if row.paused else "followup.resumed"
        out = [
            ctx.to_person(
                person,
                t(key, date=f"{row.due_at:%d.%m.%Y}"),
                () if action == "stop" else followup_buttons(t, paused=row.paused),
            )
        ]
        programme = ctx.programme_of(case)
        if programme is not None:
            st = ctx.staff_t(programme)
            out.extend(
                ctx.to_staff(
                    programme,
                    st(
                        f"staff.followup.person.{action}",
                        code=case.code,
                        when=f"{row.due_at:%d.%m.%Y}",
                    ),
                    case=case,
                )
            )
        return out
