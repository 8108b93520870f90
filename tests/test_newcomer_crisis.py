"""Newcomer runs (2026-11-29): crisis messages written the way the people in the
journeys would write them, which the detector misses (or misreads). Each is a sentence a
person leaving the scene, a relative or an affected person could type as their first
message; on main (01ba1b9) they get the greeting and the consent notice, no numbers."""

from __future__ import annotations

import pytest

from handlers.safety import detect
from tests.phone import Phone

MISSED = {
    # the scene's classic threat against people who leave ("you will pay for leaving")
    "sie haben gesagt ich bin tot wenn ich aussteige": "threat",
    "der verräter wird bezahlen haben sie geschrieben": "threat",
    "wenn ich rausgehe machen die mich fertig": "threat",
    # violence already done, being watched
    "die kameraden haben mein auto angezündet": "threat",
    "ich glaube die beobachten mein haus": "threat",
    # a mother describing warning signs of an attack
    "mein sohn hat eine waffe und redet davon es allen zu zeigen": "others",
}


@pytest.mark.parametrize("text", sorted(MISSED))
def test_newcomer_crisis_phrasings_are_detected(text: str) -> None:
    danger = detect(text)
    assert danger is not None, f"missed: {text!r}"
    assert danger.value == MISSED[text], f"{text!r}: {danger.value}"


def test_newcomer_grief_is_not_suicide() -> None:
    """ "mein bruder ist tot, er war in der szene" (grief about a brother) is read as
    suicide: the sibling gets "Wenn du nicht mehr weiterweißt: TelefonSeelsorge ..."."""
    danger = detect("mein bruder ist tot, er war in der szene")
    assert danger is None or danger.value != "suicide", danger


async def test_newcomer_scene_death_threat_as_first_message_gets_numbers(phone: Phone) -> None:
    reply = await phone.say("man", "sie haben gesagt ich bin tot wenn ich aussteige")
    assert "110" in reply.split("\n")[0], reply
