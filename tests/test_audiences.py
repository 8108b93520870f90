"""Every audience served (issue 12 part 8): the affected path asks the scene and antisemitic
incidents go to documentation; relatives, professionals and affected people get a first
advice; one register per audience ("du" for people writing about themselves, "Sie" for
relatives and professionals; config/register.py). Through the memory transport with the
example directory."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from config.i18n import catalog, translator
from config.register import FORMAL, addressed
from storage.models import Case
from tests.phone import EXAMPLE, Phone

DU = re.compile(r"\b(du|dein\w*|dir|dich)\b", re.IGNORECASE)
#: Formal address that cannot be read as "she"/"they" ("Sie liegt bei ..." can).
SIE = re.compile(r"\b(Ihnen|Ihren|Ihrem|Ihrer|Ihre|Schreiben Sie|Tippen Sie|können Sie)\b")


async def journey(p: Phone, who: str, *answers: str, locale: str = "de") -> list[str]:
    """Consent and safety, then ``answers`` (button data); texts received after each."""
    await p.say(who, "/start", locale)
    await p.press(who, "consent:yes", locale)
    await p.press(who, "safety:no", locale)
    got = [await p.press(who, a, locale) for a in answers]
    got.append(await p.press(who, "message:skip", locale))
    asked = [m for m in p.t.sent if m.address.chat_id == who and m.buttons]
    if asked and "authority:continue" in [b.data for b in asked[-1].flat_buttons]:
        # Since the state-authority notice (issue 12 part 4) NRW programmes ask first;
        # the register is checked on that notice and on what follows "continue".
        got.append(await p.press(who, "authority:continue", locale))
    return got


async def case_of(p: Phone) -> Case | None:
    assert p.app.db is not None
    async with p.app.db.transaction() as s:
        return (await s.execute(select(Case))).scalar_one_or_none()


# ---------------------------------------------------------------- the affected path


async def test_affected_path_asks_the_scene(phone: Phone) -> None:
    await phone.say("a", "/start")
    await phone.press("a", "consent:yes")
    await phone.press("a", "safety:no")
    await phone.press("a", "audience:affected")
    asked = await phone.press("a", "incident:violence")
    assert translator("de")("scene.question.affected") in asked
    question = phone.t.sent[-1]
    assert "scene:right" in [b.data for b in question.flat_buttons]


@pytest.mark.parametrize(
    ("scene", "programme"),
    [("right", "lobbi"), ("other", "lobbi"), ("left", "lks-mv"), ("islamist", "lks-mv")],
)
async def test_violence_goes_to_victim_support_only_for_its_scene(
    phone: Phone, scene: str, programme: str
) -> None:
    """LOBBI supports those affected by right-wing violence (seed); an unknown side is
    served there too; an attack from another side goes to the state's coordination."""
    got = await journey(
        phone,
        "a",
        "audience:affected",
        "incident:violence",
        f"scene:{scene}",
        "state:MV",
        "district:skip",
        "language:de",
    )
    case = await case_of(phone)
    if programme == "lobbi":
        assert case is not None
        assert case.programme_id == programme
    else:  # the coordination office takes no chats: a referral with its contacts
        assert case is None
        assert EXAMPLE.by_id[programme].name in got[-1]
        assert EXAMPLE.by_id["lobbi"].name not in got[-1]


@pytest.mark.parametrize("scene", ["right", "islamist", "left", "other"])
async def test_antisemitic_incidents_go_to_documentation(phone: Phone, scene: str) -> None:
    got = await journey(
        phone,
        "a",
        "audience:affected",
        "incident:antisemitism",
        f"scene:{scene}",
        "state:MV",
        "district:skip",
        "language:de",
    )
    dia = EXAMPLE.by_id["dia-mv"]
    assert dia.contact.web is not None
    assert dia.contact.web in got[-1], "referral-only: its report form is shown"
    assert await case_of(phone) is None


