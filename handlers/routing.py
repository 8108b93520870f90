"""Routing: deterministic, explainable, never a dead end.

Order of steps:
1. ``match``: a programme of a kind that serves the audience, for the scene, in the
   person's state (district-specific before statewide), preferring the person's
   language and prison support where it matters.
Then, honestly: if the programme is not known to speak the person's language, the
route says so (``language_gap``) and carries the region's mediation service, if any.
2. ``coordination``: the state's coordination office.
3. ``national``: a national programme that fits audience and scene.
4. ``fallback``: the directory's last-resort chain.
Programmes without counsellors in the bot are referrals: the person gets their
contact details instead of a case.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from config.directory import Directory, Mediation, Programme
from config.vocabulary import Audience, Incident, Kind, Scene

#: ``chosen``: the person chose this programme instead of one run by a state authority.
Step = Literal["match", "coordination", "national", "fallback", "chosen"]

#: Which kinds of programme serve which audience.
KINDS_FOR: dict[Audience, tuple[Kind, ...]] = {
    Audience.SELF: (Kind.EXIT, Kind.PREVENTION),
    Audience.RELATIVE: (Kind.EXIT, Kind.PREVENTION, Kind.ADVICE, Kind.HOTLINE),
    Audience.PROFESSIONAL: (Kind.EXIT, Kind.PREVENTION, Kind.ADVICE, Kind.HOTLINE),
    Audience.AFFECTED: (Kind.VICTIM_SUPPORT,),
}


@dataclass(frozen=True, slots=True)
class Profile:
    """The intake answers routing needs (no identifying data)."""

    audience: Audience
    scene: Scene | None = None
    state: str | None = None
    district: str | None = None
    in_prison: bool | None = None
    language: str = "de"
    incident: Incident | None = None
    preferred: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Where a person goes and why.

    ``reasons`` are (kind, value) pairs such as ("scene", "right"), rendered by i18n.
    ``alternatives`` are further fitting programmes whose contacts are shown too.
    """

    programme: Programme
    step: Step
    reasons: tuple[tuple[str, str], ...]
    alternatives: tuple[Programme, ...] = ()
    #: Set when the programme is not known to speak the person's language: ``"none"``
    #: (the directory lists its languages, without this one) or ``"unknown"``.
    language_gap: Literal["none", "unknown"] | None = None
    #: A language mediation service for the person's region (offered with the gap).
    mediation: Mediation | None = None

    @property
    def opens_case(self) -> bool:
        """A case is opened only where counsellors take chats."""
        return self.programme.chat_enabled


def _kinds(profile: Profile) -> tuple[Kind, ...]:
    if profile.audience is Audience.AFFECTED and profile.incident is Incident.ANTISEMITISM:
        return (Kind.INCIDENT_DOCUMENTATION, Kind.VICTIM_SUPPORT)
    return KINDS_FOR[profile.audience]


def _reachable(p: Programme) -> bool:
    """Counsellors chat here, or the person gets contact details: never a dead end."""
    return p.chat_enabled or p.contact.any


def _serves(p: Programme, profile: Profile, kinds: tuple[Kind, ...]) -> bool:
    if p.kind not in kinds or profile.audience not in p.audiences:
        return False
    if profile.audience is Audience.AFFECTED and profile.scene in (None, Scene.OTHER):
        return True  # an attack by an unknown side: any service for those affected
    return not (p.scenes and profile.scene not in p.scenes)


def _rank(p: Programme, profile: Profile, kinds: tuple[Kind, ...]) -> tuple[int, ...]:
    district_fit = 1 if profile.district and profile.district in p.districts else 0
    return (
        # A programme that states it speaks the person's language comes first: a
        # counsellor they cannot talk to helps less than a neighbouring kind of service.
        1 if speaks(p, profile.language) else 0,
        -kinds.index(p.kind),
        district_fit,
        1 if p.chat_enabled else 0,
        1 if profile.in_prison and p.prison_support else 0,
    )


def _regional(p: Programme, profile: Profile) -> bool:
    if profile.state is None or profile.state not in p.states:
        return False
    return not (p.districts and profile.district and profile.district not in p.districts)


