"""Relaying between the person and the case's staff, and holding what waits for a claim.

Before a counsellor claims a case, the person's messages are held (encrypted under
the case key, bounded by the held caps) and handed over as one digest on the claim.
Attachments are copied by the platform, never stored.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from config.clock import day, hour
from config.directory import Programme
from config.i18n import Translator
from config.messages import Address, OutboundMessage, OutKind
from config.register import addressed
from handlers.casework.availability import Availability
from handlers.casework.service import CaseContext, Person, StaffRole
from handlers.staff_text import quote
from storage.models import Case, HeldMessage, StaffAway, touch
from storage.repositories import new_id

ATTACHMENT_KINDS = ("photo", "voice", "video", "audio", "document", "sticker")


def _kind(kind: str) -> str:
    return kind if kind in ATTACHMENT_KINDS else "document"


class Relay:
    """Messages and attachments both ways; held messages until a claim."""

    def __init__(self, ctx: CaseContext, availability: Availability) -> None:
        self.ctx = ctx
        self.availability = availability

    # -- held messages ----------------------------------------------------------------
    def hold(self, case: Case, dek: bytes, text: str, seq: int) -> None:
        """Keep a person's message for the counsellor who claims the case."""
        ctx = self.ctx
        row_id = new_id()
        ct = ctx.uow.keys.seal_json(dek, "held_messages", "text", row_id, text)
        expiry = hour(ctx.now) + timedelta(days=ctx.retention.held_message_days)
        ctx.uow.session.add(
            HeldMessage(id=row_id, case_id=case.id, seq=seq, text_ct=ct, delete_after=expiry)
        )

    async def held_digest(
        self, case: Case, programme: Programme, st: Translator
    ) -> list[OutboundMessage]:
        """The messages held for a case as ONE staff message (bounded by the held caps)."""
        uow = self.ctx.uow
        held = await uow.held.of_case(case.id)
        self.ctx.limits.held_taken(case.id)
        if not held:
            return []
        dek = await uow.keys.get(case.key_id or "")
        texts = [
            str(uow.keys.open_json(dek, "held_messages", "text", m.id, m.text_ct)) for m in held
        ]
        await uow.held.drop([case.id])
        if len(texts) == 1:
            return self.ctx.to_staff(
                programme, st("staff.relay.held", code=case.code, text=quote(texts[0])), case=case
            )
        messages = "\n\n".join(f"({n})\n{quote(text)}" for n, text in enumerate(texts, 1))
        digest = st("staff.relay.held_digest", code=case.code, count=len(texts), messages=messages)
        return self.ctx.to_staff(programme, digest, case=case)

    # -- from the person --------------------------------------------------------------
    async def from_person(self, person: Person, text: str, t: Translator) -> list[OutboundMessage]:
        """A message from a person with a case: relay if claimed, else hold it."""
        ctx = self.ctx
        case = await ctx.open_case_of(person)
        if case is None:
            return [ctx.to_person(person, t("case.none"))]
        programme = ctx.programme_of(case)
        first_this_hour = case.last_activity_at < hour(ctx.now)
        expiry = ctx.case_expiry()
        touch(case, last_activity_at=hour(ctx.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        if case.status == "new" or programme is None:
            seq, size = await ctx.uow.held.usage(case.id)
            if ctx.limits.held_full(seq, size + len(text.encode())):
                # Kept bounded: a claim must not flood the staff room (told once).
                if ctx.limits.tell_held_full(case.id):
                    return [ctx.to_person(person, t("limits.held_full"))]
                return []
            dek = await ctx.uow.keys.get(case.key_id or "")
            self.hold(case, dek, text, seq)
            ack = t("case.held")
            if programme is not None and first_this_hour:
                ack += "\n" + self.availability.availability(programme, t)
            return [ctx.to_person(person, ack)]
        if case.status == "waiting":
            ctx.set_status(case, "active")
        st = ctx.staff_t(programme)
        out = ctx.to_staff(
            programme, st("staff.relay.from_person", code=case.code, text=quote(text)), case=case
        )
        if first_this_hour and case.claimed_by:
            away = await ctx.uow.session.get(StaffAway, case.claimed_by)
            if away is not None:
                out.append(ctx.to_person(person, t("case.away", text=away.text)))
        return out

    async def attachment_from_person(
        self, person: Person, source: Address, ref: str, kind: str, t: Translator
    ) -> list[OutboundMessage]:
        """Copy a photo / voice message / file of the person to the case's staff (not stored)."""
        ctx = self.ctx
        case = await ctx.open_case_of(person)
        if case is None:
            return [ctx.to_person(person, t("case.none"))]
        programme = ctx.programme_of(case)
        if case.status == "new" or programme is None:
            return [ctx.to_person(person, t("attachment.later"))]
        expiry = ctx.case_expiry()
        touch(case, last_activity_at=hour(ctx.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        if case.status == "waiting":
            ctx.set_status(case, "active")
        st = ctx.staff_t(programme)
        label = st("staff.relay.attachment", code=case.code, kind=st(f"attachment.{_kind(kind)}"))
        return [
            replace(m, kind=OutKind.COPY, copy_from=source, refs=(ref,))
            for m in ctx.to_staff(programme, label, case=case)
        ]

    # -- to the person ----------------------------------------------------------------
    async def to_person_from(
        self,
        case: Case,
        role: StaffRole,
        text: str,
    ) -> list[OutboundMessage]:
        """Relay a counsellor's message under alias and programme name."""
        ctx = self.ctx
        person = await ctx.person_of(case)
        st = ctx.staff_t(role.programme)
        if person is None:
            return ctx.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        expiry = ctx.case_expiry()
        if case.status in ("claimed", "waiting"):
            if not await ctx.uow.events.exists(case.id, "first_reply"):
                wait = (day(ctx.now) - day(case.opened_at)).days
                ctx.event(case, case.programme_id, "first_reply", wait_days=wait)
            ctx.set_status(case, "active")
        touch(case, last_activity_at=hour(ctx.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        pt = addressed(person.contact.locale, case.audience)
        body = pt(
            "relay.from_counsellor.named" if ctx.name_programme else "relay.from_counsellor",
            alias=role.member.alias,
            programme=role.programme.name,
            text=text,
        )
        return [ctx.to_person(person, body)]

    async def attachment_to_person(
        self, case: Case, role: StaffRole, source: Address, ref: str
    ) -> list[OutboundMessage]:
        """Copy a counsellor's photo / file to the person under alias and programme name."""
        ctx = self.ctx
        person = await ctx.person_of(case)
        if person is None:
            st = ctx.staff_t(role.programme)
            return ctx.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        pt = addressed(person.contact.locale, case.audience)
        label = pt(
            "relay.attachment_from_counsellor.named"
            if ctx.name_programme
            else "relay.attachment_from_counsellor",
            alias=role.member.alias,
            programme=role.programme.name,
        )
        message = ctx.to_person(person, label)
        return [replace(message, kind=OutKind.COPY, copy_from=source, refs=(ref,))]
