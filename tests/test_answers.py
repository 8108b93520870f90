"""Every answer understood and confirmed (issue 12 part 7): the first message and typed
answers pre-fill what they say, the bot asks only what is missing, and every reading of
free text is echoed with a one-tap correction. Intake as pure decisions (the Chat of
test_intake) plus end-to-end journeys through the memory transport."""

from __future__ import annotations

import pytest

from config.lockscreen import names_of, problems
from config.register import addressed
from config.vocabulary import MV_DISTRICTS, STATES
from handlers.intake import State
from handlers.understand import pack, places, understand, unpack
from tests.phone import EXAMPLE, Phone
from tests.test_intake import DE, EN, Chat, Press, asks, at, buttons, opened

#: Relatives and professionals are addressed formally (config/register.py).
SIE = addressed("de", "relative")
#: What the consent button carries after a first message (facts in its data).
PREFILLED = "Ich will aus der rechten Szene in MV raus"


def consent_data(chat: Chat) -> str:
    assert chat.last is not None
    (data,) = [b for b in buttons(chat.last.replies[-1]) if b.startswith("consent:yes")]
    return data


def echoes(chat: Chat, *parts: str, t: object = DE) -> None:
    """The chat was just asked to confirm what it understood, naming ``parts``."""
    assert chat.last is not None
    # the echo is the last reply, or just before a crisis' "contact me now?" (always last)
    replies = chat.last.replies
    asked = [r for r in replies if not any(b.startswith("crisis:contact") for b in buttons(r))]
    last = asked[-1]
    assert chat.state == State.CONFIRM.value
    assert buttons(last) == ["confirm:yes", "confirm:no"]
    assert last.text.splitlines()[0] == t("confirm.question", facts="").splitlines()[0]  # type: ignore[operator]
    for part in parts:
        assert part in last.text, (part, last.text)


# ---------------------------------------------------------------- reading free text


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        (PREFILLED, {"audience": "self", "scene": "right", "state": "MV"}),
        (
            "Mein Sohn ist bei den Nazis, wir wohnen in Rostock",
            {"audience": "relative", "scene": "right", "state": "MV", "district": "HRO"},
        ),
        ("Ich komme aus Teterow", {"state": "MV", "district": "LRO"}),
        ("I'm a trainer in a company in Hamburg", {"audience": "professional", "state": "HH"}),
        ("Ich bin nicht in Haft, will aber aussteigen", {"audience": "self", "prison": "no"}),
        ("Ich sitze im Knast und will raus", {"audience": "self", "prison": "yes"}),
        ("Ich spreche Russisch", {"language": "ru"}),
        # plurals with an umlaut do not start like their singular: listed as words
        ("Meine Söhne sind bei den Reichsbürgern", {"audience": "relative", "scene": "conspiracy"}),
        ("Ich bin Lehrerin, zwei Schüler machen mir Sorgen", {"audience": "professional"}),
        ("nicht rechts, sondern links", {"scene": "left"}),
        ("Ich habe Hunger und will essen", {}),  # "Essen" is a town only after "in"/"aus"
        ("by the way he is here", {}),  # "by", "he" are no state codes in lower case
        ("hallo", {}),
    ],
)
def test_free_text_gives_its_facts(text: str, facts: dict[str, str]) -> None:
    assert understand(text, DE) == facts


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        (
            "I want out of the far right scene in Rostock",
            {"audience": "self", "scene": "right", "state": "MV", "district": "HRO"},
        ),
        (
            "My daughter is getting into conspiracy stuff, we live in Cologne",
            {"audience": "relative", "scene": "conspiracy", "state": "NW"},
        ),
        (
            "I was attacked, it was antisemitic, in Greifswald",
            {"audience": "affected", "incident": "antisemitism", "state": "MV", "district": "VG"},
        ),
    ],
)
def test_free_text_in_english(text: str, facts: dict[str, str]) -> None:
    assert understand(text, EN) == facts


def test_the_places_file_knows_every_mv_district_and_the_big_cities() -> None:
    known = places()
    assert {p.district for p in known.values() if p.state == "MV"} == set(MV_DISTRICTS)
    assert all(p.state in STATES for p in known.values())
    assert (known["rostock"].state, known["rostock"].district) == ("MV", "HRO")
    assert known["koeln"].state == "NW"
    assert len(known) > 300


