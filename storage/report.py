"""``ausweg privacy-report``: what is stored, for how long, and why. Counts only.

The report holds no personal data and no ids: row counts per table, the oldest
deletion date, rows already past their date (0 after a purge), the retention
setting and its reason, counts per conversation stage and case status, and which
key versions the stored data needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from config.clock import hour
from config.settings import STATS_DAYS, RetentionSettings
from storage.db import Database
from storage.keystore import KeyStore
from storage.models import (
    Case,
    CaseEvent,
    CaseMember,
    CaseNote,
    Contact,
    FollowUp,
    HeldMessage,
    MessageRef,
    ProcessedUpdate,
    Referral,
    StaffAway,
    StaffThread,
)
from storage.rotation import KeyStatus, key_status

_MODELS: tuple[Any, ...] = (
    Contact,
    Case,
    HeldMessage,
    CaseNote,
    FollowUp,
    CaseMember,
    StaffThread,
    MessageRef,
    StaffAway,
    Referral,
    ProcessedUpdate,
    CaseEvent,
)


def retention_rules(r: RetentionSettings) -> dict[str, tuple[str, str]]:
    """Per table: (retention as configured, the reason the data is kept)."""
    case_life = "as long as its case"
    return {
        "contacts": (
            f"intake_hours={r.intake_hours} h while in intake / after closing; "
            f"inactive_case_days={r.inactive_case_days} d with an open case",
            "keyed pseudonym and encrypted reply address: needed to answer the person",
        ),
        "cases": (
            f"inactive_case_days={r.inactive_case_days} d without activity "
            f"(warning {r.inactivity_warning_days} d before); "
            f"closed_grace_days={r.closed_grace_days} d after closing",
            "the request in a programme's queue; no account data",
        ),
        "held_messages": (
            f"held_message_days={r.held_message_days} d",
            "messages waiting until a counsellor claims the case (encrypted)",
        ),
        "case_notes": (case_life, "counsellors' internal notes (encrypted)"),
        "followups": (case_life, "scheduled check-ins of a case"),
        "case_members": (case_life, "further counsellors on a case"),
        "staff_threads": (case_life, "where a case is discussed among staff"),
        "message_refs": (
            f"vanish_hours={r.vanish_hours} h",
            "platform message ids (encrypted) so /vanish can clear the person's chat",
        ),
        "staff_away": ("90 d or until cleared", "a counsellor's absence note"),
        "referrals": ("date set per code", "deep-link codes: programme and outreach source"),
        "processed_updates": (
            f"dedup_hours={r.dedup_hours} h",
            "hashed update ids so a redelivered message is handled once",
        ),
        "outbox": (
            "until sent (seconds); at most dedup_hours",
            "replies (encrypted) between commit and sending, so a crash loses none",
        ),
        "case_events": (
            f"{STATS_DAYS} d",
            "aggregate statistics (programme, kind, day); no personal data",
        ),
    }


@dataclass(frozen=True, slots=True)
class TableReport:
    """One table: rows, oldest deletion date, rows past it, retention and reason."""

    table: str
    rows: int
    oldest_delete_after: datetime | None
    overdue: int
    retention: str
    reason: str


@dataclass(frozen=True, slots=True)
class PrivacyReport:
    """What the databases hold right now (no personal data, no ids)."""

    at: datetime
    tables: tuple[TableReport, ...]
    contacts_by_state: dict[str, int]
    cases_by_status: dict[str, int]
    keys: int
    keys_oldest_delete_after: datetime | None
    key_status: KeyStatus

    def table(self, name: str) -> TableReport:
        """The entry of one table."""
        return next(t for t in self.tables if t.table == name)

    def lines(self) -> list[str]:
        """A printable report."""
        out = [f"Privacy report at {self.at:%Y-%m-%d %H}:00 UTC (counts only, no personal data)"]
        out.append("")
        head = ("table", "rows", "overdue", "oldest deletion")
        out.append(f"{head[0]:<18} {head[1]:>8} {head[2]:>8}  {head[3]:<16} retention")
        for t in self.tables:
            oldest = f"{t.oldest_delete_after:%Y-%m-%d %H}h" if t.oldest_delete_after else "-"
            out.append(f"{t.table:<18} {t.rows:>8} {t.overdue:>8}  {oldest:<16} {t.retention}")
            out.append(f"{'':<54} why: {t.reason}")
        out.append("")
        out.append("contacts per stage: " + _counts(self.contacts_by_state))
        out.append("cases per status:   " + _counts(self.cases_by_status))
        oldest = (
            f"{self.keys_oldest_delete_after:%Y-%m-%d %H}h"
            if self.keys_oldest_delete_after
            else "-"
        )
        out.append(
            f"key store: {self.keys} data keys (one per contact and open case), "
            f"oldest delete_after {oldest}"
        )
        out.extend(self.key_status.lines())
        return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "-"


async def privacy_report(
    db: Database, keystore: KeyStore, retention: RetentionSettings, now: datetime
) -> PrivacyReport:
    """Collect the report (read-only)."""
    rules = retention_rules(retention)
    tables = []
    async with db.transaction() as s:
        for model in _MODELS:
            name = model.__tablename__
            rows, oldest = (
                await s.execute(select(func.count(), func.min(model.delete_after)))
            ).one()
            overdue = (
                await s.execute(
                    select(func.count()).select_from(model).where(model.delete_after <= now)
                )
            ).scalar_one()
            retention_text, reason = rules[name]
            tables.append(
                TableReport(name, int(rows), oldest, int(overdue), retention_text, reason)
            )
        states = await s.execute(select(Contact.state, func.count()).group_by(Contact.state))
        statuses = await s.execute(select(Case.status, func.count()).group_by(Case.status))
        by_state = {str(k): int(n) for k, n in states}
        by_status = {str(k): int(n) for k, n in statuses}
    return PrivacyReport(
        hour(now),
        tuple(tables),
        by_state,
        by_status,
        await keystore.count(),
        await keystore.oldest_delete_after(),
        await key_status(db, keystore),
    )
