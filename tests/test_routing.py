"""Routing over the example directory: every programme reachable, every step exercised.

Expectations follow the rules in :mod:`handlers.routing`:
1. ``match``: a programme of a kind serving the audience (earlier kind in ``KINDS_FOR``
   first), for the scene, in the person's state; then district fit, chat, language,
   prison support; then directory order.
2. ``coordination``: the state's coordination office.
3. ``national``: a national programme that fits audience and scene.
4. ``fallback``: the directory's fallback chain.
A programme that neither takes chats nor has contact details is never a target: the
person would be left without any way to reach it. Programmes without chat staff are
referral-only targets (issue 12 part 5): every seed programme has a published contact
path in the example, so all of them are reachable.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.directory import Directory, Programme, load_directory
from config.settings import EXAMPLE_DIRECTORY
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES, Audience, Incident, Kind, Scene
from handlers.routing import KINDS_FOR, Profile, Route, route

DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
STEPS = ("match", "coordination", "national", "fallback")
#: Referral-only programmes of the example (no chat staff; reached through their contacts).
REFERRAL_ONLY = {"dia-mv", "lks-mv", "betriebsberatung"}
#: Facts the example must not claim (issue 12 part 6): none of these is unreachable now.
UNREACHABLE: set[str] = set()

SELF, RELATIVE, PROFESSIONAL, AFFECTED = (
    Audience.SELF,
    Audience.RELATIVE,
    Audience.PROFESSIONAL,
    Audience.AFFECTED,
)


def has_contact(p: Programme) -> bool:
    """The person can reach the programme without the chat."""
    return p.contact.any


def variant(change: Callable[[dict[str, Any]], None]) -> Directory:
    """A validated copy of the example directory with ``change`` applied to its data."""
    data = DIRECTORY.model_dump(mode="json")
    change(data)
    return Directory.model_validate(data)


def programme_data(data: dict[str, Any], pid: str) -> dict[str, Any]:
    """The raw entry of a programme in directory data."""
    return next(p for p in data["programmes"] if p["id"] == pid)


def with_web(*pids: str) -> Callable[[dict[str, Any]], None]:
    """A change that gives programmes a (test-only) web address."""

    def change(data: dict[str, Any]) -> None:
        for pid in pids:
            programme_data(data, pid)["contact"] = {"web": f"https://example.org/{pid}"}

    return change


@dataclass(frozen=True)
class Case:
    """One routing expectation."""

    profile: Profile
    programme: str
    step: str
    opens_case: bool
    reasons: tuple[tuple[str, str], ...] = ()
    not_reasons: tuple[tuple[str, str], ...] = ()
    alternatives: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def p(audience: Audience, scene: Scene | None, state: str | None, **kw: Any) -> Profile:
    return Profile(audience=audience, scene=scene, state=state, **kw)


CASES = [
    pytest.param(
        Case(
            p(SELF, Scene.RIGHT, "MV"),
            "jump",
            "match",
            True,
            reasons=(("audience", "self"), ("scene", "right"), ("state", "MV")),
            not_reasons=(("prison", "yes"),),
        ),
        id="self-right-MV-jump",
    ),
    pytest.param(
        # the seeds say nothing about JUMP! and prison: no such claim in the reasons
        Case(
            p(SELF, Scene.RIGHT, "MV", in_prison=True),
            "jump",
            "match",
            True,
            not_reasons=(("prison", "yes"),),
        ),
        id="self-right-MV-prison-jump-no-claim",
    ),
    pytest.param(
        # prison support is a reason only for someone in prison
        Case(
            p(SELF, Scene.RIGHT, "MV", in_prison=False),
            "jump",
            "match",
            True,
            not_reasons=(("prison", "yes"),),
        ),
        id="self-right-MV-not-in-prison",
    ),
    pytest.param(
        Case(
            p(SELF, Scene.ISLAMIST, "MV"), "bidaya", "match", True, reasons=(("scene", "islamist"),)
        ),
        id="self-islamist-MV-bidaya",
    ),
    pytest.param(
        # languages are unknown in the example: no "speaks Arabic" claim
        Case(
            p(SELF, Scene.ISLAMIST, "MV", language="ar"),
            "bidaya",
            "match",
            True,
            not_reasons=(("language", "ar"),),
        ),
        id="self-islamist-MV-arabic-bidaya-no-claim",
    ),
    pytest.param(
        # exit comes before advice for relatives; the advice centre is an alternative
        Case(
            p(RELATIVE, Scene.RIGHT, "MV"),
            "jump",
            "match",
            True,
            reasons=(("audience", "relative"),),
            alternatives=("regionalzentren",),
            extra={"relative_info": True},
        ),
        id="relative-right-MV-jump",
    ),
    pytest.param(
        Case(
            p(RELATIVE, Scene.ISLAMIST, "MV"),
            "bidaya",
            "match",
            True,
            alternatives=("regionalzentren",),
            extra={"relative_info": True},
        ),
        id="relative-islamist-MV-bidaya",
    ),
    pytest.param(
        # no exit/prevention programme for "other" in MV: advice; of the two advice
        # services the one with counsellors in the chat ranks first
        Case(p(PROFESSIONAL, Scene.OTHER, "MV"), "regionalzentren", "match", True),
        id="professional-other-MV-regionalzentren",
    ),
    pytest.param(
        Case(
            p(PROFESSIONAL, Scene.RIGHT, "MV"),
            "jump",
            "match",
            True,
            alternatives=("regionalzentren",),
        ),
        id="professional-right-MV-jump",
    ),
    pytest.param(
        Case(
            p(AFFECTED, None, "MV", incident=Incident.VIOLENCE),
            "lobbi",
            "match",
            True,
            reasons=(("audience", "affected"), ("incident", "violence"), ("state", "MV")),
        ),
        id="affected-violence-MV-lobbi",
    ),
    pytest.param(
        # DIA.MV documents antisemitic incidents: referral-only (its report form on the
        # web), with victim support as the alternative
        Case(
            p(AFFECTED, None, "MV", incident=Incident.ANTISEMITISM),
            "dia-mv",
            "match",
            False,
            reasons=(("incident", "antisemitism"),),
            alternatives=("lobbi",),
        ),
        id="affected-antisemitism-MV-dia-referral",
    ),
    pytest.param(
        # a scene is never a reason for an affected person, even if one was given
        Case(
            p(AFFECTED, Scene.RIGHT, "MV", incident=Incident.OTHER),
            "lobbi",
            "match",
            True,
            not_reasons=(("scene", "right"),),
        ),
        id="affected-other-MV-lobbi-no-scene-reason",
    ),
    pytest.param(
        Case(p(SELF, Scene.RIGHT, "NW"), "spurwechsel", "match", True),
        id="self-right-NW-spurwechsel",
    ),
    pytest.param(
        Case(
            p(SELF, Scene.LEFT, "NW", in_prison=True),
            "left-nrw",
            "match",
            True,
            reasons=(("scene", "left"), ("state", "NW"), ("prison", "yes")),
        ),
        id="self-left-NW-left",
    ),
    pytest.param(
        Case(
            p(SELF, Scene.ISLAMIST, "NW", language="tr"),
            "api-nrw",
            "match",
            True,
            not_reasons=(("language", "tr"),),
        ),
        id="self-islamist-NW-api",
    ),
    pytest.param(
        # a regional exit programme before the national hotline
        Case(p(RELATIVE, Scene.ISLAMIST, "NW"), "api-nrw", "match", True),
        id="relative-islamist-NW-api-not-bamf",
    ),
    pytest.param(
        Case(
            p(RELATIVE, Scene.ISLAMIST, "BY"),
            "bamf",
            "national",
            False,
            reasons=(("region", "national"),),
            extra={"notice": True, "contact": True},
        ),
        id="relative-islamist-BY-bamf",
    ),
    pytest.param(
        Case(
            p(PROFESSIONAL, Scene.ISLAMIST, None),
            "bamf",
            "national",
            False,
            extra={"notice": True, "contact": True},
        ),
        id="professional-islamist-nostate-bamf",
    ),
    pytest.param(
        # the worried mother in Bavaria: nothing regional, no national service for the
        # right-wing scene -> the clearing team answers in the chat
        Case(
            p(RELATIVE, Scene.RIGHT, "BY"),
            "clearing",
            "fallback",
            True,
            reasons=(("fallback", "directory"),),
            extra={"relative_info": True},
        ),
        id="relative-right-BY-clearing",
    ),
    pytest.param(
        # no exit programme for conspiracy milieus in MV: the state coordination office
        # (referral-only, its published web and postal address)
        Case(p(SELF, Scene.CONSPIRACY, "MV"), "lks-mv", "coordination", False),
        id="self-conspiracy-MV-coordination",
    ),
    pytest.param(
        Case(p(SELF, Scene.LEFT, "MV"), "lks-mv", "coordination", False),
        id="self-left-MV-coordination",
    ),
    pytest.param(
        # no victim support in NW and none national
        Case(p(AFFECTED, None, "NW", incident=Incident.VIOLENCE), "clearing", "fallback", True),
        id="affected-violence-NW-clearing",
    ),
    pytest.param(
        Case(p(AFFECTED, None, "NW", incident=Incident.ANTISEMITISM), "clearing", "fallback", True),
        id="affected-antisemitism-NW-clearing",
    ),
    pytest.param(
        Case(p(SELF, Scene.RIGHT, None), "clearing", "fallback", True),
        id="self-right-nostate-clearing",
    ),
    pytest.param(
        Case(p(RELATIVE, Scene.ISLAMIST, None), "bamf", "national", False),
        id="relative-islamist-nostate-bamf",
    ),
    pytest.param(
        Case(p(SELF, None, "BE"), "clearing", "fallback", True),
        id="self-noscene-BE-clearing",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_route_table(case: Case) -> None:
    got = route(DIRECTORY, case.profile)
    assert (got.programme.id, got.step, got.opens_case) == (
        case.programme,
        case.step,
        case.opens_case,
    )
    for reason in case.reasons:
        assert reason in got.reasons
    for reason in case.not_reasons:
        assert reason not in got.reasons
    alternative_ids = [a.id for a in got.alternatives]
    for pid in case.alternatives:
        assert pid in alternative_ids
    if case.extra.get("relative_info"):
        info = got.programme.info.get(Audience.RELATIVE)
        assert info is not None
        assert info["de"].strip()
        assert info["en"].strip()
    if case.extra.get("notice"):
        assert got.programme.notice is not None
        assert "Sicherheitsbehörden" in got.programme.notice["de"]
    if case.extra.get("contact"):
        assert has_contact(got.programme)


def test_dia_mv_is_preferred_for_antisemitism_once_it_can_be_reached() -> None:
    directory = variant(with_web("dia-mv"))
    got = route(directory, p(AFFECTED, None, "MV", incident=Incident.ANTISEMITISM))
    assert got.programme.id == "dia-mv"
    assert got.step == "match"
    assert not got.opens_case, "DIA.MV has no counsellors in the bot: a referral"
    assert [a.id for a in got.alternatives] == ["lobbi"]
    # violence still goes to victim support, not documentation
    assert route(directory, p(AFFECTED, None, "MV", incident=Incident.VIOLENCE)).programme.id == (
        "lobbi"
    )


def test_coordination_step_once_the_office_can_be_reached() -> None:
    directory = variant(with_web("lks-mv"))
    got = route(directory, p(SELF, Scene.CONSPIRACY, "MV"))
    assert (got.programme.id, got.step, got.opens_case) == ("lks-mv", "coordination", False)
    assert ("state", "MV") in got.reasons
    # a fitting programme still wins over coordination
    assert route(directory, p(SELF, Scene.RIGHT, "MV")).programme.id == "jump"
    # coordination is per state: NW has none
    assert route(directory, p(SELF, Scene.CONSPIRACY, "NW")).step == "fallback"


def test_district_programme_before_statewide() -> None:
    def add_district_programme(data: dict[str, Any]) -> None:
        local = {**programme_data(data, "jump"), "id": "jump-vg", "districts": ["VG"]}
        data["programmes"].append(local)

    directory = variant(add_district_programme)
    in_vg = route(directory, p(SELF, Scene.RIGHT, "MV", district="VG"))
    assert in_vg.programme.id == "jump-vg"
    assert ("district", "VG") in in_vg.reasons
    elsewhere = route(directory, p(SELF, Scene.RIGHT, "MV", district="HRO"))
    assert elsewhere.programme.id == "jump", "a district programme serves only its district"
    assert not any(kind == "district" for kind, _ in elsewhere.reasons)
    unknown = route(directory, p(SELF, Scene.RIGHT, "MV"))
    assert unknown.programme.id == "jump", "directory order decides between equal fits"


def test_fallback_chain_follows_directory() -> None:
    def two_step_fallback(data: dict[str, Any]) -> None:
        data["fallback"] = ["clearing", "bamf"]

    got = route(variant(two_step_fallback), p(RELATIVE, Scene.RIGHT, "BY"))
    assert got.step == "fallback"
    assert got.programme.id == "clearing"
    assert [a.id for a in got.alternatives] == ["bamf"]


def all_profiles() -> list[Profile]:
    """Every combination of the routing-relevant answers."""
    return [
        Profile(audience, scene, state, None, prison, language, incident)
        for audience, scene, state, incident, prison, language in itertools.product(
            Audience,
            [*Scene, None],
            [*STATES, None],
            [*Incident, None],
            [None, True, False],
            [*LANGUAGES],
        )
    ]


def check_route(profile: Profile, got: Route, directory: Directory = DIRECTORY) -> None:
    """What every route must satisfy."""
    assert got.step in STEPS
    assert directory.by_id[got.programme.id] == got.programme
    assert got.reasons, "every route explains itself"
    assert all(kind and value for kind, value in got.reasons)
    assert got.programme not in got.alternatives
    assert all(directory.by_id[a.id] == a for a in got.alternatives)
    # never a dead end: a case someone answers, contact details, or the last resort
    assert got.opens_case or has_contact(got.programme) or got.step == "fallback"
    assert got.opens_case == any(m.role == "counsellor" for m in got.programme.staff)
    if got.step == "fallback":
        assert got.programme.id == directory.fallback[0]
        return
    assert profile.audience in got.programme.audiences
    if got.step == "match":
        assert profile.state in got.programme.states
        assert ("state", profile.state) in got.reasons
    if got.step == "national":
        assert got.programme.national
    if got.step in ("match", "national"):
        kinds = KINDS_FOR[profile.audience]
        if profile.audience is AFFECTED and profile.incident is Incident.ANTISEMITISM:
            kinds = (Kind.INCIDENT_DOCUMENTATION, *kinds)
        assert got.programme.kind in kinds
        if profile.audience is not AFFECTED and got.programme.scenes:
            assert profile.scene in got.programme.scenes
    if got.step == "coordination":
        assert got.programme.kind is Kind.COORDINATION


def test_every_combination_routes_somewhere_reachable() -> None:
    profiles = all_profiles()
    assert len(profiles) == 4 * 6 * 17 * 4 * 3 * 7
    seen_steps = set()
    for profile in profiles:
        got = route(DIRECTORY, profile)
        check_route(profile, got)
        seen_steps.add(got.step)
    # the coordination office is reachable through its published contacts
    assert seen_steps == {"match", "coordination", "national", "fallback"}


def test_every_reachable_example_programme_is_routed_to() -> None:
    targets: set[str] = set()
    for profile in all_profiles():
        got = route(DIRECTORY, profile)
        targets.add(got.programme.id)
        targets.update(a.id for a in got.alternatives)
    everything = {prog.id for prog in DIRECTORY.programmes}
    assert targets == everything - UNREACHABLE
    assert targets >= REFERRAL_ONLY
    for pid in REFERRAL_ONLY:
        assert not DIRECTORY.by_id[pid].chat_enabled
        assert has_contact(DIRECTORY.by_id[pid])
    for pid in UNREACHABLE:
        prog = DIRECTORY.by_id[pid]
        assert not prog.chat_enabled
        assert not has_contact(prog), f"{pid} has contact data now: route to it"


def test_every_programme_is_routed_to_once_it_has_contact_details() -> None:
    targets: set[str] = set()
    for profile in all_profiles():
        got = route(ALL_REACHABLE, profile)
        targets.add(got.programme.id)
        targets.update(a.id for a in got.alternatives)
    assert targets == {prog.id for prog in ALL_REACHABLE.programmes}


#: The example with every referral-only programme reachable (test-only web addresses).
ALL_REACHABLE = variant(with_web(*UNREACHABLE))


@settings(database=None, max_examples=300)
@given(
    audience=st.sampled_from(Audience),
    scene=st.sampled_from([*Scene, None]),
    state=st.sampled_from([*STATES, None]),
    district=st.sampled_from([*MV_DISTRICTS, None]),
    incident=st.sampled_from([*Incident, None]),
    in_prison=st.sampled_from([None, True, False]),
    language=st.sampled_from([*LANGUAGES]),
    reachable=st.booleans(),
)
def test_route_property(
    audience: Audience,
    scene: Scene | None,
    state: str | None,
    district: str | None,
    incident: Incident | None,
    in_prison: bool | None,
    language: str,
    reachable: bool,
) -> None:
    directory = ALL_REACHABLE if reachable else DIRECTORY
    profile = Profile(audience, scene, state, district, in_prison, language, incident)
    got = route(directory, profile)
    check_route(profile, got, directory)
    assert route(directory, profile) == got


@pytest.mark.parametrize(
    "profile",
    [
        p(SELF, Scene.RIGHT, "MV", in_prison=True),
        p(RELATIVE, Scene.RIGHT, "MV"),
        p(RELATIVE, Scene.ISLAMIST, "BY"),
        p(AFFECTED, None, "MV", incident=Incident.ANTISEMITISM),
    ],
    ids=["self-MV", "relative-MV", "relative-BY", "affected-MV"],
)
def test_routing_is_deterministic(profile: Profile) -> None:
    first = route(DIRECTORY, profile)
    again = route(load_directory(EXAMPLE_DIRECTORY), profile)
    assert first == route(DIRECTORY, profile)
    assert (again.programme.id, again.step, again.reasons) == (
        first.programme.id,
        first.step,
        first.reasons,
    )
    assert [a.id for a in again.alternatives] == [a.id for a in first.alternatives]
