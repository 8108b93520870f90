"""The intake conversation as pure decisions, plus answer matching and crisis detection.

Expected texts are looked up by their catalog keys, never copied from output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from config.directory import Directory, load_directory
from config.i18n import Translator, pick_locale, translator
from config.messages import Address, InboundMessage, Platform
from config.register import addressed
from config.settings import EXAMPLE_DIRECTORY
from config.vocabulary import STATES
from handlers.base import Effect, Reply, Transition
from handlers.intake import MAX_TEXT, IntakeContext, State, step
from handlers.options import fold, match, options_for
from handlers.routing import Route
from handlers.safety import Danger, detect, is_crisis
from handlers.transparency import notice_params

DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
RETENTION = {"intake_hours": 48, "held_days": 14, "case_days": 90}
CTX = IntakeContext(DIRECTORY, RETENTION)
DE = translator("de")
EN = translator("en")


def notice_text(t: Translator, key: str = "privacy.notice") -> str:
    """A privacy notice as the person reads it (retention, controller, the case's fields)."""
    return t(key, **notice_params(t, RETENTION, CTX.controller))


@dataclass(frozen=True)
class Press:
    """A pressed button (its data)."""

    data: str


def inbound(item: str | Press = "", *, attachment: str | None = None) -> InboundMessage:
    """A message from the test person: text, or a button press."""
    address = Address(Platform.MEMORY, "x")
    if isinstance(item, Press):
        return InboundMessage(Platform.MEMORY, "x", address, button=item.data)
    return InboundMessage(Platform.MEMORY, "x", address, text=item, attachment=attachment)


@dataclass
class Chat:
    """One person's conversation: carries state, profile and locale like the router."""

    locale: str = "de"
    state: str = State.NEW.value
    profile: dict[str, Any] = field(default_factory=dict)
    last: Transition | None = None

    def send(self, item: str | Press = "", **kw: Any) -> Transition:
        tr = step(CTX, self.state, self.profile, self.locale, inbound(item, **kw))
        self.state, self.profile, self.last = tr.state, tr.profile, tr
        for effect in tr.effects:
            if effect.kind == "set_locale":
                self.locale = effect.data["locale"]
        return tr

    def feed(self, *items: str | Press) -> Transition:
        tr = self.last
        for item in items:
            tr = self.send(item)
        assert tr is not None
        return tr


def texts(tr: Transition) -> list[str]:
    return [r.text for r in tr.replies]


def buttons(reply: Reply) -> list[str]:
    return [b.data for row in reply.buttons for b in row]


def kinds(tr: Transition) -> list[str]:
    return [e.kind for e in tr.effects]


def opened(tr: Transition) -> Effect:
    (effect,) = [e for e in tr.effects if e.kind == "open_case"]
    return effect


def asks(tr: Transition, state: State, t: Any = DE) -> bool:
    """The transition stays at / moves to ``state`` and its last reply asks that question."""
    last = tr.replies[-1]
    return (
        tr.state == state.value
        and last.text.endswith(t(f"{state.value}.question"))
        and any(b.startswith(f"{state.value}:") for b in buttons(last))
    )


def not_understood(tr: Transition, state: State, t: Any = DE) -> bool:
    return tr.replies[0].text == t("error.not_understood") and asks(tr, state, t)


# Button paths to every question (self in MV, affected for the incident question).
CONSENTED = (Press("consent:yes"),)
PATHS: dict[State, tuple[Press, ...]] = {
    State.CONSENT: (),
    State.SAFETY: CONSENTED,
    State.AUDIENCE: (*CONSENTED, Press("safety:no")),
    State.INCIDENT: (*CONSENTED, Press("safety:no"), Press("audience:affected")),
    State.SCENE: (*CONSENTED, Press("safety:no"), Press("audience:self")),
    State.STATE: (*CONSENTED, Press("safety:no"), Press("audience:self"), Press("scene:right")),
}
PATHS[State.DISTRICT] = (*PATHS[State.STATE], Press("state:MV"))
PATHS[State.PRISON] = (*PATHS[State.DISTRICT], Press("district:skip"))
PATHS[State.LANGUAGE] = (*PATHS[State.PRISON], Press("prison:no"))
PATHS[State.MESSAGE] = (*PATHS[State.LANGUAGE], Press("language:de"))


def at(state: State, locale: str = "de") -> Chat:
    """A chat that has just been asked the question of ``state``."""
    chat = Chat(locale=locale)
    chat.send("hallo")
    tr = chat.feed(*PATHS[state]) if PATHS[state] else chat.last
    assert tr is not None
    assert chat.state == state.value
    return chat


# ---------------------------------------------------------------- first contact, consent


@pytest.mark.parametrize(
    ("hint", "expected"),
    [("en-US", "en"), (None, "de"), ("ar", "ar"), ("de-AT", "de"), ("de_CH", "de"), ("", "de")],
    ids=["en-US", "none", "ar", "de-AT", "de_CH", "empty"],
)
def test_first_message_greets_with_privacy_notice_and_consent(
    hint: str | None, expected: str
) -> None:
    t = translator(expected)
    other = "en" if expected == "de" else "de"  # the language toggle offers the other one
    tr = Chat(locale=pick_locale(hint)).send("hi")
    assert tr.state == State.CONSENT.value
    assert tr.profile == {}
    assert tr.effects == []
    greeting, notice = tr.replies
    assert greeting.text == t("greeting")
    assert greeting.text != translator(other)("greeting")
    assert notice.text.startswith(notice_text(t))
    assert notice.text.endswith(t("consent.question"))
    assert "48" in notice.text, "retention periods are filled in"
    assert buttons(notice) == [
        "consent:yes",
        "consent:more",
        "consent:no",
        f"lang:{other}",
        "cmd:language",  # all six languages, by their own names (issue 12 part 1)
    ]
    assert not any(r.urgent for r in tr.replies)


@pytest.mark.parametrize("answer", [Press("consent:no"), "nein", "Nein", "no", "ablehnen"])
def test_consent_declined_erases_and_shows_contacts(answer: str | Press) -> None:
    chat = at(State.CONSENT)
    tr = chat.send(answer)
    assert tr.state == State.NEW.value
    assert tr.profile == {}
    assert tr.effects == [Effect("erase")]
    (reply,) = tr.replies
    assert reply.text.startswith(DE("consent.declined", contacts="").strip())
    assert DE("crisis.short") in reply.text


def test_consent_declined_lists_fallback_contact_lines() -> None:
    data = DIRECTORY.model_dump(mode="json")
    clearing = next(p for p in data["programmes"] if p["id"] == "clearing")
    clearing["contact"] = {"phone": "0000 000000", "email": "hilfe@example.org"}
    ctx = IntakeContext(Directory.model_validate(data), RETENTION)
    tr = step(ctx, State.CONSENT.value, {}, "de", inbound(Press("consent:no")))
    text = tr.replies[0].text
    assert DE("contact.phone", phone="0000 000000") in text
    assert DE("contact.email", email="hilfe@example.org") in text
    assert "Ausweg-Clearingstelle" in text


@pytest.mark.parametrize("answer", [Press("consent:more"), "Mehr erfahren", "mehr", "Datenschutz"])
def test_more_shows_details_and_asks_again(answer: str | Press) -> None:
    tr = at(State.CONSENT).send(answer)
    assert tr.state == State.CONSENT.value
    assert tr.profile == {}
    assert tr.effects == []
    (reply,) = tr.replies
    assert reply.text.startswith(notice_text(DE, "privacy.details"))
    assert reply.text.endswith(DE("consent.question"))
    assert "consent:yes" in buttons(reply)


@pytest.mark.parametrize(
    ("locale", "answer"),
    [
        ("de", Press("consent:yes")),
        ("de", "ja"),
        ("de", "Ja, einverstanden"),
        ("de", "OK"),
        ("de", "yes"),
        ("de", "1"),
        ("en", "Yes, I agree"),
        ("en", "I agree"),
    ],
)
def test_consent_yes_starts_the_questions(locale: str, answer: str | Press) -> None:
    t = translator(locale)
    tr = at(State.CONSENT, locale).send(answer)
    assert tr.profile == {"consent": True, "history": []}
    assert tr.replies[0].text == t("consent.thanks")
    assert asks(tr, State.SAFETY, t)


@pytest.mark.parametrize(
    "answer",
    ["I don't agree", "I do not agree", "nicht zustimmen", "ja vielleicht", "vielleicht", "hallo"],
)
def test_consent_needs_an_unambiguous_answer(answer: str) -> None:
    tr = at(State.CONSENT).send(answer)
    assert tr.profile == {}
    assert not_understood(tr, State.CONSENT)


def test_nothing_but_consent_is_kept_before_consent() -> None:
    chat = Chat()
    for item in (
        "Hallo, ich bin Kevin aus Rostock",
        "Mehr erfahren",
        "rechts",
        "/help",
        "zurück",
        "Ich will mich umbringen",
        Press("scene:right"),
        "x" * (MAX_TEXT + 1),
    ):
        tr = chat.send(item)
        assert tr.profile == {}, item
        assert tr.state == State.CONSENT.value, item
        assert "mark_urgent" not in kinds(tr), "nothing is marked before consent"
    tr = chat.send("ja")
    assert tr.profile == {"consent": True, "history": []}


# ---------------------------------------------------------------- crisis at every step

CRISIS_TEXTS = ["Ich will mich umbringen", "they threatened me with a knife"]


def numbers(text: str, t: Any = DE) -> str:
    """The crisis reply a text should get: the one for its category."""
    danger = detect(text)
    assert danger is not None
    return str(t(f"crisis.{danger.value}"))


# Issue 11: the crisis reply fits the category, the person is offered one "contact me
# now" button, and after consent the category is kept (encrypted) for the case; the
# safety question itself is covered by the urgent-case tests below.
@pytest.mark.parametrize("text", CRISIS_TEXTS, ids=["suicide-de", "knife-en"])
@pytest.mark.parametrize(
    "state",
    [s for s in PATHS if s not in (State.MESSAGE, State.SAFETY)],
    ids=lambda s: s.value,
)
def test_crisis_text_gets_numbers_first_and_the_same_question(state: State, text: str) -> None:
    chat = at(state)
    before = dict(chat.profile)
    tr = chat.send(text)
    assert tr.replies[0].urgent
    assert tr.replies[0].text == numbers(text)
    assert [r.urgent for r in tr.replies[1:]] == [False] * (len(tr.replies) - 1)
    offer = tr.replies[-1]
    assert offer.text == DE("crisis.contact.question"), "last: the lock screen shows it"
    assert buttons(offer) == [f"crisis:contact:{detect(text)}"]
    asked = Transition(tr.state, tr.profile, tr.replies[:-1])
    assert asks(asked, state), "a crisis text is not taken as an answer"
    if state is State.CONSENT:
        assert tr.profile == before, "nothing is kept before consent"
        assert kinds(tr) == []
    else:
        assert tr.profile == {**before, "danger": str(detect(text))}
        assert kinds(tr) == ["mark_urgent"]


@pytest.mark.parametrize("text", CRISIS_TEXTS, ids=["suicide-de", "knife-en"])
def test_crisis_text_as_the_closing_message_is_passed_on_urgently(text: str) -> None:
    tr = at(State.MESSAGE).send(text)
    assert tr.replies[0].urgent
    assert tr.replies[0].text == numbers(text)
    assert kinds(tr) == ["mark_urgent", "open_case"], "urgent before the case opens"
    assert opened(tr).data["message"] == text


def test_crisis_text_as_first_message_before_greeting_without_marking() -> None:
    tr = Chat().send("they threatened me with a knife")
    assert tr.replies[0].urgent
    assert texts(tr)[1] == DE("greeting")
    assert texts(tr)[-1] == DE("crisis.contact.question")
    assert tr.effects == []
    assert tr.state == State.CONSENT.value


@pytest.mark.parametrize("state", [State.CASE, State.REFERRED, State.DELETE], ids=str)
def test_crisis_after_intake_is_marked_urgent(state: State) -> None:
    profile = {"consent": True, "history": [], "return": State.CASE.value}
    tr = step(CTX, state.value, profile, "de", inbound("Sie haben ein Messer"))
    assert tr.replies[0].urgent
    assert kinds(tr)[0] == "mark_urgent"
    assert "erase" not in kinds(tr)


# Issue 11: "yes, right now" no longer leads through five more questions.
@pytest.mark.parametrize("answer", [Press("safety:yes"), "ja", "Ja, gerade jetzt"])
def test_safety_yes_opens_an_urgent_case_at_once(answer: str | Press) -> None:
    tr = at(State.SAFETY).send(answer)
    assert tr.replies[0].urgent
    assert tr.replies[0].text == DE("crisis")
    assert kinds(tr) == ["mark_urgent", "open_case"]
    assert opened(tr).data["route"].opens_case
    assert opened(tr).data["audience_known"] is False
    assert tr.state == State.CASE.value


@pytest.mark.parametrize("text", CRISIS_TEXTS, ids=["suicide-de", "knife-en"])
def test_danger_typed_at_the_safety_question_opens_an_urgent_case(text: str) -> None:
    tr = at(State.SAFETY).send(text)
    assert tr.replies[0].text == numbers(text)
    assert DE("error.not_understood") not in texts(tr)
    assert kinds(tr) == ["mark_urgent", "open_case"]
    assert opened(tr).data["danger"] == detect(text)
    assert tr.state == State.CASE.value


def test_contact_now_before_consent_is_consent_for_an_urgent_case_only() -> None:
    chat = Chat()
    first = chat.send("they threatened me with a knife")
    assert first.replies[0].text == numbers("they threatened me with a knife")
    assert first.effects == []
    (button,) = buttons(first.replies[-1])
    tr = chat.send(Press(button))
    assert kinds(tr) == ["mark_urgent", "open_case"]
    assert opened(tr).data["danger"] == Danger.THREAT
    assert tr.profile == {"consent": True}, "only what is known: nothing but the consent"
    assert tr.state == State.CASE.value
    assert texts(tr) == [DE("crisis.contact.opened")]


def test_contact_now_keeps_what_is_known_for_routing() -> None:
    chat = at(State.PRISON)  # answered: self, right-wing, MV, no district
    tr = chat.send("Ich will mich umbringen")
    tr = chat.send(Press(buttons(tr.replies[-1])[0]))
    route = opened(tr).data["route"]
    assert route.programme.id == "jump", "the region and scene already given decide"
    assert opened(tr).data["audience_known"] is True


def test_contact_now_press_without_any_notice_shown_opens_nothing() -> None:
    tr = Chat().send(Press("crisis:contact:threat"))  # a forged press as the first update
    assert tr.effects == []
    assert tr.state == State.CONSENT.value
    assert texts(tr)[0] == DE("greeting")


def test_contact_now_button_with_a_forged_category_is_still_urgent() -> None:
    tr = at(State.CONSENT).send(Press("crisis:contact:<script>"))
    assert kinds(tr) == ["mark_urgent", "open_case"]
    assert opened(tr).data["danger"] is None


@pytest.mark.parametrize("answer", [Press("safety:no"), "nein", "keine Gefahr"])
def test_safety_no_goes_on_quietly(answer: str | Press) -> None:
    tr = at(State.SAFETY).send(answer)
    assert not any(r.urgent for r in tr.replies)
    assert tr.effects == []
    assert asks(tr, State.AUDIENCE)


def test_too_long_crisis_text_still_gets_numbers() -> None:
    chat = at(State.SCENE)
    tr = chat.send("Ich will mich umbringen. " + "x" * MAX_TEXT)
    assert tr.replies[0].urgent
    assert texts(tr)[-2] == DE("error.too_long", max=MAX_TEXT)
    assert texts(tr)[-1] == DE("crisis.contact.question")
    assert kinds(tr) == ["mark_urgent"]
    assert tr.state == State.SCENE.value


# ---------------------------------------------------------------- typed answers


@pytest.mark.parametrize(
    ("state", "text", "key", "value"),
    [
        (State.AUDIENCE, "2", "audience", "relative"),
        (State.AUDIENCE, "Ich mache mir Sorgen um meinen Sohn", "audience", "relative"),
        (State.AUDIENCE, "Ich bin Lehrerin", "audience", "professional"),
        (State.SCENE, "rechts", "scene", "right"),
        (State.SCENE, "Rechtsextrem", "scene", "right"),
        (State.SCENE, "links", "scene", "left"),
        (State.SCENE, "Salafisten", "scene", "islamist"),
        (State.SCENE, "Reichsbürger", "scene", "conspiracy"),
        (State.SCENE, "weiß nicht", "scene", "other"),
        (State.STATE, "MV", "state", "MV"),
        (State.STATE, "Mecklenburg", "state", "MV"),
        (State.STATE, "meck-pomm", "state", "MV"),
        (State.STATE, "NRW", "state", "NW"),
        (State.STATE, "Bayern", "state", "BY"),
        (State.STATE, "Sachsen-Anhalt", "state", "ST"),
        (State.STATE, "Sachsen", "state", "SN"),
        (State.DISTRICT, "Greifswald", "district", "VG"),
        (State.PRISON, "JVA", "prison", "yes"),
        (State.LANGUAGE, "Arabisch", "language", "ar"),
    ],
    ids=lambda v: v.value if isinstance(v, State) else None,
)
def test_typed_answers_are_understood(state: State, text: str, key: str, value: str) -> None:
    tr = at(state).send(text)
    assert tr.profile[key] == value
    assert tr.state != state.value
    assert tr.profile["history"][-1] == state.value


@pytest.mark.parametrize(
    ("state", "text"),
    [
        (State.AUDIENCE, "5"),
        (State.AUDIENCE, "0"),
        (State.STATE, "18"),
        (State.SCENE, "blub"),
        (State.STATE, "Hessen oder Bremen"),
        (State.SAFETY, "vielleicht"),
        (State.SCENE, Press("state:MV")),
        (State.SCENE, Press("scene:bogus")),
        (State.STATE, Press("consent:yes")),
        (State.AUDIENCE, ""),
    ],
    ids=[
        "out-of-range",
        "zero",
        "out-of-range-state",
        "unknown",
        "ambiguous",
        "maybe",
        "other-question",
        "bogus-value",
        "consent-button",
        "empty",
    ],
)
def test_not_understood_repeats_the_question(state: State, text: str | Press) -> None:
    chat = at(state)
    before = dict(chat.profile)
    tr = chat.send(text)
    assert not_understood(tr, state)
    assert tr.profile == before
    assert tr.effects == []


# ---------------------------------------------------------------- which questions are asked


@pytest.mark.parametrize("state", [*STATES, "none"])
def test_district_is_asked_only_in_mv(state: str) -> None:
    tr = at(State.STATE).send(Press(f"state:{state}"))
    assert asks(tr, State.DISTRICT if state == "MV" else State.PRISON)


@pytest.mark.parametrize(
    ("audience", "after_state"),
    [("self", State.PRISON), ("relative", State.LANGUAGE), ("professional", State.LANGUAGE)],
)
def test_prison_is_asked_only_of_people_who_want_out(audience: str, after_state: State) -> None:
    chat = at(State.AUDIENCE)
    assert asks(chat.send(Press(f"audience:{audience}")), State.SCENE)
    chat.send(Press("scene:right"))
    # relatives and professionals are addressed formally once they said who they are
    assert asks(chat.send(Press("state:NW")), after_state, addressed("de", audience))


def test_affected_get_the_incident_and_scene_questions_and_no_prison() -> None:
    # Issue 12 part 8: the scene is asked of affected people too (it decides who helps:
    # a service for victims of right-wing violence is not for every attack).
    chat = at(State.AUDIENCE)
    assert asks(chat.send(Press("audience:affected")), State.INCIDENT)
    chat.send("Gewalt")
    assert asks(chat.send(Press("confirm:yes")), State.SCENE, AFFECTED_SCENE)
    assert asks(chat.send(Press("scene:left")), State.STATE)
    assert asks(chat.send(Press("state:MV")), State.DISTRICT)
    assert asks(chat.send(Press("district:HRO")), State.LANGUAGE)
    assert asks(chat.send(Press("language:de")), State.MESSAGE)
    tr = chat.send(Press("message:skip"))
    profile = opened(tr).data["profile"]
    assert profile.scene == "left"
    assert profile.in_prison is None
    assert profile.incident == "violence"
    assert profile.district == "HRO"
    assert chat.profile["history"] == [
        "safety",
        "audience",
        "incident",
        "scene",
        "state",
        "district",
        "language",
        "message",
    ]


def AFFECTED_SCENE(key: str) -> str:
    """The German catalog, with the scene question as worded for people affected."""
    return DE(f"{key}.affected") if key == "scene.question" else DE(key)


def test_questions_carry_a_back_button_except_consent_and_safety() -> None:
    chat = Chat()
    assert "cmd:back" not in buttons(chat.send("hallo").replies[-1])
    assert "cmd:back" not in buttons(chat.send("ja").replies[-1])
    assert "cmd:back" in buttons(chat.send("nein").replies[-1])


# ---------------------------------------------------------------- back


@pytest.mark.parametrize("back", ["zurück", "Zurück", "back", "/zurueck", Press("cmd:back")])
def test_back_asks_the_previous_question(back: str | Press) -> None:
    chat = at(State.PRISON)
    tr = chat.send(back)
    assert asks(tr, State.DISTRICT)
    assert "district" not in tr.profile
    assert tr.effects == []


def test_back_walks_the_history_and_a_changed_answer_changes_the_route() -> None:
    chat = at(State.PRISON)
    assert asks(chat.send("zurück"), State.DISTRICT)
    assert asks(chat.send("zurück"), State.STATE)
    assert asks(chat.send(Press("cmd:back")), State.SCENE)
    chat.send("links")
    chat.send("NRW")
    tr = chat.feed(Press("prison:no"), Press("language:de"), Press("message:skip"))
    assert tr.state == State.AUTHORITY.value, "LEFT is run by a state authority: asked first"
    tr = chat.send(Press("authority:continue"))
    route: Route = opened(tr).data["route"]
    assert route.programme.id == "left-nrw"
    assert tr.state == State.CASE.value


def test_going_back_drops_answers_a_new_path_does_not_ask() -> None:
    chat = at(State.STATE)
    chat.feed(Press("state:MV"), Press("district:HRO"), Press("prison:yes"))
    assert chat.state == State.LANGUAGE.value
    for expected in (State.PRISON, State.DISTRICT, State.STATE, State.SCENE, State.AUDIENCE):
        assert asks(chat.send("zurück"), expected)
    chat.feed(Press("audience:relative"), "rechts", "NRW", "Deutsch", "nein")
    assert chat.state == State.AUTHORITY.value, "Spurwechsel is run by a state authority"
    tr = chat.send(Press("authority:continue"))
    effect = opened(tr)
    assert effect.data["route"].programme.id == "spurwechsel"
    assert effect.data["profile"].in_prison is None, "a relative is never asked about prison"
    assert effect.data["profile"].district is None, "no MV district for someone in NRW"
    assert ("prison", "yes") not in effect.data["route"].reasons
    assert "prison" not in chat.profile
    assert "district" not in chat.profile


@pytest.mark.parametrize("state", [State.CONSENT, State.SAFETY])
def test_no_back_before_the_first_answer(state: State) -> None:
    chat = at(state)
    before = dict(chat.profile)
    tr = chat.send("zurück")
    assert texts(tr)[0] == DE("nav.back.none")
    assert asks(tr, state)
    assert tr.profile == before


@pytest.mark.parametrize("text", ["rechts", "zurück"])
def test_step_does_not_change_the_profile_it_was_given(text: str) -> None:
    chat = at(State.SCENE)
    given = {**chat.profile, "history": list(chat.profile["history"])}
    snapshot = {**given, "history": list(given["history"])}
    tr = step(CTX, State.SCENE.value, given, "de", inbound(text))
    assert given == snapshot, "the router compares old and new profile to save changes"
    assert tr.profile != given


# ---------------------------------------------------------------- the closing message, routing


def test_free_text_is_the_message_of_the_case() -> None:
    text = "Ich weiß nicht weiter. Nichts ist mehr wie vorher."
    tr = at(State.MESSAGE).send(text)
    assert opened(tr).data["message"] == text
    assert tr.replies == []


@pytest.mark.parametrize("skip", [Press("message:skip"), "nein", "Nein, weiter", "skip"])
def test_skipping_the_message(skip: str | Press) -> None:
    tr = at(State.MESSAGE).send(skip)
    assert opened(tr).data["message"] is None


def test_right_wing_mv_ends_in_a_jump_case() -> None:
    tr = at(State.MESSAGE).send(Press("message:skip"))
    route: Route = opened(tr).data["route"]
    assert route.programme.id == "jump"
    assert route.step == "match"
    assert tr.state == State.CASE.value
    assert tr.profile["history"][-1] == State.MESSAGE.value


def test_referral_ends_in_referred_state() -> None:
    chat = at(State.AUDIENCE)
    tr = chat.feed(
        Press("audience:relative"),
        "Islamismus",
        Press("confirm:yes"),  # a typed word that is read, not matched, is echoed first
        "Bayern",
        "Deutsch",
        Press("message:skip"),
    )
    route: Route = opened(tr).data["route"]
    assert route.programme.id == "bamf"
    assert tr.state == State.REFERRED.value
    again = chat.send("hallo?")
    assert texts(again) == [addressed("de", "relative")("referred.again")]


def test_text_in_a_case_is_relayed() -> None:
    profile = {"consent": True, "history": []}
    tr = step(CTX, State.CASE.value, profile, "de", inbound("Hallo, ist da jemand?"))
    assert tr.effects == [Effect("relay", {"text": "Hallo, ist da jemand?"})]
    assert tr.state == State.CASE.value
    assert tr.replies == []
    pressed = step(CTX, State.CASE.value, profile, "de", inbound(Press("scene:right")))
    assert pressed.effects == []


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize("state", [State.SCENE, State.REFERRED, State.CONSENT, State.DELETE])
def test_start_restarts(state: State) -> None:
    profile = {"consent": True, "history": ["safety"], "audience": "self"}
    tr = step(CTX, state.value, profile, "de", inbound("/start"))
    assert tr.effects == [Effect("restart")]
    assert tr.profile == {}
    assert texts(tr)[0] == DE("greeting")
    assert asks(tr, State.CONSENT)
    assert tr.replies[-1].text.startswith(notice_text(DE))


def test_start_keeps_an_open_case() -> None:
    profile = {"consent": True, "history": []}
    tr = step(CTX, State.CASE.value, profile, "de", inbound("/start"))
    assert texts(tr) == [DE("start.has_case")]
    assert tr.state == State.CASE.value
    assert tr.effects == []


@pytest.mark.parametrize("command", ["/help", "/hilfe", "!help", "/help@AuswegBot"])
def test_help(command: str) -> None:
    chat = at(State.SCENE)
    before = dict(chat.profile)
    tr = chat.send(command)
    assert texts(tr) == [DE("help.person")]
    assert (tr.state, tr.profile) == (State.SCENE.value, before)


def test_unknown_command() -> None:
    tr = at(State.SCENE).send("/foo")
    assert texts(tr) == [DE("error.unknown_command")]
    assert tr.state == State.SCENE.value


def test_language_switch_reasks_the_question_in_the_other_language() -> None:
    chat = at(State.SCENE)
    tr = chat.send("/language en")  # a bare /language offers all six (see below)
    assert tr.effects == [Effect("set_locale", {"locale": "en"})]
    assert texts(tr)[0] == EN("language.switched")
    assert asks(tr, State.SCENE, EN)
    assert chat.locale == "en"
    assert not_understood(chat.send("bla"), State.SCENE, EN)
    back = chat.send("/sprache deutsch")
    assert back.effects == [Effect("set_locale", {"locale": "de"})]
    assert asks(back, State.SCENE, DE)


def test_language_button_at_consent_repeats_the_privacy_notice() -> None:
    chat = at(State.CONSENT)
    tr = chat.send(Press("lang:en"))
    assert tr.effects == [Effect("set_locale", {"locale": "en"})]
    assert tr.profile == {}
    assert tr.state == State.CONSENT.value
    assert texts(tr)[0] == EN("language.switched")
    notice = tr.replies[-1]
    assert notice.text.startswith(notice_text(EN)), "informed consent"
    assert notice.text.endswith(EN("consent.question"))
    assert "lang:de" in buttons(notice)


@pytest.mark.parametrize("state", [State.NEW, State.CONSENT])
def test_delete_before_consent_has_nothing_to_delete(state: State) -> None:
    tr = step(CTX, state.value, {}, "de", inbound("/delete"))
    assert tr.effects == [Effect("erase")]
    assert texts(tr) == [DE("delete.nothing")]
    assert tr.state == State.NEW.value
    assert tr.profile == {}


@pytest.mark.parametrize(
    "command",
    ["/delete", "/löschen", "/loeschen", "löschen", "Alles löschen bitte!", "delete everything"],
)
def test_delete_after_consent_asks_first(command: str) -> None:
    chat = at(State.SCENE)
    tr = chat.send(command)
    assert tr.state == State.DELETE.value
    assert tr.effects == []
    (confirm,) = tr.replies
    assert confirm.text == DE("delete.question")
    assert buttons(confirm) == ["delete:yes", "delete:no"]


def test_a_sentence_that_mentions_loeschen_is_no_delete_request() -> None:
    """Only the plain request as a whole message counts, not a word inside a story."""
    chat = at(State.MESSAGE)
    tr = chat.send("Er hat mich gezwungen, die Fotos zu löschen")
    assert tr.state != State.DELETE.value


@pytest.mark.parametrize("cancel", ["Abbrechen", Press("delete:no"), "nein"])
def test_delete_cancelled_returns_to_the_question(cancel: str | Press) -> None:
    chat = at(State.SCENE)
    before = dict(chat.profile)
    chat.send("/delete")
    tr = chat.send(cancel)
    assert texts(tr)[0] == DE("delete.cancelled")
    assert asks(tr, State.SCENE)
    assert tr.profile == before
    assert tr.effects == []


def test_delete_twice_then_cancel_still_returns() -> None:
    chat = at(State.SCENE)
    chat.send("/delete")
    chat.send("/delete")
    tr = chat.send("Abbrechen")
    assert asks(tr, State.SCENE)
    assert "return" not in tr.profile


def test_delete_cancelled_in_a_case_returns_to_the_case() -> None:
    profile = {"consent": True, "history": []}
    tr = step(CTX, State.CASE.value, profile, "de", inbound("/delete"))
    tr = step(CTX, tr.state, tr.profile, "de", inbound(Press("delete:no")))
    assert tr.state == State.CASE.value
    assert texts(tr) == [DE("delete.cancelled")]


@pytest.mark.parametrize("confirm", [Press("delete:yes"), "ja", "Ja, alles löschen"])
def test_delete_confirmed_erases_with_receipt(confirm: str | Press) -> None:
    chat = at(State.LANGUAGE)
    chat.send("/delete")
    tr = chat.send(confirm)
    assert tr.effects == [Effect("erase", {"receipt": True})]
    assert tr.state == State.NEW.value
    assert tr.profile == {}


@pytest.mark.parametrize("answer", ["Nein, nicht löschen!", "ja nein", "vielleicht"])
def test_delete_needs_an_unambiguous_answer(answer: str) -> None:
    chat = at(State.LANGUAGE)
    chat.send("/delete")
    tr = chat.send(answer)
    assert "erase" not in kinds(tr)
    assert tr.state == State.DELETE.value
    assert texts(tr)[0] == DE("error.not_understood")
    assert texts(tr)[-1] == DE("delete.question")


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("state", [State.NEW, State.CONSENT, State.SCENE, State.CASE], ids=str)
def test_too_long_text_changes_nothing(state: State) -> None:
    profile: dict[str, Any] = (
        {}
        if state in (State.NEW, State.CONSENT)
        else {
            "consent": True,
            "history": ["safety", "audience"],
            "audience": "self",
        }
    )
    tr = step(CTX, state.value, profile, "de", inbound("rechts " + "x" * MAX_TEXT))
    assert texts(tr) == [DE("error.too_long", max=MAX_TEXT)]
    assert (tr.state, tr.profile, tr.effects) == (state.value, profile, [])


def test_text_of_exactly_the_limit_is_accepted() -> None:
    tr = at(State.MESSAGE).send("a" * MAX_TEXT)
    assert opened(tr).data["message"] == "a" * MAX_TEXT


@pytest.mark.parametrize("state", [State.CONSENT, State.SCENE, State.CASE], ids=str)
def test_attachment_is_refused(state: State) -> None:
    profile: dict[str, Any] = {} if state is State.CONSENT else {"consent": True, "history": []}
    tr = step(CTX, state.value, profile, "de", inbound("", attachment="photo"))
    assert texts(tr) == [DE("error.attachment")]
    assert (tr.state, tr.profile, tr.effects) == (state.value, profile, [])


# ---------------------------------------------------------------- options.fold / match


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Thüringen", "thueringen"),
        ("GROẞE Straße", "grosse strasse"),
        ("Meck-Pomm!", "meck pomm"),
        ("  Baden_Württemberg  ", "baden wuerttemberg"),
        ("Don’t know", "don't know"),
        ("ＭＶ", "mv"),
        ("?!", ""),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize(
    ("question", "text", "value"),
    [
        ("state", "1", "BW"),
        ("state", str(len(STATES) + 1), "none"),
        ("state", str(len(STATES) + 2), None),
        ("state", "Nordrhein-Westfalen", "NW"),
        ("state", "nordrhein westfalen", "NW"),
        ("state", "ich wohne in Sachsen-Anhalt", "ST"),
        ("state", "Thüringen", "TH"),
        ("state", "thuringia", "TH"),
        ("state", "Hessen oder Bremen", None),
        ("state", "Ausland", "none"),
        ("scene", "Salafisten", "islamist"),
        ("scene", "Neonazis", "right"),
        ("scene", "is", "islamist"),
        ("scene", "ich", None),
        ("audience", "ich", "self"),
        ("audience", "meine Freundin", "relative"),
        ("audience", "Ich bin betroffen", "affected"),
        ("incident", "antisemitisch", "antisemitism"),
        ("district", "Rügen", "VR"),
        ("district", "SN", "SN"),
        ("language", "ar", "ar"),
        ("language", "Türkisch", "tr"),
        ("language", "Suaheli", None),
    ],
)
def test_match(question: str, text: str, value: str | None) -> None:
    got = match(text, options_for(question, DE))
    assert (got.value if got else None) == value


def test_match_whole_answers_only() -> None:
    consent = options_for("consent", DE)
    assert match("I don't agree", consent, partial=False) is None
    assert match("Ja, einverstanden", consent, partial=False) is not None
    assert match("2", consent, partial=False) == consent[1]


@pytest.mark.parametrize(
    ("text", "value"), [("far right", "right"), (EN("scene.left"), "left"), ("Muslim", None)]
)
def test_match_english(text: str, value: str | None) -> None:
    got = match(text, options_for("scene", EN))
    assert (got.value if got else None) == value


@pytest.mark.parametrize(
    ("question", "text", "wrong"),
    [
        ("prison", "Nein, ich bin nicht im Gefängnis", "yes"),
        ("scene", "nicht rechts, sondern links", "right"),
        ("state", "Berlin oder Hamburg", "HH"),
    ],
)
def test_match_known_misreadings(question: str, text: str, wrong: str) -> None:
    got = match(text, options_for(question, DE))
    assert got is None or got.value != wrong


@pytest.mark.parametrize(
    ("question", "text", "value"),
    [
        ("prison", "Nein, ich bin nicht im Gefängnis", "no"),
        ("prison", "I'm not in prison", "no"),
        ("prison", "Nein, ich bin im Gefängnis", "yes"),
        ("scene", "nicht rechts, sondern links", "left"),
        ("scene", "not left but right", "right"),
        ("scene", "Ich will nicht mehr rechts sein", "right"),
        ("scene", "kein Nazi", None),
        ("state", "Berlin oder Hamburg", None),
        ("state", "nicht Berlin, sondern Hamburg", "HH"),
        ("audience", "I'm a trainer in a company", "professional"),
        ("audience", "Ich bin Ausbilder in einem Betrieb", "professional"),
    ],
)
def test_match_negations_and_contrasts(question: str, text: str, value: str | None) -> None:
    got = match(text, options_for(question, DE))
    assert (got.value if got else None) == value


# ---------------------------------------------------------------- safety.is_crisis


@pytest.mark.parametrize(
    "text",
    [
        "Ich will mich umbringen",
        "ich bring mich um",
        "Die bringen mich um, wenn ich aussteige",
        "they threatened me with a knife",
        "he has a gun.",
        "I will kill myself",
        "ＳＵＩＺＩＤ",
        "Selbstmordgedanken",
        "Sie haben mich zusammengeschlagen",
        "Ich werde bedroht",
        "Er hat ein Messer",
        "I want to end it all",
        "ich tu mir was an",
    ],
)
def test_is_crisis_positive(text: str) -> None:
    assert is_crisis(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Kilometer",
        "skill",
        "skills",
        "begun",
        "Hallo, ich will raus aus der Szene",
        "Gefahr",  # alone, without "in": the safety question covers it
        "rechts",
        "Ich gehe morgen wieder in die Schule",
        # Once known false alarms of the stem list (issue 11): a weapon or the word
        # "kill" without threat or intent, negation, letters inside other words.
        "Gun",
        "Kill",
        "Ich bin nicht in Gefahr",
        "Waffenstillstand im Streit mit meinem Vater",
        "Gunnar",
    ],
)
def test_is_crisis_negative(text: str) -> None:
    assert not is_crisis(text)
