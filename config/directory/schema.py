"""The directory schema: programmes, their staff and contacts, mediation, lookups.

The directory is configuration, not personal data: programmes, their regions,
office hours, contact details for people who do not want to chat, and the staff
accounts (per platform) with the alias a person sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from config.directory.fields import Locale, LocalText, Strict, complete, mentions
from config.directory.hours import OfficeHours
from config.vocabulary import MV_DISTRICTS, NATIONAL, STATES, Audience, Kind, Scene

#: Validation context key: loading checks references itself (with line numbers).
DEFER_REFERENCES = "defer_references"
#: Where in the file a problem is: keys and list positions from the top.
Loc = tuple[str | int, ...]


class ContactInfo(Strict):
    """How to reach a programme without the chat (only what the programme published).

    ``email`` may list several addresses (e.g. the programme's and its operator's general
    one); ``via_police`` says the programme can also be reached through the police or
    other cooperation partners, for people who cannot or will not write themselves.
    """

    phone: str | None = None
    email: str | list[str] | None = None
    web: str | None = None
    postal: str | None = None
    via_police: bool = False

    @property
    def emails(self) -> list[str]:
        """The e-mail addresses as a list."""
        if self.email is None:
            return []
        return [self.email] if isinstance(self.email, str) else list(self.email)

    @property
    def any(self) -> bool:
        """At least one way to reach the programme without the chat."""
        return bool(self.phone or self.emails or self.web or self.postal or self.via_police)


class Discretion(Strict):
    """What the person's phone may show (lock screens show a message's first line).

    By default counsellor messages carry the alias only and no first line names a
    programme; ``name_programme: true`` lets an operator name the programme anyway.
    """

    name_programme: bool = False


class Operator(Strict):
    """Who runs a programme. ``state_authority``: a public authority (e.g. an interior
    ministry); a person is told so, and chooses, before a case is handed there."""

    kind: Literal["state_authority", "other"] = "other"
    name: str


class StaffMember(Strict):
    """A counsellor or coordinator. ``accounts`` maps platform -> account id."""

    id: str
    alias: str
    role: Literal["counsellor", "coordinator"] = "counsellor"
    accounts: dict[str, str] = Field(default_factory=dict)
    locale: Locale = "de"


class Programme(Strict):
    """One service a person can be routed to."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")
    name: str
    operator: str | Operator | None = Field(
        default=None, description="a name, or {kind: state_authority, name: ...}"
    )
    kind: Kind
    scenes: list[Scene] = Field(default_factory=list, description="empty: every scene")
    audiences: list[Audience]
    states: list[str]
    districts: list[str] = Field(default_factory=list)
    short_name: str | None = Field(default=None, description="what people call it, e.g. API")
    # Optional facts: shown to a person only when the operator set them (never assumed).
    languages: list[str] | None = None
    prison_support: bool | None = None
    office_hours: OfficeHours | None = None
    response_time_hours: int | None = Field(default=None, ge=1)
    urgent_window_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="an unclaimed urgent case goes to the coordinator after this much office time",
    )
    contact: ContactInfo = Field(default_factory=ContactInfo)
    description: LocalText
    info: dict[Audience, LocalText] = Field(default_factory=dict)
    notice: LocalText | None = Field(default=None, description="said before referring")
    staff: list[StaffMember] = Field(default_factory=list)
    staff_rooms: dict[str, str] = Field(default_factory=dict)
    fallback: list[str] = Field(default_factory=list)
    canned: dict[str, LocalText] = Field(
        default_factory=dict, description="canned replies by short name (de + en)"
    )

    @model_validator(mode="after")
    def _aliases(self) -> Programme:
        # An alias is what a lock screen shows first: it must not give the programme away.
        for member in self.staff:
            if any(mentions(member.alias, n) for n in self.names):
                raise ValueError(f"alias '{member.alias}' names the programme")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """The programme's name and short name (what must not reach a lock screen)."""
        return tuple(n for n in (self.name, self.short_name) if n)

    @field_validator("states")
    @classmethod
    def _states(cls, value: list[str]) -> list[str]:
        for code in value:
            if code != NATIONAL and code not in STATES:
                raise ValueError(
                    f"unknown state '{code}' (use {NATIONAL} or one of {', '.join(STATES)})"
                )
        if not value:
            raise ValueError("at least one state (or DE for national)")
        return value

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: list[str]) -> list[str]:
        for code in value:
            if code not in MV_DISTRICTS:
                raise ValueError(
                    f"unknown district '{code}' (use one of {', '.join(MV_DISTRICTS)})"
                )
        return value

    @field_validator("description", "notice")
    @classmethod
    def _texts(cls, value: LocalText | None) -> LocalText | None:
        return None if value is None else complete(value, "text")

    @field_validator("canned")
    @classmethod
    def _canned(cls, value: dict[str, LocalText]) -> dict[str, LocalText]:
        for name, text in value.items():
            complete(text, f"canned.{name}")
        return value

    @field_validator("info")
    @classmethod
    def _infos(cls, value: dict[Audience, LocalText]) -> dict[Audience, LocalText]:
        for audience, text in value.items():
            complete(text, f"info.{audience}")
        return value

    @property
    def operator_name(self) -> str | None:
        """The operator's name, however it was given."""
        return self.operator.name if isinstance(self.operator, Operator) else self.operator

    @property
    def state_authority(self) -> bool:
        """Run by a state authority: the person is told and chooses before a hand-over."""
        return isinstance(self.operator, Operator) and self.operator.kind == "state_authority"

    @property
    def national(self) -> bool:
        """Serves all of Germany."""
        return NATIONAL in self.states

    @property
    def chat_enabled(self) -> bool:
        """Counsellors take chats (otherwise the bot refers with contact details)."""
        return any(m.role == "counsellor" for m in self.staff)