def speaks(p: Programme, language: str) -> bool | None:
    """Whether a programme speaks a language: True, False, or None when the directory
    does not say. German is taken for granted (programmes in Germany)."""
    if language == "de" or language in (p.languages or ()):
        return True
    return None if p.languages is None else False


def route(directory: Directory, profile: Profile, skip: frozenset[str] = frozenset()) -> Route:
    """Pick the programme for a profile and say honestly whether it speaks the person's
    language (with a mediation service for the region, if the directory lists one).

    ``skip`` names programmes to leave out (the fallback chain is kept whole if it would
    be empty, so there is still always a route).
    """
    chosen = _route(directory, profile, skip)
    spoken = speaks(chosen.programme, profile.language)
    if spoken:
        return chosen
    return replace(
        chosen,
        language_gap="unknown" if spoken is None else "none",
        mediation=directory.mediation_for(profile.state, profile.language),
    )


def _route(directory: Directory, profile: Profile, skip: frozenset[str] = frozenset()) -> Route:
    """Pick the programme for a profile; always returns a route."""
    kinds = _kinds(profile)
    order = {p.id: i for i, p in enumerate(directory.programmes)}

    def best(candidates: list[Programme]) -> list[Programme]:
        return sorted(
            candidates, key=lambda p: (_rank(p, profile, kinds), -order[p.id]), reverse=True
        )

    reasons: list[tuple[str, str]] = [("audience", profile.audience.value)]
    if profile.incident is not None:
        reasons.append(("incident", profile.incident.value))
    if profile.scene is not None and profile.audience is not Audience.AFFECTED:
        reasons.append(("scene", profile.scene.value))

    serving = [
        p
        for p in directory.programmes
        if p.id not in skip and _serves(p, profile, kinds) and _reachable(p)
    ]
    linked = next((p for p in serving if p.id == profile.preferred), None)
    if linked is not None and (
        profile.state is None or linked.national or _regional(linked, profile)
    ):
        return Route(linked, "match", (*reasons, ("referral", "link")))
    regional = best([p for p in serving if _regional(p, profile)])
    if regional:
        chosen = regional[0]
        region_reasons = [("state", profile.state or "")]
        if profile.district and profile.district in chosen.districts:
            region_reasons.append(("district", profile.district))
        extra = _extras(chosen, profile)
        others = tuple(p for p in regional[1:3] if p.kind != chosen.kind)
        return Route(chosen, "match", (*reasons, *region_reasons, *extra), others)

    if profile.state is not None:
        coordination = [
            p
            for p in directory.programmes
            if p.kind is Kind.COORDINATION
            and p.id not in skip
            and profile.state in p.states
            and profile.audience in p.audiences
            and _reachable(p)
        ]
        if coordination:
            return Route(coordination[0], "coordination", (*reasons, ("state", profile.state)))

    national = best([p for p in serving if p.national])
    if national:
        return Route(
            national[0], "national", (*reasons, ("region", "national")), tuple(national[1:2])
        )

    chain = [directory.by_id[i] for i in directory.fallback if i not in skip] or [
        directory.by_id[i] for i in directory.fallback
    ]
    return Route(chain[0], "fallback", (("fallback", "directory"),), tuple(chain[1:]))


def without_authority(directory: Directory, profile: Profile) -> Route | None:
    """Where routing would also send a person, leaving out programmes run by a state
    authority: a chat with another programme, or None when there is none."""
    skip = frozenset(p.id for p in directory.programmes if p.state_authority)
    if not skip:
        return None
    other = route(directory, profile, skip)
    if other.programme.id in skip or not other.opens_case:
        return None
    return other


def _extras(p: Programme, profile: Profile) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if profile.language in (p.languages or ()) and profile.language != "de":
        out.append(("language", profile.language))
    if profile.in_prison and p.prison_support:
        out.append(("prison", "yes"))
    return out


def chat_fallback(directory: Directory, instead_of: str | None = None) -> Programme | None:
    """The first programme of the fallback chain that takes chats (for a person who was
    referred but would rather write here)."""
    chain = (directory.by_id[i] for i in directory.fallback)
    return next((p for p in chain if p.chat_enabled and p.id != instead_of), None)
