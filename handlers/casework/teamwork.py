"""Teamwork on a case: a second counsellor, a handover, a transfer to another programme.

A colleague of the same programme takes over at once; another programme only after
the person agreed (``transfer_answer``). On a transfer the old programme's notes,
members, check-ins and case threads stay behind: the new programme sees the person's
answers and new messages, nothing more.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from config.directory import Programme
from config.i18n import Translator
from config.messages import Address, Button, OutboundMessage, OutKind, Platform
from config.register import addressed
from handlers.casework.availability import Availability
from handlers.casework.lifecycle import Lifecycle
from handlers.casework.service import CaseContext, Person, StaffRole, find_member, loc
from storage.models import Case, CaseMember, CaseNote, StaffThread
from storage.repositories import drop_followups


class Teamwork:
    """Case members, invitations, handovers and transfers."""

    def __init__(self, ctx: CaseContext, availability: Availability, lifecycle: Lifecycle) -> None:
        self.ctx = ctx
        self.availability = availability
        self.lifecycle = lifecycle

    async def members(self, case: Case) -> set[str]:
        """Staff keys allowed to write on a case: the claimer and invited counsellors."""
        rows = await self.ctx.uow.session.execute(
            select(CaseMember.staff_key).where(CaseMember.case_id == case.id)
        )
        keys = {k for (k,) in rows}
        if case.claimed_by:
            keys.add(case.claimed_by)
        return keys

    async def invite(self, case: Case, role: StaffRole, who: str) -> list[OutboundMessage]:
        """Bring a second counsellor of the same programme onto the case."""
        ctx = self.ctx
        st = ctx.staff_t(role.programme)
        member = find_member(role.programme, who)
        if member is None or member.role != "counsellor":
            return ctx.to_staff(role.programme, st("staff.invite.unknown", who=who), case=case)
        key = f"{role.programme.id}/{member.id}"
        if key not in await self.members(case):
            ctx.uow.session.add(
                CaseMember(case_id=case.id, staff_key=key, delete_after=case.delete_after)
            )
            ctx.event(case, case.programme_id, "member_added")
        accounts = tuple(f"{p}:{a}" for p, a in member.accounts.items())
        return ctx.to_staff(
            role.programme,
            st("staff.invited", alias=member.alias, code=case.code),
            case=case,
            kind=OutKind.CASE_CLAIMED,
            invite=accounts,
        )

    async def transfer(self, case: Case, role: StaffRole, target: str) -> list[OutboundMessage]:
        """Hand a case to a colleague (at once) or another programme (person asked first)."""
        ctx = self.ctx
        st = ctx.staff_t(role.programme)
        member = find_member(role.programme, target)
        if member is not None and member.role == "counsellor":
            case.claimed_by = f"{role.programme.id}/{member.id}"
            ctx.event(case, case.programme_id, "handover")
            out = ctx.to_staff(
                role.programme, st("staff.handover", code=case.code, alias=member.alias), case=case
            )
            person = await ctx.person_of(case)
            if person is not None:
                pt = addressed(person.contact.locale, case.audience)
                out.append(
                    ctx.to_person(
                        person,
                        pt("case.handover", alias=member.alias, programme=role.programme.name),
                    )
                )
            return out
        programme = ctx.directory.by_id.get(target)
        if programme is None or not programme.chat_enabled or programme.id == case.programme_id:
            return ctx.to_staff(
                role.programme, st("staff.transfer.unknown", target=target), case=case
            )
        person = await ctx.person_of(case)
        if person is None:
            return ctx.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        case.pending_transfer = programme.id
        pt = addressed(person.contact.locale, case.audience)
        buttons = (
            (Button(pt("transfer.yes"), "transfer:yes"), Button(pt("transfer.no"), "transfer:no")),
        )
        text = pt(
            "transfer.ask",
            programme=programme.name,
            description=programme.description[loc(pt)],
        )
        if programme.state_authority:  # said before the person agrees, as at first routing
            authority = programme.operator_name or programme.name
            text += "\n" + pt(
                "authority.part.transfer", programme=programme.name, authority=authority
            )
        ask = ctx.to_person(person, text, buttons)
        return [
            *ctx.to_staff(
                role.programme,
                st("staff.transfer.asked", code=case.code, programme=programme.name),
                case=case,
            ),
            ask,
        ]

    async def transfer_answer(
        self,
        person: Person,
        yes: bool,
        t: Translator,
    ) -> list[OutboundMessage]:
        """The person agreed to (or declined) a transfer to another programme."""
        ctx = self.ctx
        case = await ctx.open_case_of(person)
        if case is None or case.pending_transfer is None:
            return [ctx.to_person(person, t("transfer.none"))]
        old = ctx.programme_of(case)
        target = ctx.directory.by_id.get(case.pending_transfer)
        case.pending_transfer = None
        if not yes or target is None or old is None:
            out = [ctx.to_person(person, t("transfer.declined"))]
            if old is not None:
                st = ctx.staff_t(old)
                out.extend(
                    ctx.to_staff(old, st("staff.transfer.declined", code=case.code), case=case)
                )
            return out
        st = ctx.staff_t(old)
        out = ctx.to_staff(
            old, st("staff.transfer.done", code=case.code, programme=target.name), case=case
        )
        out.extend(await self._close_threads(case, old))
        ctx.event(case, old.id, f"transfer_out:{target.id}")
        case.programme_id, case.claimed_by, case.escalated = target.id, None, 0
        case.status = "new"
        # the new programme's window
        due = await self.availability.restart_urgent_window(case, target)
        ctx.event(case, target.id, "transfer_in")
        session = ctx.uow.session
        await session.execute(delete(CaseMember).where(CaseMember.case_id == case.id))
        # The old programme's internal notes stay with it: the person agreed to the new
        # programme seeing their answers and new messages, nothing more (transfer.ask).
        await session.execute(delete(CaseNote).where(CaseNote.case_id == case.id))
        # Check-ins were the old counsellor's; the new programme decides its own.
        await drop_followups(ctx.uow, [case.id])
        out.append(
            ctx.to_person(
                person,
                t(
                    "transfer.accepted",
                    programme=target.name,
                    availability=self.availability.availability(target, t),
                ),
            )
        )
        out.extend(self.lifecycle.announce(case, target, due=due))
        return out

    async def _close_threads(self, case: Case, programme: Programme) -> list[OutboundMessage]:
        """Close the case's topics / rooms of a programme it leaves; forget them here."""
        session = self.ctx.uow.session
        rows = (
            (
                await session.execute(
                    select(StaffThread).where(
                        StaffThread.case_id == case.id, StaffThread.programme_id == programme.id
                    )
                )
            )
            .scalars()
            .all()
        )
        out = [
            OutboundMessage(
                Address(Platform(r.platform), r.chat_id, r.thread_id),
                "",
                protect=False,
                kind=OutKind.CLOSE,
                case_code=case.code,
                programme=programme.id,
            )
            for r in rows
        ]
        await session.execute(
            delete(StaffThread).where(
                StaffThread.case_id == case.id, StaffThread.programme_id == programme.id
            )
        )
        return out
