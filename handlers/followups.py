"""Follow-ups: counsellors schedule check-ins; the database is the truth.

A follow-up sends the person a neutral text that does not name the programme
(someone else may see the phone) and reminds the counsellor. Scheduler jobs carry
only the follow-up id; they are rebuilt from the database at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import select

from config.messages import OutboundMessage
from config.register import addressed
from handlers.casework import CaseService, StaffRole, followup_buttons
from storage.models import Case, FollowUp
from storage.repositories import JobChange, new_id

_DAYS = re.compile(r"^(?:in\s+)?(\d{1,3})\s*([dtw])$")
_EVERY = re.compile(r"^(?:every|alle)\s+(\d{1,3})\s*([dtw])$")
_WORDS = {
    "weekly": ("every", 7),
    "wöchentlich": ("every", 7),
    "woechentlich": ("every", 7),
    "daily": ("every", 1),
    "täglich": ("every", 1),
    "taeglich": ("every", 1),
    "monthly": ("every", 30),
    "monatlich": ("every", 30),
    "off": ("off", None),
    "aus": ("off", None),
    "stop": ("off", None),
    "less": ("less", None),
    "seltener": ("less", None),
    "more": ("more", None),
    "öfter": ("more", None),
    "oefter": ("more", None),
}


@dataclass(frozen=True, slots=True)
class Spec:
    """What a counsellor asked for."""

    kind: Literal["once", "every", "off", "less", "more"]
    days: int | None = None


def parse_spec(text: str) -> Spec | None:
    """Understand ``14d``, ``3w``, ``every 10d``, ``weekly``, ``off``, ``less``, ``more``."""
    t = text.strip().casefold()
    if t in _WORDS:
        kind, days = _WORDS[t]
        return Spec(kind, days)  # type: ignore[arg-type]
    for pattern, kind in ((_DAYS, "once"), (_EVERY, "every")):
        m = pattern.match(t)
        if m:
            n = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
            return Spec(kind, n) if 0 < n <= 365 else None  # type: ignore[arg-type]
    return None


class FollowUpService:
    """Sets and fires follow-ups inside one unit of work."""

    def __init__(self, svc: CaseService) -> None:
        self.svc = svc
        self.uow = svc.uow

    async def of_case(self, case: Case) -> FollowUp | None:
        """The follow-up of a case, if any."""
        stmt = select(FollowUp).where(FollowUp.case_id == case.id)
        return (await self.uow.session.execute(stmt)).scalar_one_or_none()

    async def set(self, case: Case, role: StaffRole, spec: Spec) -> list[OutboundMessage]:
        """Apply a counsellor's follow-up command."""
        st = self.svc.staff_t(role.programme)
        row = await self.of_case(case)
        now = self.svc.now
        if spec.kind == "off":
            if row is not None:
                self.uow.jobs.append(JobChange(row.id, None))
                await self.uow.session.delete(row)
            return self.svc.to_staff(
                role.programme, st("staff.followup.off", code=case.code), case=case
            )
        if spec.kind in ("less", "more"):
            if row is None or row.every_days is None:
                return self.svc.to_staff(role.programme, st("staff.usage.followup"), case=case)
            days = row.every_days * 2 if spec.kind == "less" else max(1, row.every_days // 2)
            spec = Spec("every", days)
        days = spec.days or 7
        due = now + timedelta(days=days)
        every = days if spec.kind == "every" else None
        if row is None:
            row = FollowUp(
                id=new_id(),
                case_id=case.id,
                every_days=every,
                due_at=due,
                paused=False,
                delete_after=case.delete_after,
            )
            self.uow.session.add(row)
        else:
            row.every_days, row.due_at = every, due
        self.uow.jobs.append(JobChange(row.id, due))
        self.svc.event(case, case.programme_id, "followup_set")
        key = "staff.followup.every" if every else "staff.followup.once"
        out = self.svc.to_staff(
            role.programme, st(key, code=case.code, days=days, when=due.date()), case=case
        )
        person = await self.svc.person_of(case)
        if person is not None:  # the person knows when and how often, and can change it
            pt = addressed(person.contact.locale, case.audience)
            notice = "followup.set.every" if every else "followup.set.once"
            text = pt(notice, days=days, date=f"{due:%d.%m.%Y}")
            out.append(self.svc.to_person(person, text, followup_buttons(pt, paused=row.paused)))
        return out

    async def fire(self, followup_id: str) -> list[OutboundMessage]:
        """Send a due follow-up once; advance or remove it. Idempotent.

        The row is locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers) so two
        instances firing the same follow-up send it once: the second sees it advanced.
        """
        row = await self.uow.session.get(FollowUp, followup_id, with_for_update=True)
        now = self.svc.now
        if row is None:
            return []
        if row.due_at > now:
            self.uow.jobs.append(JobChange(row.id, row.due_at))
            return []
        case = await self.uow.session.get(Case, row.case_id)
        if case is None or case.status == "closed":
            await self.uow.session.delete(row)
            return []
        out: list[OutboundMessage] = []
        person = await self.svc.person_of(case)
        programme = self.svc.programme_of(case)
        if not row.paused and person is not None:
            pt = addressed(person.contact.locale, case.audience)
            out.append(self.svc.to_person(person, pt("followup.checkin"), followup_buttons(pt)))
            if programme is not None:
                st = self.svc.staff_t(programme)
                out.extend(
                    self.svc.to_staff(
                        programme, st("staff.followup.sent", code=case.code), case=case
                    )
                )
            self.svc.event(case, case.programme_id, "followup_sent")
        if row.every_days:
            step = timedelta(days=row.every_days)
            due = row.due_at
            while due <= now:
                due += step
            row.due_at = due
            self.uow.jobs.append(JobChange(row.id, due))
        else:
            await self.uow.session.delete(row)
            self.uow.jobs.append(JobChange(row.id, None))
        return out
