"""Red-team review of issue 10 observation 3 on Telegram (fake Bot API)."""

from __future__ import annotations

import pytest

from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import COUNSELLOR, COUNSELLOR2, FORUM, start_tg, telegram_directory


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 10): staff groups checked only while the bot runs",
)
async def test_attack_counsellor_removed_while_the_bot_was_down_stays_in_the_group(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    """The usual way an operator removes a counsellor: edit the directory, restart.
    TelegramTransport.use_directory compares with the previous directory only while
    online ("at start, nothing to compare with"), so the removed counsellor stays in the
    staff forum and reads every later case topic (privacy check 17).

    What should happen: the staff set last enforced per group is remembered (e.g. a
    table of numeric ids or their pseudonyms) and compared at start-up, or every account
    ever seen in the group is checked with getChatMember against the new directory."""
    api.set_member(FORUM, api.bot_id, "administrator", can_restrict_members=True)
    api.set_member(FORUM, COUNSELLOR2)
    api.set_member(FORUM, COUNSELLOR)
    tg = await start_tg(api, settings, clock, directory)
    await tg.app.stop()

    data = telegram_directory(directory).model_dump(mode="python")
    for programme in data["programmes"]:
        programme["staff"] = [
            m for m in programme["staff"] if m["accounts"].get("telegram") != str(COUNSELLOR2)
        ]
    tg = await start_tg(api, settings, clock, Directory.model_validate(data))
    try:
        assert api.member_status(FORUM, COUNSELLOR) == "member"
        assert api.member_status(FORUM, COUNSELLOR2) == "left", "removed counsellor still in"
    finally:
        await tg.app.stop()


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 10): /delete leaves the Telegram case topic",
)
async def test_attack_person_text_stays_in_the_staff_topic_after_delete(tg) -> None:  # type: ignore[no-untyped-def]
    """After /delete the person is told "Alles ist gelöscht", but every message they
    wrote stays readable in the case's forum topic (Telegram's servers, every counsellor's
    phone, and anyone who joins the staff group later: supergroups show history to new
    members). The topic is neither deleted nor even closed; docs/PRIVACY.md does not say
    that relayed copies stay.

    What should happen: erasure deletes the case's topic (deleteForumTopic, the bot is
    an admin) or at least the relayed messages (deleteMessages by the refs the bot
    sent), and Matrix redacts / purges the case room; or the person is told honestly
    which copies the programme keeps."""
    from tests.telegram.test_journey import PERSON, open_case

    secret = "Ich wohne jetzt Lindenweg 5 SENTINEL77"
    code, _topic = await open_case(tg, PERSON, secret)
    await tg.press(COUNSELLOR, f"claim:{code}", chat=FORUM)
    await tg.say(PERSON, "Noch was: SENTINEL78")
    await tg.say(PERSON, "/delete")
    await tg.press(PERSON, "delete:yes")
    left = [m.get("text", "") for m in tg.api.messages_in(FORUM)]
    assert not [t for t in left if "SENTINEL7" in t], "person text still in the staff topic"


@pytest.mark.xfail(
    strict=True,
    reason=("open: captions of copied photos are replaced by the label"),
)
async def test_attack_photo_caption_never_reaches_staff(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    """With attachments on, a person sends a photo of the car that follows them with the
    caption "Das Auto steht seit Tagen vor meiner Tür, Kennzeichen HRO-XY 123". The copy
    into the staff topic replaces the caption with the label "[K-XXXX] (Foto)", and the
    caption is not relayed as text either: staff see a photo without the words. (A crisis
    caption still gets the numbers and the urgent mark; ordinary context is lost silently.)

    What should happen: the caption reaches staff quoted (as the label's second part, or
    as a separate quoted relay), cleaned like any person text."""
    from tests.telegram.test_journey import INTAKE, PERSON

    settings.relay_attachments = True
    tg = await start_tg(api, settings, clock, directory)
    try:
        await tg.say(PERSON, "/start")
        for answer in INTAKE:
            await tg.press(PERSON, answer)
        await tg.say(PERSON, "Hallo")
        [code] = {t["name"] for t in api.topics_in(FORUM).values()}
        await tg.press(COUNSELLOR, f"claim:{code}", chat=FORUM)
        since = len(api.sent)
        caption = "Das Auto steht seit Tagen hier, Kennzeichen HRO-XY 123"
        await tg.handled(api.push_photo(PERSON, PERSON, caption=caption))
        to_forum = [c for c in api.sent[since:] if c["params"].get("chat_id") == FORUM]
        assert to_forum, "the photo was copied"
        said = " ".join(
            str(c["params"].get("caption", "")) + str(c["params"].get("text", "")) for c in to_forum
        )
        assert "HRO-XY 123" in said, f"caption lost: {said!r}"
    finally:
        await tg.app.stop()
