"""Discretion by default (issue 12 part 3): counsellor messages carry the alias only, the
programme is named in the takeover message (not its first line) and on /who, and an
operator may choose to name it on every message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from config.directory import Directory, DirectoryError, parse_directory
from tests.phone import EXAMPLE, Phone, intake, start

CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")
SELF_RIGHT_MV = ("audience:self", "scene:right", "state:MV", "district:skip", "prison:no")


async def open_jump_case(p: Phone, who: str = "p") -> str:
    text = await intake(p, who, *SELF_RIGHT_MV, "language:de", message="Hallo")
    code = CODE.search(text)
    assert code is not None, text
    return code.group()


async def test_counsellor_messages_carry_the_alias_only(phone: Phone) -> None:
    p = phone
    code = await open_jump_case(p)
    await p.staff("counsellor", f"/claim {code}")
    p.t.pop("p")  # the takeover message
    await p.staff("counsellor", f"/r {code} Hallo, ich bin für dich da.")
    [relayed] = p.t.pop("p")
    assert relayed.text == "Alex:\nHallo, ich bin für dich da."
    for name in ("JUMP!", "CJD Waren"):
        assert name not in relayed.text


async def test_programme_named_in_the_takeover_message_but_not_its_first_line(
    phone: Phone,
) -> None:
    p = phone
    await intake(p, "p", *SELF_RIGHT_MV, "language:de", message="Hallo")
    routed = [m.text for m in p.to_people()][-2:]
    # the routing result does not name the programme; its own contact paths do (later)
    assert "JUMP!" not in routed[0]
    assert routed[1].startswith("Wenn du lieber ohne Chat Kontakt aufnimmst:\nJUMP!: ")
    code = CODE.search(routed[0])
    assert code is not None
    await p.staff("counsellor", f"/claim {code.group()}")
    [takeover] = [m.text for m in p.t.pop("p")]
    first, rest = takeover.split("\n", 1)
    assert "JUMP!" not in first
    assert "Alex" in first
    assert "Alex von JUMP!" in rest
    assert "JUMP!." not in rest, "no doubled mark after a name ending in one"


@pytest.mark.parametrize("ask", ["/who", "!who", "/wer", "wer?", "Wer", "who?", "wer liest mit?"])
async def test_who_names_programme_and_counsellor_on_request(phone: Phone, ask: str) -> None:
    p = phone
    code = await open_jump_case(p)
    waiting = await p.say("p", ask)
    assert waiting.split("\n", 1)[0] == "Du hast gefragt, wer deine Anfrage liest:"
    assert "JUMP!" in waiting
    assert "übernommen" in waiting  # nobody has yet
    await p.staff("counsellor", f"/claim {code}")
    p.t.pop("p")
    claimed = await p.say("p", ask)
    assert "Alex von JUMP!" in claimed
    assert "JUMP!." not in claimed
    assert EXAMPLE.by_id["jump"].description["de"].split()[0] in claimed
    # the question is answered by the bot, not relayed to the counsellor
    assert p.t.pop("staff") == []


async def test_who_before_a_case_says_nobody_reads_yet(phone: Phone) -> None:
    p = phone
    await p.say("q", "hallo")
    got = await p.say("q", "/who")
    assert "Noch liest hier niemand mit" in got
    got = await p.say("q", "who", locale="en")
    assert "Noch liest" in got or "Nobody reads" in got


async def test_operator_can_name_the_programme_on_every_message(tmp_path: Path) -> None:
    data: dict[str, Any] = EXAMPLE.model_dump(mode="python")
    data["discretion"] = {"name_programme": True}
    app, transport = await start(tmp_path, Directory.model_validate(data))
    try:
        p = Phone(app, transport)
        routed = await intake(p, "p", *SELF_RIGHT_MV, "language:de", message="Hallo")
        assert routed.startswith("Danke. Deine Anfrage ist bei JUMP!")
        code = CODE.search(routed)
        assert code is not None
        await p.staff("counsellor", f"/claim {code.group()}")
        p.t.pop("p")
        await p.staff("counsellor", f"/r {code.group()} Hallo")
        [relayed] = p.t.pop("p")
        assert relayed.text == "Alex (JUMP!):\nHallo"
    finally:
        await app.stop()


def test_discretion_is_on_by_default() -> None:
    assert EXAMPLE.discretion.name_programme is False
    minimal = parse_directory(
        "fallback: [a]\nprogrammes:\n  - {id: a1, name: A, kind: clearing, audiences: [self],"
        " states: [DE], description: {de: x, en: y}}\n".replace("[a]", "[a1]")
    )
    assert minimal.discretion.name_programme is False


def test_an_alias_that_names_the_programme_is_refused() -> None:
    text = """
fallback: [api-nrw]
programmes:
  - id: api-nrw
    name: API Aussteigerprogramm Islamismus
    short_name: API
    kind: exit
    audiences: [self]
    states: [NW]
    description: {de: x, en: y}
    staff:
      - {id: s1, alias: Kim von API, accounts: {memory: s1}}
"""
    with pytest.raises(DirectoryError, match="names the programme"):
        parse_directory(text, "test.yaml")
    assert parse_directory(text.replace("Kim von API", "Kim"), "test.yaml")
