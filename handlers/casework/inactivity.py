"""Closing open cases nobody writes in (run by the app before the purge).

``inactivity_warning_days`` before an open case's date the person and the
counsellors are warned; at the date it is closed with outcome ``no_contact``, its
key shredded and the contact left to the purge (:mod:`storage.retention`). A case
that reaches its date unwarned (the bot was down) is warned first and kept that long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.clock import day, hour
from config.directory import Directory
from config.i18n import translator
from config.messages import OutboundMessage
from config.settings import RetentionSettings
from handlers.casework.service import CaseContext, Person
from storage.db import Database
from storage.keystore import KeyStore
from storage.models import Case, CaseEvent, CaseMember, CaseNote, HeldMessage
from storage.repositories import OPEN_STATUSES, JobChange, drop_followups, unit

#: Statistics event kinds written here.
WARNED = "inactivity_warning"
NO_CONTACT = "no_contact"


@dataclass(slots=True)
class InactivityReport:
    """Warnings sent and cases closed for inactivity, with what to deliver afterwards."""

    warned: int = 0
    closed: int = 0
    out: list[OutboundMessage] = field(default_factory=list)
    jobs: list[JobChange] = field(default_factory=list)


def warning_lead(retention: RetentionSettings) -> int:
    """Days of warning before closing, always shorter than the inactivity period."""
    return max(0, min(retention.inactivity_warning_days, retention.inactive_case_days - 1))


async def close_inactive(
    db: Database,
    keystore: KeyStore,
    directory: Directory,
    retention: RetentionSettings,
    now: datetime,
    *,
    batch: int = 500,
) -> InactivityReport:
    """Warn about open cases nearing their date; close those past it (``no_contact``).

    A warning is remembered as a statistics event (``inactivity_warning``) made
    after the case's last activity, so activity re-arms it and nothing is sent twice.
    """
    report = InactivityReport()
    lead = warning_lead(retention)
    horizon = hour(now) + timedelta(days=lead)
    after = ""
    while True:
        async with unit(db, keystore, now) as uow:
            cases = list(
                (
                    await uow.session.execute(
                        select(Case)
                        .where(
                            Case.status.in_(OPEN_STATUSES),
                            Case.delete_after <= horizon,
                            Case.id > after,
                        )
                        .order_by(Case.id)
                        .limit(batch)
                        # PostgreSQL: a case a message is updating right now waits for
                        # the next run (SQLite has one writer and ignores this)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            warned = await _last_warnings(uow.session, [c.id for c in cases])
            ctx = CaseContext(uow, directory, retention)
            for case in cases:
                since = case.delete_after - timedelta(days=retention.inactive_case_days)
                was_warned = case.id in warned and warned[case.id] > day(since)
                if case.delete_after <= uow.now and (was_warned or lead == 0):
                    report.out.extend(await _close(ctx, case))
                    report.closed += 1
                elif not was_warned and lead > 0:
                    if case.delete_after <= uow.now:  # missed the window: warn, then wait
                        case.delete_after = hour(uow.now) + timedelta(days=lead)
                    report.out.extend(await _warn(ctx, case))
                    report.warned += 1
        report.jobs.extend(uow.jobs)
        if len(cases) < batch:
            return report
        after = cases[-1].id


async def _last_warnings(s: AsyncSession, case_ids: list[str]) -> dict[str, date]:
    if not case_ids:
        return {}
    rows = await s.execute(
        select(CaseEvent.case_id, func.max(CaseEvent.day))
        .where(CaseEvent.case_id.in_(case_ids), CaseEvent.kind == WARNED)
        .group_by(CaseEvent.case_id)
    )
    return {str(i): d for i, d in rows}


async def _person(ctx: CaseContext, case: Case) -> Person | None:
    try:
        return await ctx.person_of(case)
    except LookupError:  # the contact's key is gone: nobody to write to
        return None


async def _warn(ctx: CaseContext, case: Case) -> list[OutboundMessage]:
    ctx.event(case, case.programme_id, WARNED)
    when = case.delete_after.date()  # rendered per reader locale (babel.dates)
    idle = max(0, (hour(ctx.now) - case.last_activity_at).days)
    out: list[OutboundMessage] = []
    programme = ctx.programme_of(case)
    if programme is not None:
        st = ctx.staff_t(programme)
        text = st("staff.inactive.warning", code=case.code, days=idle, date=when)
        out.extend(ctx.to_staff(programme, text, case=case))
    person = await _person(ctx, case)
    if person is not None:
        pt = translator(person.contact.locale)
        out.append(ctx.to_person(person, pt("inactive.warning", date=when)))
    return out


async def _close(ctx: CaseContext, case: Case) -> list[OutboundMessage]:
    """Close for inactivity: outcome no_contact, teamwork rows and keys gone."""
    uow = ctx.uow
    ctx.set_status(case, "closed")
    case.outcome, case.pending_transfer = NO_CONTACT, None
    ctx.event(case, case.programme_id, f"outcome:{NO_CONTACT}")
    case.delete_after = hour(ctx.now) + timedelta(days=ctx.retention.closed_grace_days)
    await drop_followups(uow, [case.id])
    for model in (HeldMessage, CaseNote, CaseMember):
        await uow.session.execute(delete(model).where(model.case_id == case.id))
    if case.contact_id is not None:
        contact = await uow.contacts.get(case.contact_id)
        if contact is not None:  # nothing left to keep it for: the purge takes it
            contact.state, contact.urgent = "new", False
            contact.delete_after = min(contact.delete_after, hour(ctx.now))
    if case.key_id:
        key_id, case.key_id = case.key_id, None
        await uow.session.flush()
        uow.keys.shred([key_id])
    programme = ctx.programme_of(case)
    if programme is None:
        return []
    st = ctx.staff_t(programme)
    return ctx.to_staff(programme, st("staff.inactive.closed", code=case.code), case=case)
