"""Deep links: opaque referral codes, QR codes, and the journey they start."""

from __future__ import annotations

import re
from pathlib import Path

import png
import pytest
from sqlalchemy import select

from bot.links import LinkError, create_link
from storage.models import Case, Referral
from tests.conftest import Harness


async def test_link_with_qr_preselects_programme_and_counts_source(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    assert h.app.db is not None
    assert h.app.router is not None
    link = await create_link(
        h.app.db,
        h.app.router.directory,
        programme="left-nrw",
        source="police-koeln",
        bot_username="@ausweg_bot",
        now=h.clock.now(),
        qr_path=tmp_path / "qr.png",
    )
    assert re.fullmatch(r"https://t\.me/ausweg_bot\?start=[A-Za-z0-9]{10}", link.url)
    assert "left" not in link.code.casefold()
    assert "police" not in link.code.casefold()
    width, height, _, _ = png.Reader(bytes=(tmp_path / "qr.png").read_bytes()).read()
    assert width == height
    assert width > 100
    for step in (
        f"/start {link.code}",
        "b:consent:yes",
        "b:safety:no",
        "b:audience:self",
        "b:scene:left",
        "b:state:NW",
        "b:prison:no",
        "b:language:de",
    ):
        await (h.press("p", step[2:]) if step.startswith("b:") else h.say("p", step))
    got = await h.press("p", "message:skip")
    if any(b.data == "authority:continue" for m in got for b in m.flat_buttons):
        got = await h.press("p", "authority:continue")  # LEFT is run by a state authority
    assert got  # the programme is checked below (texts name it only on request)
    async with h.app.db.transaction() as s:
        case = (await s.execute(select(Case))).scalar_one()
        referral = (await s.execute(select(Referral))).scalar_one()
    assert (case.programme_id, case.source) == ("left-nrw", "police-koeln")
    assert referral.delete_after > h.clock.now()


@pytest.mark.parametrize(
    ("programme", "source", "user", "error"),
    [
        ("nope", "poster", "ausweg_bot", "unknown programme"),
        ("jump", "Poster Schwerin!", "ausweg_bot", "source"),
        ("jump", "poster", "", "BOT_USERNAME"),
    ],
)
async def test_bad_link_requests_are_explained(
    harness: Harness, programme: str, source: str, user: str, error: str
) -> None:
    assert harness.app.db is not None
    assert harness.app.router is not None
    with pytest.raises(LinkError, match=error):
        await create_link(
            harness.app.db,
            harness.app.router.directory,
            programme=programme,
            source=source,
            bot_username=user,
            now=harness.clock.now(),
        )
