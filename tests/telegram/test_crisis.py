"""The crisis protocol on Telegram (issue 11): a danger message before consent gets the
numbers at once in the person's language; one press opens an urgent case that the staff
forum sees first, with the mark, in its own topic."""

from __future__ import annotations

import re

from config.i18n import translator
from tests.telegram.conftest import FORUM, Tg, payload, texts

PERSON = 5_550_000_011
CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")


async def test_crisis_before_consent_press_opens_urgent_case_in_the_forum(tg: Tg) -> None:
    ru = translator("ru")
    got = await tg.say(PERSON, "Ich will mich umbringen", language_code="ru")
    sent = [c for c in got if c["method"] == "sendMessage"]
    assert sent[0]["params"]["chat_id"] == PERSON
    assert sent[0]["params"]["text"].startswith(ru("crisis.suicide").splitlines()[0])
    assert texts(got, PERSON)[-1] == ru("crisis.contact.question")
    assert texts(got, FORUM) == [], "nothing reaches staff before the press"
    [button] = [d for d in tg.buttons(PERSON) if d.startswith("crisis:contact")]

    got = await tg.press(PERSON, button, language_code="ru")
    to_person = texts(got, PERSON)
    assert to_person[0] == ru("crisis.contact.opened")
    found = CODE.search("\n".join(to_person))
    assert found is not None
    code = found.group()
    topics = {t["name"]: thread for thread, t in tg.api.topics_in(FORUM).items()}
    assert code in topics, "the urgent case got its own topic"
    announce = [c for c in got if c["method"] == "sendMessage" and c["params"]["chat_id"] == FORUM]
    assert announce
    assert announce[0]["params"]["text"].startswith("🚨")
    assert announce[0]["params"]["message_thread_id"] == topics[code]
    assert f"claim:{code}" in payload(announce[0])
    assert all("umbringen" not in c["params"]["text"] for c in announce)