class Mediation(Strict):
    """A language mediation service ("Sprachmittler" pool) for some states.

    Offered to a person when the programme they are routed to does not (or is not known
    to) speak their language. ``contact`` is shown only when set: nothing is invented.
    """

    states: list[str] = Field(min_length=1)
    name: str
    contact: str | None = None
    languages: list[str] | None = Field(default=None, description="unset: not stated")

    @field_validator("states")
    @classmethod
    def _states(cls, value: list[str]) -> list[str]:
        for code in value:
            if code != NATIONAL and code not in STATES:
                raise ValueError(f"unknown state '{code}'")
        return value


class Directory(Strict):
    """All programmes plus the last-resort fallback chain."""

    verify_before_going_live: bool = False
    notice: str | None = None
    discretion: Discretion = Field(default_factory=Discretion)
    fallback: list[str] = Field(min_length=1)
    programmes: list[Programme] = Field(min_length=1)
    mediation: list[Mediation] = Field(default_factory=list)

    def mediation_for(self, state: str | None, language: str) -> Mediation | None:
        """The first mediation service for a state (or a national one) that does not
        rule the language out."""
        for m in self.mediation:
            if (state in m.states or NATIONAL in m.states) and (
                m.languages is None or language in m.languages
            ):
                return m
        return None

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Directory:
        if isinstance(info.context, dict) and info.context.get(DEFER_REFERENCES):
            return self
        problems = self.reference_problems()
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        return self

    def reference_problems(self) -> list[tuple[Loc, str]]:
        """Duplicate ids and fallbacks to unknown ids, each with its location."""
        problems: list[tuple[Loc, str]] = []
        known: set[str] = set()
        for i, p in enumerate(self.programmes):
            if p.id in known:
                problems.append((("programmes", i, "id"), f"duplicate programme id '{p.id}'"))
            known.add(p.id)
        for i, p in enumerate(self.programmes):
            for j, ref in enumerate(p.fallback):
                if ref not in known:
                    problems.append(
                        (
                            ("programmes", i, "fallback", j),
                            f"programme '{p.id}': fallback '{ref}' is not a programme id",
                        )
                    )
        for j, ref in enumerate(self.fallback):
            if ref not in known:
                problems.append((("fallback", j), f"fallback '{ref}' is not a programme id"))
        return problems

    @cached_property
    def by_id(self) -> dict[str, Programme]:
        """Programmes by id."""
        return {p.id: p for p in self.programmes}

    @cached_property
    def _staff_index(self) -> dict[tuple[str, str], list[tuple[Programme, StaffMember]]]:
        index: dict[tuple[str, str], list[tuple[Programme, StaffMember]]] = {}
        for p in self.programmes:
            for m in p.staff:
                for platform, account in m.accounts.items():
                    index.setdefault((platform, account), []).append((p, m))
        return index

    @cached_property
    def _room_index(self) -> dict[tuple[str, str], list[Programme]]:
        index: dict[tuple[str, str], list[Programme]] = {}
        for p in self.programmes:
            for platform, room in p.staff_rooms.items():
                index.setdefault((platform, room), []).append(p)
        return index

    def staff_roles(self, platform: str, account: str) -> list[tuple[Programme, StaffMember]]:
        """The programmes (and member entries) a platform account is staff of."""
        return self._staff_index.get((platform, account), [])

    def programmes_of_room(self, platform: str, room: str) -> list[Programme]:
        """Programmes whose staff room is this chat."""
        return self._room_index.get((platform, room), [])

    def team_accounts(self, platform: str) -> dict[str, tuple[str, list[str]]]:
        """Programmes with staff on ``platform`` but no staff room there.

        Returns programme id -> (name, staff accounts): the rooms a transport creates.
        """
        return {
            p.id: (p.name, [m.accounts[platform] for m in p.staff if platform in m.accounts])
            for p in self.programmes
            if not p.staff_rooms.get(platform) and any(platform in m.accounts for m in p.staff)
        }

    def with_staff_rooms(self, platform: str, rooms: Mapping[str, str]) -> Directory:
        """A copy in which programmes without a room on ``platform`` use ``rooms[id]``."""
        missing = {
            p.id for p in self.programmes if p.id in rooms and not p.staff_rooms.get(platform)
        }
        if not missing:
            return self
        data = self.model_dump(mode="python")
        for p in data["programmes"]:
            if p["id"] in missing:
                p["staff_rooms"][platform] = rooms[p["id"]]
        return Directory.model_validate(data)

    def member(self, programme_id: str, member_id: str) -> StaffMember | None:
        """A staff member of a programme by id."""
        programme = self.by_id.get(programme_id)
        if programme is None:
            return None
        return next((m for m in programme.staff if m.id == member_id), None)
