"""Privacy check 19 - lock screens: the first line of every person-facing message names
no programme, no operator, no scene and no exit/extremism word (issue 12 part 3).

Two halves: every catalog key that can start a message to a person, rendered with every
programme of the example directory as parameter, in every catalog language; and
end-to-end journeys through the memory transport for each audience, collecting every
message a person's chat received.
"""

from __future__ import annotations

import re
import string

import pytest

from config import lockscreen
from config.directory import Programme
from config.i18n import LOCALES_DIR, catalog, translator
from handlers.intake import contact_lines
from tests.phone import EXAMPLE, Phone, intake

NAMES = lockscreen.names_of(EXAMPLE)
#: Every catalog present (de and en today; others as they are added).
LOCALES = sorted(p.stem for p in LOCALES_DIR.glob("*.po"))
CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")

#: Keys that never start a message to a person: staff texts, button labels, and
#: fragments placed inside other messages (never in their first line; ``echo.*`` sits in
#: the second line of ``confirm.question``).
NOT_A_PERSON_MESSAGE = re.compile(
    r"^(staff\.|help\.staff$|reason\.|echo\.|route\.step\.|availability\.|contact\.|crisis\.short$"
    r"|privacy\.field\.|authority\.(part|button)\."
    r"|language\.switch\.|nav\.back$|attachment\.(photo|voice|video|audio|document|sticker)$"
    r"|(consent|safety|prison|delete|transfer)\.(yes|no|more)$"
    r"|(audience|incident|scene)\.(?!question$)\w+$"
    r"|state\.none$|district\.skip$|language\.other$|message\.skip$"
    # issue 12 part 1-2: plural units, menu entries, the language button, the offers
    # that follow the first line of the language notice
    r"|n\.|command\.|language\.button$|route\.language\.(mediation|simple|contacts|offers)$)"
)
#: Keys used only when the operator set ``discretion: {name_programme: true}``.
NAMED = re.compile(r"\.named(\.formal)?$")


def person_keys(locale: str) -> list[str]:
    return sorted(
        k for k in catalog(locale) if not NOT_A_PERSON_MESSAGE.match(k) and not NAMED.search(k)
    )


def render(key: str, locale: str, programme: Programme) -> str:
    """A catalog text with every placeholder filled from ``programme``.

    Free-text placeholders (``text``, ``programme``, ...) get the programme's name: the
    worst case, e.g. a counsellor's away note or an operator notice that opens with it.
    """
    t = translator(locale)
    loc = locale if locale in programme.description else "en"
    alias = next((m.alias for m in programme.staff), "Alex")
    values = {
        "alias": alias,
        "programme": programme.name,
        "description": programme.description[loc],  # type: ignore[index]
        "contacts": contact_lines(programme, t) or t("contact.none"),
        "reasons": t("route.step.match", reasons=t("reason.audience.self")),
        "availability": t("availability.none"),
        "code": "K-ABCD",
        "receipt": "Q-ABC123",
        "date": "01.12.2026",
        "when": "01.12. 09:00",
        "hours": 24,
        "days": 14,
        "max": 4000,
        "n": 3,
        "language": "Русский",  # a language name (the person's own), never a programme
        "intake_hours": 48,
        "held_days": 14,
        "case_days": 90,
        "matrix": "@ausweg:example.org",
    }
    text = catalog(locale)[key]
    fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
    # Through the translator: templates carry plural specs ("{hours:#n.hours}").
    return translator(locale)(key, **{f: values.get(f, programme.name) for f in fields})


def test_the_walk_covers_the_person_facing_keys() -> None:
    keys = person_keys("de")
    for expected in ("greeting", "route.case", "route.referral", "case.claimed", "who.case"):
        assert expected in keys
    assert "relay.from_counsellor" in keys
    assert "staff.claimed" not in keys
    assert len(keys) > 40


