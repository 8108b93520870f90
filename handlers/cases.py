"""The case service: opens cases, relays, claims, teamwork, erasure - in one unit of work.

It turns handler effects and staff commands into stored changes and outbound
messages. The person only ever sees programme name and counsellor alias; staff
only see the case code. Staff-side messages carry the case code so transports
can put them into the case's topic or room.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from config.clock import day, hour
from config.directory import Directory, Programme, StaffMember
from config.i18n import Translator, translator
from config.messages import Address, Button, OutboundMessage, OutKind, Platform
from config.register import addressed
from config.settings import RetentionSettings
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES, Audience, Kind
from handlers.base import Effect
from handlers.intake import contact_lines, listed_contacts
from handlers.limits import Limits
from handlers.routing import Profile, Route, chat_fallback, speaks
from handlers.staff_text import quote
from storage.models import (
    Case,
    CaseMember,
    CaseNote,
    Contact,
    FollowUp,
    HeldMessage,
    MessageRef,
    StaffAway,
    StaffThread,
    touch,
)
from storage.repositories import JobChange, UnitOfWork, drop_followups, new_case_code, new_id

STATS_DAYS = 3 * 365
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


def _loc(t: Translator) -> Any:
    """The key of directory texts for a reader's locale (a language the operator gave
    no text for reads English: ``config.directory.Texts``)."""
    return t.locale


class CaseService:
    """Applies case effects and staff actions for one unit of work."""

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

    # -- helpers ------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The unit's time."""
        return self.uow.now

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

    @property
    def name_programme(self) -> bool:
        """The operator chose to name the programme on every counsellor message."""
        return self.directory.discretion.name_programme

    def staff_t(self, programme: Programme) -> Translator:
        """Staff-room language of a programme (its first member's locale)."""
        return translator(programme.staff[0].locale if programme.staff else "de")

    def programme_of(self, case: Case) -> Programme | None:
        """The case's programme (None if it left the directory)."""
        return self.directory.by_id.get(case.programme_id)

    # -- opening ------------------------------------------------------------------
    async def open_case(
        self, person: Person, effect: Effect, t: Translator
    ) -> list[OutboundMessage]:
        """Open a case (or refer) after routing; tell the person who answers and when."""
        route: Route = effect.data["route"]
        profile: Profile = effect.data["profile"]
        message: str | None = effect.data.get("message")
        danger: str | None = effect.data.get("danger")
        programme = route.programme
        if route.opens_case:
            # The caps apply to every way a case opens (urgent ones have their own).
            refusal = self.limits.case_refusal(
                programme.id,
                person.contact.pseudonym,
                time.monotonic(),
                urgent=person.contact.urgent,
            )
            if refusal is not None:
                refused = [self.to_person(person, t(refusal))]
                if person.contact.urgent:  # no case now, but the numbers again, first
                    refused.insert(0, replace(self.to_person(person, t("crisis")), urgent=True))
                    # Staff must learn that someone in danger did not get through, and
                    # the person must not think that anyone will answer here.
                    refused.append(self.to_person(person, t("limits.urgent_refused")))
                    refused.extend(self.urgent_refused(programme, danger, profile.state))
                return refused
        out: list[OutboundMessage] = []
        reasons = self.explain(route, t)
        if person.contact.urgent and route.step == "fallback" and not profile.state:
            # Nobody asked him for a region: "no programme for your region" would be untrue.
            reasons = t("route.step.urgent")
        if programme.notice:
            # Operator text may open with the programme's name: never the first line.
            out.append(self.to_person(person, t("route.notice", text=programme.notice[_loc(t)])))
        if not route.opens_case:
            self.event(None, programme.id, "referred")
            text = t(
                "route.referral",
                programme=programme.name,
                description=programme.description[_loc(t)],
                reasons=reasons,
                contacts=contact_lines(programme, t) or t("contact.none"),
            )
            out.append(self.to_person(person, text))
            out.extend(self._language_note(person, route, profile, t))
            if message:  # nothing typed is dropped silently
                out.append(self.to_person(person, t("route.unsent")))
            out.extend(self._extras(person, route, profile, t))
            if chat_fallback(self.directory, programme.id) is not None:  # never a dead end
                button = Button(t("route.chat_offer.button"), "referred:chat")
                out.append(self.to_person(person, t("route.chat_offer"), ((button,),)))
            return out

        code = await self._free_code()
        expiry = self.case_expiry()
        key_id, dek = self.uow.keys.create(expiry)
        case = Case(
            id=new_id(),
            code=code,
            contact_id=person.contact.id,
            key_id=key_id,
            programme_id=programme.id,
            status="new",
            audience=(
                profile.audience.value if effect.data.get("audience_known", True) else "unknown"
            ),
            scene=profile.scene.value if profile.scene else None,
            region=profile.state,
            district=profile.district,
            language=profile.language,
            in_prison=profile.in_prison,
            urgent=person.contact.urgent,
            danger=danger if person.contact.urgent else None,
            route_step=route.step,
            opened_at=hour(self.now),
            last_activity_at=hour(self.now),
            delete_after=expiry,
            source=profile.source,
            escalated=0,
        )
        self.uow.session.add(case)
        person.case, person.case_loaded = case, True
        self.event(
            case,
            programme.id,
            "opened",
            audience=case.audience,
            scene=case.scene,
            region=case.region,
            source=case.source,
        )
        if message:
            self._hold(case, dek, message, 0)
        due = self.set_urgent_due(case, programme, dek) if case.urgent else None
        person.contact.delete_after = expiry
        text = t(
            "route.case.named" if self.name_programme else "route.case",
            programme=programme.name,
            code=code,
            reasons=reasons,
            availability=self.availability(programme, t, urgent=case.urgent),
        )
        out.append(self.to_person(person, text))
        out.extend(self._language_note(person, route, profile, t))
        own = contact_lines(programme, t)
        if own:  # the chat is one way in; the programme's own paths stay open
            out.append(self.to_person(person, t("route.contacts", contacts=own)))
        out.extend(self._extras(person, route, profile, t))
        if case.urgent:
            out.extend(self.closed_notice(person, programme, t))
        out.extend(self.announce(case, programme, route, due))
        return out

    def set_urgent_due(
        self, case: Case, programme: Programme, dek: bytes, rounds: int = 0
    ) -> datetime:
        """Start the urgent window of an unclaimed case; returns when it ends. ``rounds``
        counts the escalations so far: after the first, staff are reminded again after
        a window that doubles each time (at most 16 windows), never left to go quiet."""
        due = self.urgent_due(programme, factor=2 ** min(max(rounds - 1, 0), 4))
        case.urgent_due_ct = self.uow.keys.seal_json(
            dek, "cases", "urgent_due", case.id, {"due": due.isoformat(), "rounds": rounds}
        )
        return due

    async def restart_urgent_window(self, case: Case, programme: Programme) -> datetime | None:
        """An urgent case back in a queue (released, transferred): a new window from now."""
        if not case.urgent or case.key_id is None:
            return None
        return self.set_urgent_due(case, programme, await self.uow.keys.get(case.key_id))

    def urgent_due(self, programme: Programme, factor: int = 1) -> datetime:
        """When an unclaimed urgent case goes to the coordinator (office time counted)."""
        window = programme.urgent_window_minutes * factor
        oh = programme.office_hours
        if oh is None:
            return self.now + timedelta(minutes=window)
        return oh.after_open_time(self.now, window)

    def closed_notice(
        self, person: Person, programme: Programme, t: Translator
    ) -> list[OutboundMessage]:
        """Outside office hours, say honestly that nobody may read it now, and who helps.

        Without office hours nobody knows (a 24/7 service states all days 00:00-24:00).
        """
        oh = programme.office_hours
        if oh is None:
            return [self.to_person(person, t("crisis.closed.unknown"))]
        if oh.is_open(self.now):
            return []
        nxt = oh.next_opening(self.now)
        when = nxt.astimezone(oh.zone) if nxt else t("availability.unknown")  # per locale
        return [self.to_person(person, t("crisis.closed", when=when))]

    async def _free_code(self) -> str:
        for _ in range(20):
            code = new_case_code()
            if not await self.uow.cases.code_taken(code):
                return code
        raise RuntimeError("no free case code")

    def _hold(self, case: Case, dek: bytes, text: str, seq: int) -> None:
        row_id = new_id()
        ct = self.uow.keys.seal_json(dek, "held_messages", "text", row_id, text)
        expiry = hour(self.now) + timedelta(days=self.retention.held_message_days)
        self.uow.session.add(
            HeldMessage(id=row_id, case_id=case.id, seq=seq, text_ct=ct, delete_after=expiry)
        )

    def _language_note(
        self, person: Person, route: Route, profile: Profile, t: Translator
    ) -> list[OutboundMessage]:
        """When the programme is not known to speak the person's language, say so and
        offer (a) language mediation where the directory lists it for the region,
        (b) English or simple German here, (c) the programme's contact details."""
        if route.language_gap is None:
            return []
        offers = []
        if route.mediation is not None:
            contact = f" ({route.mediation.contact})" if route.mediation.contact else ""
            offers.append(t("route.language.mediation", name=route.mediation.name, contact=contact))
        offers.append(t("route.language.simple"))
        contacts = contact_lines(route.programme, t) or t("contact.none")
        offers.append(t("route.language.contacts", contacts=contacts))
        head = t(f"route.language.{route.language_gap}", language=language_name(profile.language))
        text = head + "\n" + t("route.language.offers", offers="\n".join(offers))
        return [self.to_person(person, text)]

    def _extras(
        self, person: Person, route: Route, profile: Profile, t: Translator
    ) -> list[OutboundMessage]:
        out = []
        info = route.programme.info.get(profile.audience)
        if info:
            out.append(self.to_person(person, t("route.info", text=info[_loc(t)])))
        elif profile.audience in FIRST_ADVICE:  # the operator's own advice comes first
            out.append(self.to_person(person, t(f"advice.{profile.audience.value}")))
        lines = [line for line in (listed_contacts(p, t) for p in route.alternatives) if line]
        if lines:
            out.append(self.to_person(person, t("route.alternatives", contacts="\n".join(lines))))
        return out

    def explain(self, route: Route, t: Translator, *, staff: bool = False) -> str:
        """Why this programme, in the reader's words (``staff``: the routing reason for
        staff, never a text addressed to the person)."""
        key = f"staff.route.{route.step}" if staff else f"route.step.{route.step}"
        return t(key, reasons=self.reasons(route, t))

    def reasons(self, route: Route, t: Translator) -> str:
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

    def availability(self, programme: Programme, t: Translator, *, urgent: bool = False) -> str:
        """Who answers when - only what the directory states (no invented promises).

        An urgent case has its own, much shorter window: the usual response time would
        read as "in a day" right after the crisis numbers.
        """
        oh = programme.office_hours
        hours = None if urgent else programme.response_time_hours
        if oh is None and hours is None:
            return t("availability.none")
        parts = []
        if oh is not None and oh.is_open(self.now):
            parts.append(t("availability.open"))
        elif oh is not None:
            nxt = oh.next_opening(self.now)
            when = nxt.astimezone(oh.zone) if nxt else t("availability.unknown")
            parts.append(t("availability.closed", when=when))
        if hours is not None:
            parts.append(t("availability.response", hours=hours))
        if oh is None:
            parts.append(t("crisis.short"))
        return " ".join(parts)

    def announce(
        self,
        case: Case,
        programme: Programme,
        route: Route | None = None,
        due: datetime | None = None,
    ) -> list[OutboundMessage]:
        """Tell the programme's staff rooms about a new case (no account data); an urgent
        one says until when it must be claimed (``due``)."""
        st = self.staff_t(programme)
        text = self.describe(case, st)
        if case.urgent and due is not None:
            zone = programme.office_hours.zone if programme.office_hours else None
            local = due.astimezone(zone) if zone else due
            # Promise the coordinator only where there is one.
            lead = any(m.role == "coordinator" for m in self.coordinator_of(programme, case).staff)
            key = "staff.urgent.window" if lead else "staff.urgent.window.team"
            text += "\n" + st(key, due=local)
        if route is not None:
            text += "\n" + st("staff.case.why", reasons=self.explain(route, st, staff=True))
        buttons = ((Button(st("staff.claim.button"), f"claim:{case.code}"),),)
        return self.to_staff(
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
        waited = max(0, int((hour(self.now) - case.opened_at).total_seconds() // 3600))
        return st(
            "staff.case.summary",
            code=case.code,
            urgent=(
                st("staff.case.urgent", danger=self.danger_label(case, st)) if case.urgent else ""
            ),
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
        programme = self.directory.by_id.get(case.programme_id)
        if programme is None or speaks(programme, case.language):
            return text
        text += st("staff.case.no_common_language")
        mediation = self.directory.mediation_for(case.region, case.language)
        if mediation is not None:
            text += st("staff.case.mediation", name=mediation.name)
        return text

    # -- person side ------------------------------------------------------------------
    async def open_case_of(self, person: Person) -> Case | None:
        """The person's open case (preloaded by the router when possible)."""
        if person.case_loaded:
            return person.case
        return await self.uow.cases.open_of_contact(person.contact.id)

    async def from_person(self, person: Person, text: str, t: Translator) -> list[OutboundMessage]:
        """A message from a person with a case: relay if claimed, else hold it."""
        case = await self.open_case_of(person)
        if case is None:
            return [self.to_person(person, t("case.none"))]
        programme = self.programme_of(case)
        first_this_hour = case.last_activity_at < hour(self.now)
        expiry = self.case_expiry()
        touch(case, last_activity_at=hour(self.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        if case.status == "new" or programme is None:
            seq, size = await self.uow.held.usage(case.id)
            if self.limits.held_full(seq, size + len(text.encode())):
                # Kept bounded: a claim must not flood the staff room (told once).
                if self.limits.tell_held_full(case.id):
                    return [self.to_person(person, t("limits.held_full"))]
                return []
            dek = await self.uow.keys.get(case.key_id or "")
            self._hold(case, dek, text, seq)
            ack = t("case.held")
            if programme is not None and first_this_hour:
                ack += "\n" + self.availability(programme, t)
            return [self.to_person(person, ack)]
        if case.status == "waiting":
            self.set_status(case, "active")
        st = self.staff_t(programme)
        out = self.to_staff(
            programme, st("staff.relay.from_person", code=case.code, text=quote(text)), case=case
        )
        if first_this_hour and case.claimed_by:
            away = await self.uow.session.get(StaffAway, case.claimed_by)
            if away is not None:
                out.append(self.to_person(person, t("case.away", text=away.text)))
        return out

    async def attachment_from_person(
        self, person: Person, source: Address, ref: str, kind: str, t: Translator
    ) -> list[OutboundMessage]:
        """Copy a photo / voice message / file of the person to the case's staff (not stored)."""
        case = await self.open_case_of(person)
        if case is None:
            return [self.to_person(person, t("case.none"))]
        programme = self.programme_of(case)
        if case.status == "new" or programme is None:
            return [self.to_person(person, t("attachment.later"))]
        expiry = self.case_expiry()
        touch(case, last_activity_at=hour(self.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        if case.status == "waiting":
            self.set_status(case, "active")
        st = self.staff_t(programme)
        label = st("staff.relay.attachment", code=case.code, kind=st(f"attachment.{_kind(kind)}"))
        return [
            replace(m, kind=OutKind.COPY, copy_from=source, refs=(ref,))
            for m in self.to_staff(programme, label, case=case)
        ]

    def danger_label(self, case: Case, st: Translator) -> str:
        """The kind of danger in staff words (never the person's text)."""
        return st(f"staff.danger.{case.danger}" if case.danger else "staff.danger.unknown")

    async def mark_urgent(
        self, person: Person, danger: str | None = None, t: Translator | None = None
    ) -> list[OutboundMessage]:
        """Flag the person (and an open case) urgent; alert staff at once, every time.

        Claimed: the claimer is called by alias in the case's thread. Unclaimed: the
        staff room, and the coordinator too. Staff read the kind of danger only.
        """
        person.contact.urgent = True
        case = await self.open_case_of(person)
        if case is None:
            return []
        case.urgent = True
        case.danger = danger or case.danger
        programme = self.programme_of(case)
        if programme is None:
            return []
        st = self.staff_t(programme)
        label = self.danger_label(case, st)
        out: list[OutboundMessage] = []
        if case.claimed_by and case.status != "new" and self._gone(case, case.claimed_by):
            out.extend(await self._release_orphan(case))  # nobody holds it: the queue's
        away = None
        if case.claimed_by and case.status != "new":
            away = await self.uow.session.get(StaffAway, case.claimed_by)
        if t is not None:
            # "We told your counsellor" only when that counsellor is there to read it.
            alerted = "crisis.case.alerted" if away is None else "crisis.case.alerted_team"
            out.append(self.to_person(person, t(alerted)))
            out.extend(self.closed_notice(person, programme, t))
        if case.claimed_by and case.status != "new":
            member = self.directory.member(*case.claimed_by.split("/", 1))
            alias = member.alias if member else "-"
            text = st("staff.urgent.claimed", code=case.code, danger=label, alias=alias)
            out.extend(self.to_staff(programme, text, case=case, urgent=True))
            if away is not None:  # the claimer is away: the coordinator (or the team) too
                out.extend(
                    self.alert_coordinator(
                        case, programme, "staff.urgent.away", always=True, claimer=alias
                    )
                )
            return out
        if case.urgent_due_ct is None and case.key_id is not None:
            self.set_urgent_due(case, programme, await self.uow.keys.get(case.key_id))
        coordinator = self.coordinator_of(programme, case)
        if coordinator.id == programme.id:  # one message in the room, calling the coordinator
            lead = next((m.alias for m in programme.staff if m.role == "coordinator"), None)
            cc = st("staff.urgent.cc", alias=lead) if lead else ""
            text = st("staff.urgent.unclaimed", code=case.code, danger=label, cc=cc)
            return [*out, *self.to_staff(programme, text, case=case, urgent=True)]
        text = st("staff.urgent.unclaimed", code=case.code, danger=label, cc="")
        out.extend(self.to_staff(programme, text, case=case, urgent=True))
        out.extend(self.alert_coordinator(case, programme, "staff.urgent.coordinator"))
        return out

    def alert_coordinator(
        self, case: Case, programme: Programme, key: str, *, always: bool = False, **params: object
    ) -> list[OutboundMessage]:
        """Tell the coordinator about an urgent case (by alias in the programme's room,
        or in the state coordination office's room). Without any coordinator the
        programme's room reads it only if ``always`` (it was told already otherwise)."""
        coordinator = self.coordinator_of(programme, case)
        ct = self.staff_t(coordinator)
        alias = next((m.alias for m in coordinator.staff if m.role == "coordinator"), None)
        if alias is None and not always:
            return []
        alias = alias or ct("staff.urgent.team")
        text = ct(
            key,
            code=case.code,
            danger=self.danger_label(case, ct),
            programme=programme.name,
            alias=alias,
            **params,
        )
        same = coordinator.id == programme.id
        return self.to_staff(coordinator, text, case=case if same else None, urgent=True)

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
        address = person.address(self.uow)
        cases = await self.uow.cases.of_contact(person.contact.id)
        key_ids = [k for k in {person.contact.key_id, *(c.key_id for c in cases)} if k]
        out: list[OutboundMessage] = []
        case_ids = [c.id for c in cases]
        for case in cases:
            programme = self.programme_of(case)
            if case.status != "closed" and programme is not None:
                st = self.staff_t(programme)
                out.extend(self.to_staff(programme, st(staff_text, code=case.code), case=case))
            self.event(case, case.programme_id, "erased")
            case.status, case.outcome = "closed", case.outcome or "erased"
            case.contact_id, case.key_id, case.claimed_by = None, None, None
            case.pending_transfer, case.danger, case.urgent_due_ct = None, None, None
        await self.uow.session.flush()
        if case_ids:
            await drop_followups(self.uow, case_ids)
            for model in (HeldMessage, CaseNote, CaseMember):
                await self.uow.session.execute(delete(model).where(model.case_id.in_(case_ids)))
        await self.uow.contacts.delete(person.contact)
        await self.uow.session.flush()
        self.uow.keys.shred(key_ids)
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
        rows = (
            (
                await self.uow.session.execute(
                    select(MessageRef).where(MessageRef.contact_id == person.contact.id)
                )
            )
            .scalars()
            .all()
        )
        refs = [
            str(self.uow.keys.open_json(person.dek, "message_refs", "ref", r.id, r.ref_ct))
            for r in rows
            if r.delete_after > self.now
        ]
        if current_ref:
            refs.append(current_ref)
        await self.uow.session.execute(
            delete(MessageRef).where(MessageRef.contact_id == person.contact.id)
        )
        return [
            OutboundMessage(
                person.address(self.uow),
                "",
                kind=OutKind.VANISH,
                refs=tuple(refs),
                contact_id=person.contact.id,
            )
        ]

    async def transfer_answer(
        self,
        person: Person,
        yes: bool,
        t: Translator,
    ) -> list[OutboundMessage]:
        """The person agreed to (or declined) a transfer to another programme."""
        case = await self.open_case_of(person)
        if case is None or case.pending_transfer is None:
            return [self.to_person(person, t("transfer.none"))]
        old = self.programme_of(case)
        target = self.directory.by_id.get(case.pending_transfer)
        case.pending_transfer = None
        if not yes or target is None or old is None:
            out = [self.to_person(person, t("transfer.declined"))]
            if old is not None:
                st = self.staff_t(old)
                out.extend(
                    self.to_staff(old, st("staff.transfer.declined", code=case.code), case=case)
                )
            return out
        st = self.staff_t(old)
        out = self.to_staff(
            old, st("staff.transfer.done", code=case.code, programme=target.name), case=case
        )
        out.extend(await self._close_threads(case, old))
        self.event(case, old.id, f"transfer_out:{target.id}")
        case.programme_id, case.claimed_by, case.escalated = target.id, None, 0
        case.status = "new"
        due = await self.restart_urgent_window(case, target)  # the new programme's window
        self.event(case, target.id, "transfer_in")
        await self.uow.session.execute(delete(CaseMember).where(CaseMember.case_id == case.id))
        # The old programme's internal notes stay with it: the person agreed to the new
        # programme seeing their answers and new messages, nothing more (transfer.ask).
        await self.uow.session.execute(delete(CaseNote).where(CaseNote.case_id == case.id))
        # Check-ins were the old counsellor's; the new programme decides its own.
        await drop_followups(self.uow, [case.id])
        out.append(
            self.to_person(
                person,
                t(
                    "transfer.accepted",
                    programme=target.name,
                    availability=self.availability(target, t),
                ),
            )
        )
        out.extend(self.announce(case, target, due=due))
        return out

    async def who(self, person: Person, t: Translator) -> list[OutboundMessage]:
        """Who reads along: the programme (and counsellor alias), on the person's request."""
        case = await self.open_case_of(person)
        programme = self.programme_of(case) if case is not None else None
        if case is None or programme is None:
            return [self.to_person(person, t("who.none"))]
        description = programme.description[_loc(t)]
        member = None
        if case.claimed_by:
            member = self.directory.member(*case.claimed_by.split("/", 1))
        if member is None:
            text = t("who.waiting", programme=programme.name, description=description)
        else:
            text = t(
                "who.case", alias=member.alias, programme=programme.name, description=description
            )
        return [self.to_person(person, text)]

    async def _close_threads(self, case: Case, programme: Programme) -> list[OutboundMessage]:
        """Close the case's topics / rooms of a programme it leaves; forget them here."""
        rows = (
            (
                await self.uow.session.execute(
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
        await self.uow.session.execute(
            delete(StaffThread).where(
                StaffThread.case_id == case.id, StaffThread.programme_id == programme.id
            )
        )
        return out

    async def person_followups(
        self,
        person: Person,
        action: str,
        t: Translator,
    ) -> list[OutboundMessage]:
        """The person chooses how check-ins go on: ``pause``, ``resume``, ``less`` (twice
        the interval) or ``stop`` (the follow-up and its job are deleted). The counsellor
        is told what the person chose."""
        case = await self.open_case_of(person)
        row = None
        if case is not None:
            row = (
                await self.uow.session.execute(select(FollowUp).where(FollowUp.case_id == case.id))
            ).scalar_one_or_none()
        if row is None or case is None:
            return [self.to_person(person, t("followup.none"))]
        if action == "stop":
            self.uow.jobs.append(JobChange(row.id, None))
            await self.uow.session.delete(row)
            key = "followup.stopped"
        elif action == "less":
            if row.every_days:
                days = min(365, row.every_days * 2)
                row.due_at += timedelta(days=days - row.every_days)
                row.every_days = days
            else:  # a single check-in: twice as far away as it is now
                row.due_at += max(row.due_at - self.now, timedelta(days=1))
            row.paused = False
            self.uow.jobs.append(JobChange(row.id, row.due_at))
            key = "followup.less"
        else:
            row.paused = action == "pause"
            key = "followup.paused" if row.paused else "followup.resumed"
        out = [
            self.to_person(
                person,
                t(key, date=f"{row.due_at:%d.%m.%Y}"),
                () if action == "stop" else followup_buttons(t, paused=row.paused),
            )
        ]
        programme = self.programme_of(case)
        if programme is not None:
            st = self.staff_t(programme)
            out.extend(
                self.to_staff(
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

    # -- staff side ------------------------------------------------------------------
    async def person_of(self, case: Case) -> Person | None:
        """Load the person behind a case (None after erasure)."""
        if case.contact_id is None:
            return None
        contact = await self.uow.contacts.get(case.contact_id)
        if contact is None:
            return None
        return Person(contact, await self.uow.keys.get(contact.key_id), case, case_loaded=True)

    async def claim(self, case: Case, role: StaffRole) -> list[OutboundMessage] | None:
        """Claim a case; None when someone else was faster."""
        if not await self.uow.cases.claim(case.id, role.key, hour(self.now)):
            return None
        await self.uow.session.refresh(case)
        self.event(case, case.programme_id, "status:claimed")
        st = self.staff_t(role.programme)
        accounts = tuple(f"{p}:{a}" for p, a in role.member.accounts.items())
        out = self.to_staff(
            role.programme,
            st("staff.claimed", alias=role.member.alias, code=case.code),
            case=case,
            kind=OutKind.CASE_CLAIMED,
            invite=accounts,
        )
        out.extend(await self._held_digest(case, role.programme, st))
        person = await self.person_of(case)
        if person is not None:
            pt = addressed(person.contact.locale, case.audience)
            out.append(
                self.to_person(
                    person,
                    pt("case.claimed", alias=role.member.alias, programme=role.programme.name),
                )
            )
        return out

    async def _held_digest(
        self, case: Case, programme: Programme, st: Translator
    ) -> list[OutboundMessage]:
        """The messages held for a case as ONE staff message (bounded by the held caps)."""
        held = await self.uow.held.of_case(case.id)
        self.limits.held_taken(case.id)
        if not held:
            return []
        dek = await self.uow.keys.get(case.key_id or "")
        texts = [
            str(self.uow.keys.open_json(dek, "held_messages", "text", m.id, m.text_ct))
            for m in held
        ]
        await self.uow.held.drop([case.id])
        if len(texts) == 1:
            return self.to_staff(
                programme, st("staff.relay.held", code=case.code, text=quote(texts[0])), case=case
            )
        messages = "\n\n".join(f"({n})\n{quote(text)}" for n, text in enumerate(texts, 1))
        digest = st("staff.relay.held_digest", code=case.code, count=len(texts), messages=messages)
        return self.to_staff(programme, digest, case=case)

    async def release(self, case: Case, role: StaffRole) -> list[OutboundMessage]:
        """Put a claimed case back into the queue."""
        case.claimed_by = None
        self.set_status(case, "new")
        due = await self.restart_urgent_window(case, role.programme)  # back in the queue
        await self.uow.session.execute(delete(CaseMember).where(CaseMember.case_id == case.id))
        st = self.staff_t(role.programme)
        out = self.to_staff(role.programme, st("staff.released", code=case.code), case=case)
        return out + self.announce(case, role.programme, due=due)

    def _gone(self, case: Case, staff_key: str) -> bool:
        """Whether a staff key no longer belongs to the case's programme (removed)."""
        programme_id, _, member_id = staff_key.partition("/")
        return programme_id != case.programme_id or (
            self.directory.member(programme_id, member_id) is None
        )

    async def release_orphans(self) -> list[OutboundMessage]:
        """After a directory change: cases held by staff who left go back to the queue.

        Their programme's room reads a note and the new-case announcement (urgent ones
        with a fresh window, and the coordinator is called); the person learns that
        someone else will answer. Further counsellors who left are taken off the case.
        """
        held = (
            await self.uow.session.execute(
                select(Case).where(Case.claimed_by.is_not(None), Case.status != "closed")
            )
        ).scalars()
        out: list[OutboundMessage] = []
        for case in list(held):
            if case.claimed_by is not None and self._gone(case, case.claimed_by):
                out.extend(await self._release_orphan(case))
        shared = (await self.uow.session.execute(select(CaseMember))).scalars()
        for row in list(shared):
            on = await self.uow.session.get(Case, row.case_id)
            if on is None or self._gone(on, row.staff_key):
                await self.uow.session.delete(row)
        return out

    async def _release_orphan(self, case: Case) -> list[OutboundMessage]:
        """One case whose claimer left: to a colleague already on it, else back to the
        queue (see :meth:`release_orphans`)."""
        programme = self.programme_of(case)
        if programme is None:  # the programme itself left: not this method's business
            return []
        rows = (
            await self.uow.session.execute(select(CaseMember).where(CaseMember.case_id == case.id))
        ).scalars()
        for row in list(rows):
            _, _, member_id = row.staff_key.partition("/")
            gone = self._gone(case, row.staff_key)
            member = None if gone else self.directory.member(programme.id, member_id)
            if member is None or member.role != "counsellor":
                continue
            # A colleague invited to the case goes on with it (the person knows them).
            case.claimed_by = row.staff_key
            await self.uow.session.delete(row)
            self.event(case, programme.id, "handover")
            st = self.staff_t(programme)
            out = self.to_staff(
                programme, st("staff.handover", code=case.code, alias=member.alias), case=case
            )
            person = await self.person_of(case)
            if person is not None:
                pt = addressed(person.contact.locale, case.audience)
                text = pt("case.handover", alias=member.alias, programme=programme.name)
                out.append(self.to_person(person, text))
            return out
        case.claimed_by = None
        self.set_status(case, "new")
        self.event(case, programme.id, "status:orphaned")
        due = await self.restart_urgent_window(case, programme)
        await self.uow.session.execute(delete(CaseMember).where(CaseMember.case_id == case.id))
        st = self.staff_t(programme)
        out = self.to_staff(programme, st("staff.orphaned", code=case.code), case=case)
        out.extend(self.announce(case, programme, due=due))
        if case.urgent:
            out.extend(self.alert_coordinator(case, programme, "staff.urgent.coordinator"))
        person = await self.person_of(case)
        if person is not None:
            pt = addressed(person.contact.locale, case.audience)
            out.append(self.to_person(person, pt("case.orphaned")))
        return out

    async def members(self, case: Case) -> set[str]:
        """Staff keys allowed to write on a case: the claimer and invited counsellors."""
        rows = await self.uow.session.execute(
            select(CaseMember.staff_key).where(CaseMember.case_id == case.id)
        )
        keys = {k for (k,) in rows}
        if case.claimed_by:
            keys.add(case.claimed_by)
        return keys

    async def to_person_from(
        self,
        case: Case,
        role: StaffRole,
        text: str,
    ) -> list[OutboundMessage]:
        """Relay a counsellor's message under alias and programme name."""
        person = await self.person_of(case)
        st = self.staff_t(role.programme)
        if person is None:
            return self.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        expiry = self.case_expiry()
        if case.status in ("claimed", "waiting"):
            if not await self.uow.events.exists(case.id, "first_reply"):
                wait = (day(self.now) - day(case.opened_at)).days
                self.event(case, case.programme_id, "first_reply", wait_days=wait)
            self.set_status(case, "active")
        touch(case, last_activity_at=hour(self.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        pt = addressed(person.contact.locale, case.audience)
        body = pt(
            "relay.from_counsellor.named" if self.name_programme else "relay.from_counsellor",
            alias=role.member.alias,
            programme=role.programme.name,
            text=text,
        )
        return [self.to_person(person, body)]

    async def attachment_to_person(
        self, case: Case, role: StaffRole, source: Address, ref: str
    ) -> list[OutboundMessage]:
        """Copy a counsellor's photo / file to the person under alias and programme name."""
        person = await self.person_of(case)
        if person is None:
            st = self.staff_t(role.programme)
            return self.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        pt = addressed(person.contact.locale, case.audience)
        label = pt(
            "relay.attachment_from_counsellor.named"
            if self.name_programme
            else "relay.attachment_from_counsellor",
            alias=role.member.alias,
            programme=role.programme.name,
        )
        message = self.to_person(person, label)
        return [replace(message, kind=OutKind.COPY, copy_from=source, refs=(ref,))]

    async def close(self, case: Case, role: StaffRole, outcome: str) -> list[OutboundMessage]:
        """Close a case with an outcome; its keys are shredded after the grace period."""
        self.set_status(case, "closed")
        case.outcome = outcome
        case.danger, case.urgent_due_ct = None, None  # the kind of danger ends with the case
        self.event(case, case.programme_id, f"outcome:{outcome}")
        grace = hour(self.now) + timedelta(days=self.retention.closed_grace_days)
        case.delete_after = grace
        await drop_followups(self.uow, [case.id])
        st = self.staff_t(role.programme)
        out = self.to_staff(
            role.programme, st("staff.closed", code=case.code, outcome=outcome), case=case
        )
        person = await self.person_of(case)
        if person is not None:
            person.contact.state = "new"
            person.contact.delete_after = hour(self.now) + timedelta(
                hours=self.retention.intake_hours
            )
            pt = addressed(person.contact.locale, case.audience)
            out.append(self.to_person(person, pt("case.closed")))
        if self.retention.closed_grace_days == 0:
            await self.uow.held.drop([case.id])
            await self.uow.session.execute(delete(CaseNote).where(CaseNote.case_id == case.id))
            if case.key_id:
                key_id, case.key_id = case.key_id, None
                await self.uow.session.flush()
                self.uow.keys.shred([key_id])
        return out

    async def pause(self, case: Case, role: StaffRole) -> list[OutboundMessage]:
        """Mark a case as waiting (e.g. for the person); a message from them resumes it."""
        self.set_status(case, "waiting")
        st = self.staff_t(role.programme)
        return self.to_staff(role.programme, st("staff.paused", code=case.code), case=case)

    async def invite(self, case: Case, role: StaffRole, who: str) -> list[OutboundMessage]:
        """Bring a second counsellor of the same programme onto the case."""
        st = self.staff_t(role.programme)
        member = _find_member(role.programme, who)
        if member is None or member.role != "counsellor":
            return self.to_staff(role.programme, st("staff.invite.unknown", who=who), case=case)
        key = f"{role.programme.id}/{member.id}"
        if key not in await self.members(case):
            self.uow.session.add(
                CaseMember(case_id=case.id, staff_key=key, delete_after=case.delete_after)
            )
            self.event(case, case.programme_id, "member_added")
        accounts = tuple(f"{p}:{a}" for p, a in member.accounts.items())
        return self.to_staff(
            role.programme,
            st("staff.invited", alias=member.alias, code=case.code),
            case=case,
            kind=OutKind.CASE_CLAIMED,
            invite=accounts,
        )

    async def transfer(self, case: Case, role: StaffRole, target: str) -> list[OutboundMessage]:
        """Hand a case to a colleague (at once) or another programme (person asked first)."""
        st = self.staff_t(role.programme)
        member = _find_member(role.programme, target)
        if member is not None and member.role == "counsellor":
            case.claimed_by = f"{role.programme.id}/{member.id}"
            self.event(case, case.programme_id, "handover")
            out = self.to_staff(
                role.programme, st("staff.handover", code=case.code, alias=member.alias), case=case
            )
            person = await self.person_of(case)
            if person is not None:
                pt = addressed(person.contact.locale, case.audience)
                out.append(
                    self.to_person(
                        person,
                        pt("case.handover", alias=member.alias, programme=role.programme.name),
                    )
                )
            return out
        programme = self.directory.by_id.get(target)
        if programme is None or not programme.chat_enabled or programme.id == case.programme_id:
            return self.to_staff(
                role.programme, st("staff.transfer.unknown", target=target), case=case
            )
        person = await self.person_of(case)
        if person is None:
            return self.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        case.pending_transfer = programme.id
        pt = addressed(person.contact.locale, case.audience)
        buttons = (
            (Button(pt("transfer.yes"), "transfer:yes"), Button(pt("transfer.no"), "transfer:no")),
        )
        text = pt(
            "transfer.ask",
            programme=programme.name,
            description=programme.description[_loc(pt)],
        )
        if programme.state_authority:  # said before the person agrees, as at first routing
            authority = programme.operator_name or programme.name
            text += "\n" + pt(
                "authority.part.transfer", programme=programme.name, authority=authority
            )
        ask = self.to_person(person, text, buttons)
        return [
            *self.to_staff(
                role.programme,
                st("staff.transfer.asked", code=case.code, programme=programme.name),
                case=case,
            ),
            ask,
        ]

    async def note(self, case: Case, role: StaffRole, text: str) -> list[OutboundMessage]:
        """Keep an internal note, encrypted under the case key; never relayed."""
        st = self.staff_t(role.programme)
        if case.key_id is None:
            return self.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        dek = await self.uow.keys.get(case.key_id)
        row_id = new_id()
        self.uow.session.add(
            CaseNote(
                id=row_id,
                case_id=case.id,
                author=role.member.alias,
                text_ct=self.uow.keys.seal_json(dek, "case_notes", "text", row_id, text),
                created_at=hour(self.now),
                delete_after=case.delete_after,
            )
        )
        return self.to_staff(role.programme, st("staff.note.saved", code=case.code), case=case)

    async def notes(self, case: Case, role: StaffRole) -> list[OutboundMessage]:
        """List a case's notes (staff room only)."""
        st = self.staff_t(role.programme)
        rows = (
            (
                await self.uow.session.execute(
                    select(CaseNote)
                    .where(CaseNote.case_id == case.id)
                    .order_by(CaseNote.created_at)
                )
            )
            .scalars()
            .all()
        )
        if not rows or case.key_id is None:
            return self.to_staff(role.programme, st("staff.note.none", code=case.code), case=case)
        dek = await self.uow.keys.get(case.key_id)
        lines = [
            f"{r.created_at:%d.%m. %H}h {r.author}:\n"
            + quote(str(self.uow.keys.open_json(dek, "case_notes", "text", r.id, r.text_ct)))
            for r in rows
        ]
        return self.to_staff(
            role.programme, st("staff.note.list", code=case.code, notes="\n".join(lines)), case=case
        )

    async def canned(self, case: Case, role: StaffRole, name: str) -> list[OutboundMessage]:
        """Send a canned reply of the programme in the person's language."""
        st = self.staff_t(role.programme)
        texts = role.programme.canned.get(name)
        person = await self.person_of(case)
        if texts is None:
            names = ", ".join(sorted(role.programme.canned)) or "-"
            return self.to_staff(role.programme, st("staff.canned.unknown", names=names), case=case)
        if person is None:
            return self.to_staff(role.programme, st("staff.case.gone", code=case.code), case=case)
        return await self.to_person_from(case, role, texts[_loc(translator(person.contact.locale))])

    async def away(self, role: StaffRole, text: str | None) -> list[OutboundMessage]:
        """Set or clear a counsellor's absence note."""
        st = self.staff_t(role.programme)
        row = await self.uow.session.get(StaffAway, role.key)
        if text:
            if row is None:
                self.uow.session.add(
                    StaffAway(
                        staff_key=role.key,
                        text=text[:500],
                        delete_after=hour(self.now) + timedelta(days=90),
                    )
                )
            else:
                row.text = text[:500]
            return self.to_staff(role.programme, st("staff.away.set", alias=role.member.alias))
        if row is not None:
            await self.uow.session.delete(row)
        return self.to_staff(role.programme, st("staff.away.cleared", alias=role.member.alias))

    # -- escalation ------------------------------------------------------------------
    async def escalate_urgent(self) -> list[OutboundMessage]:
        """Unclaimed urgent cases past their window. The first time: the coordinator (or,
        without one, the team and the fallback's room), and the person is told once,
        honestly, that it takes longer and which numbers help now. After that: a
        reminder to the staff room and the coordinator every (growing) window until
        someone claims it - an urgent case is never forgotten."""
        out: list[OutboundMessage] = []
        rows = (
            (
                await self.uow.session.execute(
                    select(Case).where(Case.status == "new", Case.urgent_due_ct.is_not(None))
                )
            )
            .scalars()
            .all()
        )
        keys = await self.uow.keys.get_many([c.key_id for c in rows if c.key_id])
        for case in rows:
            dek = keys.get(case.key_id or "")
            if dek is None or case.urgent_due_ct is None:
                continue
            state = self.uow.keys.open_json(dek, "cases", "urgent_due", case.id, case.urgent_due_ct)
            # Older rows hold only the deadline (no rounds yet).
            due, rounds = (
                (state["due"], int(state["rounds"])) if isinstance(state, dict) else (state, 0)
            )
            if datetime.fromisoformat(str(due)) > self.now:
                continue
            programme = self.programme_of(case)
            if programme is None:
                case.urgent_due_ct = None
                continue
            self.set_urgent_due(case, programme, dek, rounds + 1)
            waited = max(1, int((self.now - case.opened_at).total_seconds() // 60))
            if rounds == 0:
                self.event(case, programme.id, "escalated_urgent")
                out.extend(
                    self.alert_coordinator(
                        case,
                        programme,
                        "staff.urgent.escalated",
                        always=True,
                        minutes=programme.urgent_window_minutes,
                    )
                )
                out.extend(self.alert_backup(case, programme, waited))
                out.extend(await self.tell_delayed(case))
                continue
            st = self.staff_t(programme)
            label = self.danger_label(case, st)
            text = st("staff.urgent.reminder", code=case.code, danger=label, minutes=waited)
            out.extend(self.to_staff(programme, text, case=case, urgent=True))
            out.extend(
                self.alert_coordinator(
                    case, programme, "staff.urgent.reminder.coordinator", minutes=waited
                )
            )
            out.extend(self.alert_backup(case, programme, waited))
        return out

    def alert_backup(self, case: Case, programme: Programme, minutes: int) -> list[OutboundMessage]:
        """Without any coordinator (own or state office), the first other programme of
        the fallback chain with a staff room hears of the unclaimed urgent case too
        (category and code only; the case stays where it is)."""
        coordinator = self.coordinator_of(programme, case)
        if any(m.role == "coordinator" for m in coordinator.staff):
            return []
        for pid in self.directory.fallback:
            backup = self.directory.by_id.get(pid)
            if backup is None or backup.id == programme.id or not backup.staff_rooms:
                continue
            bt = self.staff_t(backup)
            text = bt(
                "staff.urgent.backup",
                code=case.code,
                danger=self.danger_label(case, bt),
                programme=programme.name,
                minutes=minutes,
            )
            return self.to_staff(backup, text, urgent=True)
        return []

    async def tell_delayed(self, case: Case) -> list[OutboundMessage]:
        """Tell the person once, honestly, that it takes longer, and which numbers help."""
        person = await self.person_of(case)
        if person is None:
            return []
        t = addressed(person.contact.locale, case.audience)
        return [replace(self.to_person(person, t("crisis.delayed")), urgent=True)]

    async def escalate_overdue(self) -> list[OutboundMessage]:
        """Remind staff of unclaimed cases past the promised time, then the coordinator;
        urgent cases past their (much shorter) window first."""
        out: list[OutboundMessage] = await self.escalate_urgent()
        rows = (
            (
                await self.uow.session.execute(
                    select(Case).where(Case.status == "new", Case.escalated < 2)
                )
            )
            .scalars()
            .all()
        )
        for case in rows:
            programme = self.programme_of(case)
            if programme is None:
                continue
            limit = timedelta(hours=programme.response_time_hours or 48)
            waited = self.now - case.opened_at
            if case.escalated == 0 and waited >= limit:
                case.escalated = 1
                st = self.staff_t(programme)
                out.extend(
                    self.to_staff(
                        programme,
                        st(
                            "staff.escalate.reminder",
                            code=case.code,
                            hours=int(waited.total_seconds() // 3600),
                        ),
                        case=case,
                        urgent=case.urgent,
                    )
                )
            elif case.escalated == 1 and waited >= 2 * limit:
                case.escalated = 2
                self.event(case, programme.id, "escalated")
                coordinator = self.coordinator_of(programme, case)
                st = self.staff_t(coordinator)
                out.extend(
                    self.to_staff(
                        coordinator,
                        st(
                            "staff.escalate.coordinator",
                            code=case.code,
                            programme=programme.name,
                            hours=int(waited.total_seconds() // 3600),
                        ),
                    )
                )
        return out

    def coordinator_of(self, programme: Programme, case: Case) -> Programme:
        """The programme itself if it has a coordinator, else the state's coordination office."""
        return self.coordination(programme, case.region)

    def coordination(self, programme: Programme, region: str | None) -> Programme:
        """:meth:`coordinator_of` for a region (no case needed)."""
        if any(m.role == "coordinator" for m in programme.staff):
            return programme
        for p in self.directory.programmes:
            if p.kind is Kind.COORDINATION and region in p.states and p.staff_rooms:
                return p
        return programme

    def urgent_refused(
        self, programme: Programme, danger: str | None, region: str | None
    ) -> list[OutboundMessage]:
        """A cap refused an urgent request: the coordinator (or the team) learns of it.

        Only the kind of danger and how many were refused this hour - no code, no text,
        nothing that points to the person. Told on the first refusal of an hour and then
        every tenth, so a flood of fake requests cannot flood the staff room as well.
        """
        count = self.limits.urgent_refused(programme.id, time.monotonic())
        if count != 1 and count % 10:
            return []
        target = self.coordination(programme, region)
        st = self.staff_t(target)
        alias = next((m.alias for m in target.staff if m.role == "coordinator"), None)
        text = st(
            "staff.urgent.refused",
            danger=st(f"staff.danger.{danger}" if danger else "staff.danger.unknown"),
            programme=programme.name,
            count=count,
            alias=alias or st("staff.urgent.team"),
        )
        return self.to_staff(target, text, urgent=True)


ATTACHMENT_KINDS = ("photo", "voice", "video", "audio", "document", "sticker")


#: Audiences who get a short first advice after routing (texts ``advice.<audience>``,
#: general and factual, from the seed material) unless the programme has its own.
FIRST_ADVICE = frozenset({Audience.RELATIVE, Audience.PROFESSIONAL, Audience.AFFECTED})


def followup_buttons(t: Translator, *, paused: bool = False) -> tuple[tuple[Button, ...], ...]:
    """The person's controls on every follow-up notice and check-in."""
    toggle = ("resume", "followup.button.resume") if paused else ("pause", "followup.button.pause")
    return (
        (Button(t("followup.button.less"), "followup:less"),),
        (Button(t(toggle[1]), f"followup:{toggle[0]}"),),
        (Button(t("followup.button.stop"), "followup:stop"),),
    )


def _kind(kind: str) -> str:
    return kind if kind in ATTACHMENT_KINDS else "document"


def _find_member(programme: Programme, who: str) -> StaffMember | None:
    who = who.strip().casefold()
    return next((m for m in programme.staff if who in (m.id.casefold(), m.alias.casefold())), None)