def test_packed_facts_survive_and_bad_data_is_dropped() -> None:
    facts = {"audience": "relative", "scene": "islamist", "state": "MV", "district": "VG"}
    assert unpack(pack(facts, DE), DE) == facts
    assert len("consent:yes:" + pack(facts, DE)) <= 64, "Telegram's callback_data limit"
    assert unpack("zz?!", DE) == {}


# ---------------------------------------------------------------- the first message


def test_first_message_prefills_and_only_the_missing_is_asked() -> None:
    chat = Chat()
    first = chat.send(PREFILLED)
    assert first.state == State.CONSENT.value
    assert first.profile == {}, "nothing is stored before consent"
    data = consent_data(chat)
    assert data != "consent:yes", "the facts ride in the consent button"
    chat.send(Press(data))
    assert asks(chat.last, State.SAFETY)  # type: ignore[arg-type]
    chat.send(Press("safety:no"))
    echoes(chat, DE("reason.audience.self"), DE("reason.scene.right"), STATES["MV"])
    tr = chat.send(Press("confirm:yes"))
    assert asks(tr, State.DISTRICT), "audience, scene and state are not asked again"
    chat.send(Press("district:skip"))
    assert asks(chat.send(Press("prison:no")), State.LANGUAGE)
    chat.send(Press("language:de"))
    profile = opened(chat.send(Press("message:skip"))).data["profile"]
    assert (profile.audience, profile.scene, profile.state) == ("self", "right", "MV")


def test_correcting_the_first_message_asks_one_by_one() -> None:
    chat = Chat()
    chat.send(PREFILLED)
    chat.feed(Press(consent_data(chat)), Press("safety:no"))
    tr = chat.send(Press("confirm:no"))
    assert tr.replies[0].text == DE("confirm.redo")
    assert asks(tr, State.AUDIENCE)
    assert not {"audience", "scene", "state"} & set(tr.profile)
    assert tr.profile["history"] == ["safety"]


def test_declining_consent_drops_the_first_message_facts() -> None:
    chat = Chat()
    chat.send(PREFILLED)
    tr = chat.send(Press("consent:no"))
    assert tr.profile == {}
    assert tr.effects[-1].kind == "erase"


def test_a_typed_yes_at_consent_asks_normally() -> None:
    chat = Chat()
    chat.send(PREFILLED)
    chat.feed("ja", Press("safety:no"))
    assert asks(chat.last, State.AUDIENCE)  # type: ignore[arg-type]


# ---------------------------------------------------------------- typed answers, echoed


def test_a_town_answers_the_state_and_the_district() -> None:
    chat = at(State.STATE)
    chat.send("Rostock")
    echoes(chat, STATES["MV"], MV_DISTRICTS["HRO"])
    assert asks(chat.send(Press("confirm:yes")), State.PRISON), "district is not asked again"


def test_a_typed_answer_with_more_facts_echoes_them_all() -> None:
    chat = at(State.AUDIENCE)
    chat.send("Ich mache mir Sorgen um meine Tochter, sie ist bei Reichsbürgern in Wismar")
    echoes(
        chat,
        DE("reason.audience.relative"),
        DE("reason.scene.conspiracy"),
        STATES["MV"],
        MV_DISTRICTS["NWM"],
    )
    assert asks(chat.send(Press("confirm:yes")), State.LANGUAGE, SIE)


def test_correcting_a_typed_answer_asks_that_question_again() -> None:
    chat = at(State.SCENE)
    chat.send("Ich glaube, eher so Salafisten")
    echoes(chat, DE("reason.scene.islamist"))
    tr = chat.send("Nein, korrigieren")
    assert asks(tr, State.SCENE)
    assert "scene" not in tr.profile
    assert tr.profile["history"][-1] == "audience"


@pytest.mark.parametrize(
    ("text", "echo"),
    [("Nein, ich bin nicht im Gefängnis", "echo.prison.no"), ("Ja, in der JVA", "echo.prison.yes")],
)
def test_prison_negation_is_read_and_echoed(text: str, echo: str) -> None:
    chat = at(State.PRISON)
    chat.send(text)
    echoes(chat, DE(echo))
    assert chat.profile["prison"] == echo.rsplit(".", 1)[1]