# ---------------------------------------------------------------- first advice


@pytest.mark.parametrize(
    ("audience", "answers"),
    [
        ("relative", ("scene:islamist", "state:BY", "language:de")),  # BAMF: no own advice
        ("professional", ("scene:right", "state:MV", "district:skip", "language:de")),
        (
            "affected",
            ("incident:violence", "scene:right", "state:MV", "district:skip", "language:de"),
        ),
    ],
)
@pytest.mark.parametrize("locale", ["de", "en"])
async def test_first_advice_per_audience(
    phone: Phone, audience: str, answers: tuple[str, ...], locale: str
) -> None:
    got = await journey(phone, "x", f"audience:{audience}", *answers, locale=locale)
    advice = addressed(locale, audience)(f"advice.{audience}")
    assert advice in got[-1]
    assert advice.splitlines()[0] == translator(locale)("route.info", text="").splitlines()[0]


async def test_a_programmes_own_advice_comes_first(phone: Phone) -> None:
    got = await journey(
        phone,
        "x",
        "audience:relative",
        "scene:right",
        "state:MV",
        "district:skip",
        "language:de",
    )
    own = EXAMPLE.by_id["jump"].info["relative"]["de"]  # type: ignore[index]
    assert own in got[-1]
    assert addressed("de", "relative")("advice.relative") not in got[-1]


def test_first_advice_promises_nothing_the_directory_does_not_state() -> None:
    for locale in ("de", "en"):
        for key in ("advice.relative", "advice.professional", "advice.affected"):
            text = catalog(locale)[key]
            assert not re.search(r"\b(24|Stunden|hours|sofort|immediately|garant)", text), key
            assert "110" in text, "the emergency number, never a promise of a call back"


# ---------------------------------------------------------------- one register per audience


@pytest.mark.parametrize("audience", ["relative", "professional"])
async def test_relatives_and_professionals_are_addressed_formally(
    phone: Phone, audience: str
) -> None:
    got = await journey(
        phone,
        "x",
        f"audience:{audience}",
        "scene:right",
        "state:NW",
        "language:de",
    )
    for text in got:
        assert not DU.search(text), text
    assert SIE.search(got[-1])
    assert "K-" in got[-1], "a case was opened"


@pytest.mark.parametrize(
    ("audience", "answers"),
    [
        ("self", ("scene:right", "state:NW", "prison:no", "language:de")),
        (
            "affected",
            ("incident:violence", "scene:right", "state:MV", "district:skip", "language:de"),
        ),
    ],
)
async def test_people_writing_about_themselves_are_addressed_with_du(
    phone: Phone, audience: str, answers: tuple[str, ...]
) -> None:
    got = await journey(phone, "x", f"audience:{audience}", *answers)
    for text in got:
        assert not SIE.search(text), text
    assert DU.search(got[-1])


def test_every_formal_text_is_formal_and_exists_in_every_catalog() -> None:
    de = catalog("de")
    formal = [k for k in de if k.endswith(".formal")]
    assert len(formal) > 30
    for key in formal:
        assert not DU.search(de[key]), key
        assert key.removesuffix(".formal") in de, key
    assert {"relative", "professional"} == FORMAL


def test_formal_falls_back_to_the_plain_text_never_to_another_language() -> None:
    t = addressed("en", "relative")
    assert t("greeting") == translator("en")("greeting")
    assert t("route.unsent") == catalog("en")["route.unsent.formal"]
    assert addressed("de", "self")("route.unsent") == catalog("de")["route.unsent"]


async def test_the_register_holds_after_the_case_opened(phone: Phone) -> None:
    """The answers are dropped when a case opens; the case's audience keeps the register."""
    await journey(phone, "x", "audience:relative", "scene:right", "state:NW", "language:de")
    assert await case_of(phone) is not None
    got = await phone.say("x", "/start")
    assert got == addressed("de", "relative")("start.has_case")
    assert not DU.search(got)
