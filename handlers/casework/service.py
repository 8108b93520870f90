"""The shared context of casework: one unit of work, the directory, and the ways out.

Every part of :mod:`handlers.casework` holds one :class:`CaseContext`. It knows the
unit of work's time, addresses messages (``to_staff``, ``to_person``), records
statistics events and status changes, and loads the person behind a case. The
person only ever sees programme name and counsellor alias; staff only see the case
code. Staff-side messages carry the case code so transports can put them into the
case's topic or room.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from config.clock import day, hour
from config.directory import Directory, Programme, StaffMember
from config.i18n import Translator, translator
from config.messages import Address, Button, OutboundMessage, OutKind, Platform
from config.settings import STATS_DAYS, RetentionSettings
from config.vocabulary import LANGUAGES
from handlers.limits import Limits
from storage.models import Case, Contact
from storage.repositories import UnitOfWork

#: Outcomes a counsellor may close a case with (``/close <outcome>``).
OUTCOMES = ("exit", "referred", "no_contact", "declined", "other")


@dataclass(slots=True)
class Person:
    """A loaded contact with its plain data key (and its open case, when preloaded)."""

    contact: Contact
    dek: bytes
    case: Case | None = None
    case_loaded: bool = False

    def address(self, uow: UnitOfWork) -> Address:
        """Decrypt the reply address."""
        data = uow.keys.open_json(
            self.dek, "contacts", "address", self.contact.id, self.contact.address_ct
        )
        account = data.get("a")
        return Address(
            Platform(data["p"]),
            str(data["c"]),
            data.get("t"),
            account=str(account) if account is not None else None,
        )


@dataclass(frozen=True, slots=True)
class StaffRole:
    """A staff account acting for one programme."""

    programme: Programme
    member: StaffMember

    @property
    def key(self) -> str:
        """The stored reference (``programme/member``), never the platform account."""
        return f"{self.programme.id}/{self.member.id}"

    @property
    def counsellor(self) -> bool:
        """Counsellors act on cases; coordinators only see queues."""
        return self.member.role == "counsellor"


def language_name(code: str) -> str:
    """A language by its own name ("Русский"), as people and staff read it."""
    return LANGUAGES.get(code, code)


def loc(t: Translator) -> Any:
    """The key of directory texts for a reader's locale (a language the operator gave
    no text for reads English: ``config.directory.Texts``)."""
    return t.locale


def find_member(programme: Programme, who: str) -> StaffMember | None:
    """A programme's staff member by id or alias (case-insensitive)."""
    who = who.strip().casefold()
    return next((m for m in programme.staff if who in (m.id.casefold(), m.alias.casefold())), None)


class CaseContext:
    """What every part of casework shares for one unit of work."""

    def __init__(
        self,
        uow: UnitOfWork,
        directory: Directory,
        retention: RetentionSettings,
        limits: Limits | None = None,
    ) -> None:
        self.uow = uow
        self.directory = directory
        self.retention = retention
        #: The app's abuse limits (in memory, shared by all units of work).
        self.limits = limits or Limits()

    @property
    def now(self) -> datetime:
        """The unit's time."""
        return self.uow.now

    @property
    def name_programme(self) -> bool:
        """The operator chose to name the programme on every counsellor message."""
        return self.directory.discretion.name_programme

    # -- messages -------------------------------------------------------------------
    def staff_rooms(self, programme: Programme) -> list[Address]:
        """Where a programme's staff read."""
        return [Address(Platform(p), room) for p, room in programme.staff_rooms.items()]

    def to_staff(
        self,
        programme: Programme,
        text: str,
        *,
        case: Case | None = None,
        buttons: tuple[tuple[Button, ...], ...] = (),
        urgent: bool = False,
        kind: OutKind = OutKind.TEXT,
        invite: tuple[str, ...] = (),
    ) -> list[OutboundMessage]:
        """Messages to every staff room of a programme (the case's thread, if any)."""
        out = []
        for a in self.staff_rooms(programme):
            accounts = tuple(acc for acc in invite if acc.startswith(f"{a.platform.value}:"))
            out.append(
                OutboundMessage(
                    a,
                    text,
                    buttons,
                    urgent=urgent,
                    protect=False,
                    kind=kind,
                    case_code=case.code if case else None,
                    programme=programme.id,
                    invite=tuple(acc.split(":", 1)[1] for acc in accounts),
                )
            )
        return out

    def to_person(
        self, person: Person, text: str, buttons: tuple[tuple[Button, ...], ...] = ()
    ) -> OutboundMessage:
        """A message to the person (their chat; never staff account data)."""
        return OutboundMessage(
            person.address(self.uow), text, buttons, contact_id=person.contact.id
        )

    def staff_t(self, programme: Programme) -> Translator:
        """Staff-room language of a programme (its first member's locale)."""
        return translator(programme.staff[0].locale if programme.staff else "de")

    def danger_label(self, case: Case, st: Translator) -> str:
        """The kind of danger in staff words (never the person's text)."""
        return st(f"staff.danger.{case.danger}" if case.danger else "staff.danger.unknown")

    # -- records ----------------------------------------------------------------------
    def event(self, case: Case | None, programme_id: str, kind: str, **categories: Any) -> None:
        """Record a statistics event (day precision, no personal data)."""
        self.uow.events.add(
            case.id if case else None,
            programme_id,
            kind,
            day(self.now),
            hour(self.now) + timedelta(days=STATS_DAYS),
            **categories,
        )

    def set_status(self, case: Case, status: str) -> None:
        """Change status and record the transition."""
        if case.status != status:
            case.status = status
            self.event(case, case.programme_id, f"status:{status}")

    def case_expiry(self) -> datetime:
        """Deletion date of an open case (extended by activity)."""
        return hour(self.now) + timedelta(days=self.retention.inactive_case_days)

    # -- lookups ----------------------------------------------------------------------
    def programme_of(self, case: Case) -> Programme | None:
        """The case's programme (None if it left the directory)."""
        return self.directory.by_id.get(case.programme_id)

    def gone(self, case: Case, staff_key: str) -> bool:
        """Whether a staff key no longer belongs to the case's programme (removed)."""
        programme_id, _, member_id = staff_key.partition("/")
        return programme_id != case.programme_id or (
            self.directory.member(programme_id, member_id) is None
        )

    async def person_of(self, case: Case) -> Person | None:
        """Load the person behind a case (None after erasure)."""
        if case.contact_id is None:
            return None
        contact = await self.uow.contacts.get(case.contact_id)
        if contact is None:
            return None
        return Person(contact, await self.uow.keys.get(contact.key_id), case, case_loaded=True)

    async def open_case_of(self, person: Person) -> Case | None:
        """The person's open case (preloaded by the router when possible)."""
        if person.case_loaded:
            return person.case
        return await self.uow.cases.open_of_contact(person.contact.id)