@pytest.mark.parametrize("locale", LOCALES)
def test_check_19_no_catalog_text_gives_the_topic_away_on_a_lock_screen(locale: str) -> None:
    found = {}
    for key in person_keys(locale):
        for programme in EXAMPLE.programmes:
            bad = lockscreen.problems(render(key, locale, programme), locale, NAMES)
            if bad:
                found[key] = (lockscreen.first_line(render(key, locale, programme)), bad)
    assert found == {}


def test_check_19_catches_what_it_should() -> None:
    """The check itself can fail: the old texts and a named programme are caught."""
    old = "Hallo. Hier kannst du anonym mit einer Ausstiegs- oder Beratungsstelle schreiben."
    assert lockscreen.problems(old, "de") == ["Ausstieg"]
    assert lockscreen.problems("Jo (Spurwechsel):\nHallo", "de", NAMES) == ["Spurwechsel"]
    assert lockscreen.problems("Which scene is it about?", "en") == ["scene"]
    assert lockscreen.problems("Hallo\nAusstieg aus der rechten Szene", "de", NAMES) == []
    assert lockscreen.problems("Da ist API", "de", NAMES) == ["API"]
    assert lockscreen.problems("Wir verfassen eine Kapitel", "de", NAMES) == []


# --------------------------------------------------------------------------- journeys


async def test_check_19_journeys_for_every_audience(phone: Phone) -> None:
    p = phone
    # a person who wants out, through claim, relay, away note, /who, transfer, close
    text = await intake(
        p,
        "self",
        "audience:self",
        "scene:right",
        "state:MV",
        "district:HRO",
        "prison:no",
        "language:de",
        message="Ich will raus aus der rechten Szene.",
    )
    code = CODE.search(text)
    assert code is not None
    await p.staff("counsellor", f"/claim {code.group()}")
    await p.staff("counsellor", f"/r {code.group()} JUMP! ist für dich da. Wie geht es dir?")
    await p.staff("counsellor", "/away JUMP! ist bis Montag nicht besetzt")
    await p.say("self", "Danke")
    await p.say("self", "/who")
    await p.say("self", "wer?")
    await p.staff("counsellor", f"/transfer {code.group()} bidaya")
    await p.press("self", "transfer:yes")
    await p.staff("counsellor", "/away off")
    await p.say("self", "/help")
    await p.say("self", "/unbekannt")
    # a relative (referral with a notice), an affected person (referral to documentation),
    # a professional, a left-wing person in NRW (published contacts), in German and English
    await intake(
        p,
        "relative",
        "audience:relative",
        "scene:islamist",
        "state:BY",
        "language:de",
        message="Mein Sohn radikalisiert sich.",
    )
    await p.say("relative", "Hallo?")
    await intake(
        p,
        "affected",
        "audience:affected",
        "incident:antisemitism",
        "scene:right",
        "state:MV",
        "district:skip",
        "language:de",
        message="Schmiererei an der Synagoge.",
    )
    await intake(
        p,
        "pro",
        "audience:professional",
        "scene:other",
        "state:MV",
        "district:skip",
        "language:de",
        message=None,
    )
    await intake(
        p,
        "left",
        "audience:self",
        "scene:left",
        "state:NW",
        "prison:yes",
        "language:en",
        message="I want out.",
        locale="en",
    )
    await p.press("left", "authority:continue", "en")  # LEFT is run by a state authority
    await p.say("left", "/who", "en")
    # declining consent, then asking for the region's contacts
    await p.say("declines", "hallo")
    await p.press("declines", "consent:no")
    await p.press("declines", "region:MV")
    # deleting everything
    await p.say("pro", "/delete")
    await p.press("pro", "delete:yes")

    sent = p.to_people()
    assert len(sent) > 40
    bad = [
        (m.address.chat_id, lockscreen.first_line(m.text))
        for m in sent
        if lockscreen.problems(m.text, "de", NAMES) or lockscreen.problems(m.text, "en", NAMES)
    ]
    assert bad == []
    # the programme is still named where it belongs: in the takeover message and on /who
    to_self = "\n".join(m.text for m in sent if m.address.chat_id == "self")
    assert "Das ist Alex von JUMP!" in to_self
    assert "Du hast gefragt, wer hier schreibt:\nAlex von JUMP!" in to_self
