"""The case service: opens cases, relays, claims, erases - inside one unit of work.

It turns handler effects into stored changes and outbound messages. The person
only ever sees programme name and counsellor alias; staff only see the case code.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.clock import day, hour
from bot.messages import Address, Button, OutboundMessage, Platform
from config.directory import Directory, Programme, StaffMember
from config.i18n import Translator, translator
from config.settings import RetentionSettings
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES
from handlers.base import Effect
from handlers.intake import contact_lines
from handlers.routing import Profile, Route
from storage.models import Case, Contact, HeldMessage, touch
from storage.repositories import UnitOfWork, new_case_code, new_id

STATS_DAYS = 3 * 365


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
        return Address(Platform(data["p"]), str(data["c"]), data.get("t"))


@dataclass(frozen=True, slots=True)
class StaffRole:
    """A staff account acting for one programme."""

    programme: Programme
    member: StaffMember

    @property
    def key(self) -> str:
        """The stored reference (``programme/member``), never the platform account."""
        return f"{self.programme.id}/{self.member.id}"


class CaseService:
    """Applies case effects for one unit of work."""

    def __init__(self, uow: UnitOfWork, directory: Directory, retention: RetentionSettings) -> None:
        self.uow = uow
        self.directory = directory
        self.retention = retention

    # -- helpers ------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The unit's time."""
        return self.uow.now

    def staff_rooms(self, programme: Programme) -> list[Address]:
        """Where a programme's staff read."""
        return [Address(Platform(p), room) for p, room in programme.staff_rooms.items()]

    def _to_staff(
        self,
        programme: Programme,
        text: str,
        buttons: tuple[tuple[Button, ...], ...] = (),
        urgent: bool = False,
    ) -> list[OutboundMessage]:
        return [
            OutboundMessage(a, text, buttons, urgent=urgent, protect=False)
            for a in self.staff_rooms(programme)
        ]

    def _event(self, case: Case | None, programme_id: str, kind: str) -> None:
        self.uow.events.add(
            case.id if case else None,
            programme_id,
            kind,
            day(self.now),
            hour(self.now) + timedelta(days=STATS_DAYS),
        )

    def case_expiry(self) -> datetime:
        """Deletion date of an open case (extended by activity)."""
        return hour(self.now) + timedelta(days=self.retention.inactive_case_days)

    def staff_t(self, programme: Programme) -> Translator:
        """Staff-room language of a programme (its first member's locale)."""
        return translator(programme.staff[0].locale if programme.staff else "de")

    # -- opening --------------------------------------------------------------
    async def open_case(
        self, person: Person, effect: Effect, t: Translator
    ) -> list[OutboundMessage]:
        """Open a case (or refer) after routing; tell the person who answers and when."""
        route: Route = effect.data["route"]
        profile: Profile = effect.data["profile"]
        message: str | None = effect.data.get("message")
        programme = route.programme
        address = person.address(self.uow)
        out: list[OutboundMessage] = []
        reasons = self.explain(route, t)
        if programme.notice:
            out.append(OutboundMessage(address, programme.notice[_loc(t)]))
        if not route.opens_case:
            self._event(None, programme.id, "referred")
            text = t(
                "route.referral",
                programme=programme.name,
                reasons=reasons,
                contacts=contact_lines(programme, t) or t("contact.none"),
            )
            out.append(OutboundMessage(address, text))
            out.extend(self._extras(address, route, profile, t))
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
            audience=profile.audience.value,
            scene=profile.scene.value if profile.scene else None,
            region=profile.state,
            district=profile.district,
            language=profile.language,
            in_prison=profile.in_prison,
            urgent=person.contact.urgent,
            route_step=route.step,
            opened_at=hour(self.now),
            last_activity_at=hour(self.now),
            delete_after=expiry,
        )
        self.uow.session.add(case)
        person.case, person.case_loaded = case, True
        self._event(case, programme.id, "opened")
        if message:
            self._hold(case, dek, message, 0)
        person.contact.delete_after = expiry
        text = t(
            "route.case",
            programme=programme.name,
            code=code,
            reasons=reasons,
            availability=self.availability(programme, t),
        )
        out.append(OutboundMessage(address, text))
        out.extend(self._extras(address, route, profile, t))
        out.extend(self.announce(case, programme, route))
        return out

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

    def _extras(
        self, address: Address, route: Route, profile: Profile, t: Translator
    ) -> list[OutboundMessage]:
        out = []
        info = route.programme.info.get(profile.audience)
        if info:
            out.append(OutboundMessage(address, t("route.info", text=info[_loc(t)])))
        lines = [contact_lines(p, t) for p in route.alternatives]
        lines = [line for line in lines if line]
        if lines:
            out.append(OutboundMessage(address, t("route.alternatives", contacts="\n".join(lines))))
        return out

    def explain(self, route: Route, t: Translator) -> str:
        """Why this programme, in the person's words."""
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
        return t(f"route.step.{route.step}", reasons=", ".join(parts))

    def availability(self, programme: Programme, t: Translator) -> str:
        """Who answers when: office hours and promised response time."""
        hours = programme.response_time_hours or 48
        oh = programme.office_hours
        if oh is None or oh.is_open(self.now):
            return t("availability.open", hours=hours)
        nxt = oh.next_opening(self.now)
        when = nxt.strftime("%d.%m. %H:%M") if nxt else t("availability.unknown")
        return t("availability.closed", when=when, hours=hours)

    def announce(
        self,
        case: Case,
        programme: Programme,
        route: Route | None = None,
    ) -> list[OutboundMessage]:
        """Tell the programme's staff rooms about a new case (no account data)."""
        st = self.staff_t(programme)
        text = self.describe(case, st)
        if route is not None:
            text += "\n" + st("staff.case.why", reasons=self.explain(route, st))
        buttons = ((Button(st("staff.claim.button"), f"claim:{case.code}"),),)
        return self._to_staff(programme, text, buttons, urgent=case.urgent)

    def describe(self, case: Case, st: Translator) -> str:
        """One case for staff: code, audience, scene, region, language, urgency, waiting."""
        region = STATES.get(case.region or "", st("staff.case.no_region"))
        if case.district:
            region += f" ({MV_DISTRICTS.get(case.district, case.district)})"
        waited = max(0, int((hour(self.now) - case.opened_at).total_seconds() // 3600))
        return st(
            "staff.case.summary",
            code=case.code,
            urgent=st("staff.case.urgent") if case.urgent else "",
            audience=st(f"reason.audience.{case.audience}"),
            scene=st(f"reason.scene.{case.scene}") if case.scene else "-",
            region=region,
            language=LANGUAGES.get(case.language, case.language),
            prison=st("staff.case.prison") if case.in_prison else "",
            waited=waited,
        )

    # -- person side ------------------------------------------------------------
    async def from_person(self, person: Person, text: str, t: Translator) -> list[OutboundMessage]:
        """A message from a person with a case: relay if claimed, else hold it."""
        case = await self._open_case(person)
        if case is None:
            return [OutboundMessage(person.address(self.uow), t("case.none"))]
        programme = self.directory.by_id.get(case.programme_id)
        expiry = self.case_expiry()
        touch(case, last_activity_at=hour(self.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        if case.status == "new" or programme is None:
            dek = await self.uow.keys.get(case.key_id or "")
            seq = await self.uow.held.count(case.id)
            self._hold(case, dek, text, seq)
            return [OutboundMessage(person.address(self.uow), t("case.held"))]
        st = self.staff_t(programme)
        return self._to_staff(programme, st("staff.relay.from_person", code=case.code, text=text))

    async def _open_case(self, person: Person) -> Case | None:
        if person.case_loaded:
            return person.case
        return await self.uow.cases.open_of_contact(person.contact.id)

    async def mark_urgent(self, person: Person) -> list[OutboundMessage]:
        """Flag the person (and an open case) urgent; alert staff at once."""
        person.contact.urgent = True
        case = await self._open_case(person)
        if case is None or case.urgent:
            return []
        case.urgent = True
        programme = self.directory.by_id.get(case.programme_id)
        if programme is None:
            return []
        st = self.staff_t(programme)
        return self._to_staff(programme, st("staff.case.now_urgent", code=case.code), urgent=True)

    async def erase(self, person: Person, t: Translator, *, receipt: bool) -> list[OutboundMessage]:
        """Erase a person: contact, held messages, keys; cases stay as anonymous statistics."""
        address = person.address(self.uow)
        cases = await self.uow.cases.of_contact(person.contact.id)
        key_ids = [k for k in {person.contact.key_id, *(c.key_id for c in cases)} if k]
        out: list[OutboundMessage] = []
        for case in cases:
            programme = self.directory.by_id.get(case.programme_id)
            if case.status != "closed" and programme is not None:
                st = self.staff_t(programme)
                out.extend(self._to_staff(programme, st("staff.case.erased", code=case.code)))
            self._event(case, case.programme_id, "erased")
            case.status, case.outcome, case.contact_id = "closed", case.outcome or "erased", None
            case.key_id, case.claimed_by = None, None
        await self.uow.session.flush()
        await self.uow.held.drop([c.id for c in cases])
        await self.uow.contacts.delete(person.contact)
        await self.uow.session.flush()
        await self.uow.keys.shred(key_ids)
        if receipt:
            code = "Q-" + secrets.token_hex(3).upper()
            out.insert(0, OutboundMessage(address, t("delete.done", receipt=code)))
        return out

    # -- staff side ---------------------------------------------------------------
    async def person_of(self, case: Case) -> Person | None:
        """Load the person behind a case (None after erasure)."""
        if case.contact_id is None:
            return None
        contact = await self.uow.contacts.get(case.contact_id)
        if contact is None:
            return None
        return Person(contact, await self.uow.keys.get(contact.key_id))

    async def claim(self, case: Case, role: StaffRole) -> list[OutboundMessage] | None:
        """Claim a case; None when someone else was faster."""
        if not await self.uow.cases.claim(case.id, role.key, hour(self.now)):
            return None
        await self.uow.session.refresh(case)
        self._event(case, case.programme_id, "claimed")
        st = self.staff_t(role.programme)
        out = self._to_staff(
            role.programme, st("staff.claimed", alias=role.member.alias, code=case.code)
        )
        held = await self.uow.held.of_case(case.id)
        if held:
            dek = await self.uow.keys.get(case.key_id or "")
            for msg in held:
                text = self.uow.keys.open_json(dek, "held_messages", "text", msg.id, msg.text_ct)
                out.extend(
                    self._to_staff(
                        role.programme, st("staff.relay.held", code=case.code, text=text)
                    )
                )
            await self.uow.held.drop([case.id])
        person = await self.person_of(case)
        if person is not None:
            pt = translator(person.contact.locale)
            out.append(
                OutboundMessage(
                    person.address(self.uow),
                    pt("case.claimed", alias=role.member.alias, programme=role.programme.name),
                )
            )
        return out

    async def to_person(self, case: Case, role: StaffRole, text: str) -> list[OutboundMessage]:
        """Relay a counsellor's message under alias and programme name."""
        person = await self.person_of(case)
        st = self.staff_t(role.programme)
        if person is None:
            return self._to_staff(role.programme, st("staff.case.gone", code=case.code))
        expiry = self.case_expiry()
        touch(case, status="active", last_activity_at=hour(self.now), delete_after=expiry)
        touch(person.contact, delete_after=expiry)
        pt = translator(person.contact.locale)
        body = pt(
            "relay.from_counsellor",
            alias=role.member.alias,
            programme=role.programme.name,
            text=text,
        )
        return [OutboundMessage(person.address(self.uow), body)]

    async def close(self, case: Case, role: StaffRole, outcome: str) -> list[OutboundMessage]:
        """Close a case with an outcome; the person may start again later."""
        case.status, case.outcome = "closed", outcome
        self._event(case, case.programme_id, f"closed:{outcome}")
        st = self.staff_t(role.programme)
        out = self._to_staff(role.programme, st("staff.closed", code=case.code, outcome=outcome))
        person = await self.person_of(case)
        if person is not None:
            person.contact.state = "new"
            person.contact.delete_after = hour(self.now) + timedelta(
                hours=self.retention.intake_hours
            )
            pt = translator(person.contact.locale)
            out.append(OutboundMessage(person.address(self.uow), pt("case.closed")))
        return out


def _loc(t: Translator) -> Any:
    return t.locale
