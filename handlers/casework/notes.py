"""Internal notes (encrypted under the case key, never relayed) and canned replies."""

from __future__ import annotations

from sqlalchemy import select

from config.clock import hour
from config.i18n import translator
from config.messages import OutboundMessage
from handlers.casework.relay import Relay
from handlers.casework.service import CaseContext, StaffRole, loc
from handlers.staff_text import quote
from storage.models import Case, CaseNote
from storage.repositories import new_id


class Notes:
    """A case's internal notes, and the programme's canned replies."""

    def __init__(self, ctx: CaseContext, relay: Relay) -> None:
        self.ctx = ctx
        self.relay = relay

    async def note(self, case: Case, role: StaffRole, text: str) -> list[OutboundMessage]:
        """Keep an internal note, encrypted under the case key; never relayed."""
        ctx = self.ctx
        st = ctx.staff_t(role.programme)
        if case.key_id is None:
            return ctx.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        dek = await ctx.uow.keys.get(case.key_id)
        row_id = new_id()
        ctx.uow.session.add(
            CaseNote(
                id=row_id,
                case_id=case.id,
                author=role.member.alias,
                text_ct=ctx.uow.keys.seal_json(dek, "case_notes", "text", row_id, text),
                created_at=hour(ctx.now),
                delete_after=case.delete_after,
            )
        )
        return ctx.to_staff(role.programme, st("staff.note.saved", code=case.code), case=case)

    async def notes(self, case: Case, role: StaffRole) -> list[OutboundMessage]:
        """List a case's notes (staff room only)."""
        ctx = self.ctx
        st = ctx.staff_t(role.programme)
        rows = (
            (
                await ctx.uow.session.execute(
                    select(CaseNote)
                    .where(CaseNote.case_id == case.id)
                    .order_by(CaseNote.created_at)
                )
            )
            .scalars()
            .all()
        )
        if not rows or case.key_id is None:
            return ctx.to_staff(role.programme, st("staff.note.none", code=case.code), case=case)
        dek = await ctx.uow.keys.get(case.key_id)
        lines = [
            f"{r.created_at:%d.%m. %H}h {r.author}:\n"
            + quote(str(ctx.uow.keys.open_json(dek, "case_notes", "text", r.id, r.text_ct)))
            for r in rows
        ]
        return ctx.to_staff(
            role.programme, st("staff.note.list", code=case.code, notes="\n".join(lines)), case=case
        )

    async def canned(self, case: Case, role: StaffRole, name: str) -> list[OutboundMessage]:
        """Send a canned reply of the programme in the person's language."""
        ctx = self.ctx
        st = ctx.staff_t(role.programme)
        texts = role.programme.canned.get(name)
        person = await ctx.person_of(case)
        if texts is None:
            names = ", ".join(sorted(role.programme.canned)) or "-"
            return ctx.to_staff(role.programme, st("staff.canned.unknown", names=names), case=case)
        if person is None:
            return ctx.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        text = texts[loc(translator(person.contact.locale))]
        return await self.relay.to_person_from(case, role, text)