def test_not_x_but_y_is_y() -> None:
    chat = at(State.SCENE)
    chat.send("nicht rechts, sondern links")
    echoes(chat, DE("reason.scene.left"))
    assert chat.profile["scene"] == "left"


def test_a_trainer_in_a_company_is_a_professional_and_never_asked_about_prison() -> None:
    chat = at(State.AUDIENCE, "en")
    chat.send("I'm a trainer in a company")
    echoes(chat, EN("reason.audience.professional"), t=EN)
    chat.send(Press("confirm:yes"))
    chat.feed(Press("scene:right"), Press("state:NW"))
    assert asks(chat.last, State.LANGUAGE, EN)  # type: ignore[arg-type]


def test_a_button_or_an_exact_label_is_not_echoed() -> None:
    chat = at(State.STATE)
    assert asks(chat.send("Bayern"), State.PRISON)
    chat = at(State.SCENE)
    assert asks(chat.send(DE("scene.left")), State.STATE)


def test_back_after_a_confirmed_echo_walks_through_the_read_answers() -> None:
    chat = at(State.AUDIENCE)
    chat.send("Mein Sohn ist bei den Nazis")
    chat.send(Press("confirm:yes"))
    assert asks(chat.last, State.STATE, SIE)  # type: ignore[arg-type]
    tr = chat.send("zurück")
    assert asks(tr, State.SCENE)
    assert "scene" not in tr.profile
    assert tr.profile["audience"] == "relative"


def test_the_echo_is_confirmed_by_typing_too() -> None:
    chat = at(State.SCENE)
    chat.send("Salafisten")
    assert asks(chat.send("stimmt"), State.STATE)
    assert chat.profile["scene"] == "islamist"


# ---------------------------------------------------------------- end to end


async def test_first_message_prefill_through_the_memory_transport(phone: Phone) -> None:
    await phone.t.push("p1", PREFILLED)
    (data,) = [b for b in phone.t.last_buttons("p1") if b.startswith("consent:yes")]
    phone.t.pop("p1")
    await phone.press("p1", data)
    await phone.press("p1", "safety:no")
    echo = await phone.say("p1", "stimmt")
    assert DE("district.question") in echo
    assert DE("audience.question") not in echo
    assert DE("scene.question") not in echo
    await phone.press("p1", "district:skip")
    await phone.press("p1", "prison:no")
    await phone.press("p1", "language:de")
    done = await phone.press("p1", "message:skip")
    assert "K-" in done, done
    for msg in phone.to_people():  # the echo never shows the scene on a lock screen
        assert problems(msg.text, "de", names_of(EXAMPLE)) == [], msg.text


def test_back_at_an_echo_corrects_it() -> None:
    chat = at(State.SCENE)
    chat.send("Salafisten")
    tr = chat.send("zurück")
    assert tr.replies[0].text == DE("confirm.redo")
    assert asks(tr, State.SCENE)
    assert "scene" not in tr.profile


def test_a_crisis_text_at_an_echo_gets_numbers_and_the_echo_again() -> None:
    chat = at(State.SCENE)
    chat.send("Salafisten")
    tr = chat.send("Nein, ich will mich umbringen")
    assert tr.replies[0].urgent
    assert tr.replies[0].text == DE("crisis.suicide")  # the reply fits the category
    assert [e.kind for e in tr.effects] == ["mark_urgent"]
    echoes(chat, DE("reason.scene.islamist"))
    assert chat.profile["scene"] == "islamist", "nothing was corrected by it"


def test_switching_the_language_at_an_echo_asks_it_again() -> None:
    chat = at(State.SCENE)
    chat.send("Salafisten")
    chat.send("/language en")  # a bare /language now offers all six languages
    echoes(chat, EN("reason.scene.islamist"), t=EN)


def test_cancelled_delete_at_an_echo_asks_it_again() -> None:
    chat = at(State.SCENE)
    chat.send("Salafisten")
    chat.send("/delete")
    chat.send(Press("delete:no"))
    echoes(chat, DE("reason.scene.islamist"))
