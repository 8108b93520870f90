"""Erasure on the person's wish (/delete, or a counsellor's /erase) and /vanish.

Cases stay only as anonymous statistics rows (no contact, no key); everything that
points to the person - contact, held messages, notes, follow-ups, keys - is gone.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, select

from config.i18n import Translator
from config.messages import OutboundMessage, OutKind, Platform
from handlers.casework.service import CaseContext, Person
from storage.models import CaseMember, CaseNote, HeldMessage, MessageRef
from storage.repositories import drop_followups


class Erasure:
    """Deleting a person's data and their chat's recent messages."""

    def __init__(self, ctx: CaseContext) -> None:
        self.ctx = ctx

    async def erase(
        self,
        person: Person,
        t: Translator,
        *,
        receipt: bool,
        staff_text: str = "staff.case.erased",
    ) -> list[OutboundMessage]:
        """Erase a person: contact, held messages, notes, follow-ups, keys.

        Cases stay only as anonymous statistics rows (no contact, no key).
        ``staff_text`` is what the staff rooms of open cases read (the person's
        own /delete, or a counsellor's /erase on the person's wish).
        """
        ctx = self.ctx
        uow = ctx.uow
        address = person.address(uow)
        cases = await uow.cases.of_contact(person.contact.id)
        key_ids = [k for k in {person.contact.key_id, *(c.key_id for c in cases)} if k]
        out: list[OutboundMessage] = []
        case_ids = [c.id for c in cases]
        for case in cases:
            programme = ctx.programme_of(case)
            if case.status != "closed" and programme is not None:
                st = ctx.staff_t(programme)
                out.extend(ctx.to_staff(programme, st(staff_text, code=case.code), case=case))
            ctx.event(case, case.programme_id, "erased")
            case.status, case.outcome = "closed", case.outcome or "erased"
            case.contact_id, case.key_id, case.claimed_by = None, None, None
            case.pending_transfer, case.danger, case.urgent_due_ct = None, None, None
        await uow.session.flush()
        if case_ids:
            await drop_followups(uow, case_ids)
            for model in (HeldMessage, CaseNote, CaseMember):
                await uow.session.execute(delete(model).where(model.case_id.in_(case_ids)))
        await uow.contacts.delete(person.contact)
        await uow.session.flush()
        uow.keys.shred(key_ids)
        if receipt:
            code = "Q-" + secrets.token_hex(3).upper()
            # Matrix: the bot leaves the person's chat after the receipt (FORGET below),
            # so writing again means a new chat; other platforms ignore FORGET there
            done = "delete.done_room" if address.platform is Platform.MATRIX else "delete.done"
            out.insert(0, OutboundMessage(address, t(done, receipt=code)))
            out.append(OutboundMessage(address, "", kind=OutKind.FORGET))
        return out

    async def vanish(self, person: Person, current_ref: str | None) -> list[OutboundMessage]:
        """Ask the platform to delete this chat's recent messages; forget their ids."""
        uow = self.ctx.uow
        rows = (
            (
                await uow.session.execute(
                    select(MessageRef).where(MessageRef.contact_id == person.contact.id)
                )
            )
            .scalars()
            .all()
        )
        refs = [
            str(uow.keys.open_json(person.dek, "message_refs", "ref", r.id, r.ref_ct))
            for r in rows
            if r.delete_after > self.ctx.now
        ]
        if current_ref:
            refs.append(current_ref)
        await uow.session.execute(
            delete(MessageRef).where(MessageRef.contact_id == person.contact.id)
        )
        return [
            OutboundMessage(
                person.address(uow),
                "",
                kind=OutKind.VANISH,
                refs=tuple(refs),
                contact_id=person.contact.id,
            )
        ]
