"""No dead ends (issue 12 part 5) and facts, not fiction (part 6), end to end through the
memory transport with the shipped example directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.directory import Programme, load_directory
from config.i18n import catalog
from storage.models import Case, Contact, HeldMessage
from tests.conftest import TEST_DIRECTORY
from tests.phone import EXAMPLE, Phone, intake, start

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")

#: A journey that leads to each seed programme: (answers, locale).
JOURNEYS: dict[str, tuple[str, ...]] = {
    "jump": ("audience:self", "scene:right", "state:MV", "district:skip", "prison:no"),
    "bidaya": ("audience:self", "scene:islamist", "state:MV", "district:skip", "prison:no"),
    "lobbi": (
        "audience:affected",
        "incident:violence",
        "scene:right",
        "state:MV",
        "district:skip",
    ),
    "dia-mv": (
        "audience:affected",
        "incident:antisemitism",
        "scene:other",
        "state:MV",
        "district:skip",
    ),
    "regionalzentren": ("audience:professional", "scene:other", "state:MV", "district:skip"),
    # the workplace team serves professionals; it is shown next to the exit programme
    "betriebsberatung": ("audience:professional", "scene:right", "state:MV", "district:skip"),
    "lks-mv": ("audience:self", "scene:conspiracy", "state:MV", "district:skip", "prison:no"),
    "spurwechsel": ("audience:self", "scene:right", "state:NW", "prison:no"),
    "api-nrw": ("audience:self", "scene:islamist", "state:NW", "prison:no"),
    "left-nrw": ("audience:self", "scene:left", "state:NW", "prison:yes"),
    "bamf": ("audience:relative", "scene:islamist", "state:BY"),
    "clearing": ("audience:relative", "scene:right", "state:BY"),
}


def paths(programme: Programme) -> list[str]:
    """Every published contact path of a programme."""
    c = programme.contact
    return [x for x in (c.phone, *c.emails, c.web, c.postal) if x]


async def count(p: Phone, model: type, *where: object) -> int:
    assert p.app.db is not None
    async with p.app.db.transaction() as s:
        return int(
            (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        )


def test_every_seed_programme_has_a_journey() -> None:
    assert set(JOURNEYS) == set(EXAMPLE.by_id)


@pytest.mark.parametrize("pid", sorted(JOURNEYS))
async def test_each_seed_programme_is_reachable_with_its_seed_contacts(
    phone: Phone, pid: str
) -> None:
    p = phone
    programme = EXAMPLE.by_id[pid]
    await intake(p, "x", *JOURNEYS[pid], "language:de", message=None)
    if programme.state_authority:  # told who runs it first (issue 12 part 4): go on
        await p.press("x", "authority:continue")
    got = "\n".join(m.text for m in p.to_people())
    for path in paths(programme):
        assert f"{programme.name}: " in got
        assert path in got, (pid, path)
    if pid == "left-nrw":  # the seed's words: phone, both e-mails, via the police
        assert "Telefon 0173 5146734" in got
        assert "E-Mail info@extremismus-praevention.de" in got
        assert "E-Mail kontakt.verfassungsschutz@im1.nrw.de" in got
        assert "über die Polizei" in got
    code = CODE.search(got)
    if programme.chat_enabled and pid != "betriebsberatung":
        assert code is not None
        assert await count(p, Case, Case.programme_id == pid) == 1
    elif pid != "betriebsberatung":
        assert code is None
        assert programme.name in got
        assert await count(p, Case) == 0


async def test_referral_only_says_what_to_expect_and_that_nothing_was_passed_on(
    phone: Phone,
) -> None:
    p = phone
    answers = JOURNEYS["dia-mv"]
    await intake(p, "a", *answers, "language:de", message="Schmiererei an der Synagoge.")
    got = [m.text for m in p.to_people()]
    text = "\n".join(got)
    assert "DIA.MV" in text
    assert "www.dia-mv.de" in text
    assert "Was dich erwartet" in text
    assert "nicht weitergegeben" in text
    assert await count(p, Case) == 0
    assert await count(p, HeldMessage) == 0
    # writing on after the referral: told again that nobody reads along
    again = await p.say("a", "Hallo? Ist da wer?")
    assert "nicht weitergegeben" in again
    assert "nicht weitergegeben" in await p.say("a", "wer?")  # nobody, and /who says so


async def test_a_skipped_message_is_not_reported_as_dropped(phone: Phone) -> None:
    p = phone
    await intake(p, "a", *JOURNEYS["dia-mv"], "language:de", message=None)
    assert "nicht weitergegeben" not in "\n".join(m.text for m in p.to_people())


async def test_relative_in_a_state_without_programme_gets_national_contacts(
    phone: Phone,
) -> None:
    p = phone
    await intake(p, "r", *JOURNEYS["bamf"], "language:de", message="Mein Sohn macht mir Sorgen.")
    text = "\n".join(m.text for m in p.to_people())
    assert "0911 943 43 43" in text
    assert "Sicherheitsbehörden" in text  # the notice, before referring
    assert "nicht weitergegeben" in text
    assert await count(p, HeldMessage) == 0


async def test_declining_consent_offers_regional_contacts_and_stores_nothing(
    phone: Phone,
) -> None:
    p = phone
    await p.say("d", "hallo")
    await p.press("d", "consent:no")
    [declined] = [m for m in p.to_people() if "Wir speichern nichts" in m.text]
    regions = {b.data for b in declined.flat_buttons}
    assert {"region:MV", "region:NW", "region:BY", "region:none"} <= regions
    assert await count(p, Contact) == 0
    mv = await p.press("d", "region:MV")
    for pid in ("dia-mv", "lks-mv", "jump"):
        for path in paths(EXAMPLE.by_id[pid]):
            assert path in mv, (pid, path)
    assert "0911 943 43 43" in mv  # national services too
    assert "110" in mv
    nw = await p.press("d", "region:NW")
    assert "0173 5146734" in nw
    assert "www.dia-mv.de" not in nw
    by = await p.press("d", "region:BY")
    assert "keine Kontaktdaten" in by
    assert "0911 943 43 43" in by
    assert await count(p, Contact) == 0
    assert p.app.keystore is not None
    assert await p.app.keystore.count() == 0
    # writing afterwards starts afresh with the consent question
    again = await p.say("d", "hallo")
    assert "einverstanden" in again


# --------------------------------------------------------------------------- facts


async def test_availability_promises_nothing_the_directory_does_not_state(
    phone: Phone,
) -> None:
    p = phone
    text = await intake(p, "x", *JOURNEYS["jump"], "language:de", message=None)
    assert CODE.search(text)
    assert "Stunden" not in text
    assert "im Dienst" not in text
    assert "Eine feste Zeit können wir nicht versprechen" in text
    assert "110" in text


async def test_availability_uses_hours_and_response_time_when_the_operator_set_them(
    tmp_path: Path,
) -> None:
    app, transport = await start(tmp_path, load_directory(TEST_DIRECTORY))
    try:
        p = Phone(app, transport)
        text = await intake(p, "x", *JOURNEYS["jump"], "language:de", message=None)
        assert "Das Team ist gerade im Dienst." in text
        assert "innerhalb von 24 Stunden" in text
    finally:
        await app.stop()


@pytest.mark.parametrize("locale", ["de", "en"])
def test_catalog_texts_make_no_fixed_time_promises(locale: str) -> None:
    """Times come from the directory ({hours}, {when}); only the crisis lines are 24/7."""
    promise = re.compile(
        r"\d+\s*(Stunden|Std\.|hours|Tagen|days)|rund um die Uhr|around the clock|24/7", re.I
    )
    for key, text in catalog(locale).items():
        if key.startswith(("staff.", "help.staff", "crisis", "limits.")):
            continue
        for match in promise.finditer(text):
            line = text[: match.end()].rsplit("\n", 1)[-1]
            assert "TelefonSeelsorge" in line or "{" in match.group(0), (key, line)


async def test_after_a_referral_the_person_can_chat_with_the_fallback_team_instead(
    phone: Phone,
) -> None:
    """A relative with no regional programme is referred to a phone hotline that passes
    information to security authorities; they may write to the operator's team instead."""
    p = phone
    await intake(p, "r", *JOURNEYS["bamf"], "language:de", message="Mein Sohn macht mir Sorgen.")
    [offer] = [m for m in p.to_people() if any(b.data == "referred:chat" for b in m.flat_buttons)]
    assert "ohne Ihre Nachricht" in offer.text  # a relative: addressed formally
    assert await count(p, Case) == 0
    got = await p.press("r", "referred:chat")
    code = CODE.search(got)
    assert code is not None, got
    assert await count(p, Case, Case.programme_id == "clearing", Case.audience == "relative") == 1
    assert await count(p, Case, Case.scene == "islamist", Case.region == "BY") == 1
    assert await count(p, HeldMessage) == 0, "the message was not passed on, and still is not"
    announced = "\n".join(m.text for m in p.t.pop("staff"))
    assert code.group() in announced
    assert "Mein Sohn" not in announced
    # the answers are gone once the case is open
    assert p.app.db is not None
    async with p.app.db.transaction() as s:
        contact = (await s.execute(select(Contact))).scalar_one()
    assert contact.profile_ct is None


async def test_no_chat_offer_without_a_fallback_team_that_chats(tmp_path: Path) -> None:
    data = EXAMPLE.model_dump(mode="python")
    for programme in data["programmes"]:
        if programme["id"] == "clearing":
            programme["staff"] = []
    app, transport = await start(tmp_path, type(EXAMPLE).model_validate(data))
    try:
        p = Phone(app, transport)
        await intake(p, "r", *JOURNEYS["bamf"], "language:de", message=None)
        assert not any(b.data == "referred:chat" for m in p.to_people() for b in m.flat_buttons)
        assert "nicht weitergegeben" in await p.press("r", "referred:chat")
    finally:
        await app.stop()
