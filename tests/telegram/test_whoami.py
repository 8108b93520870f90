"""/whoami (issue 15 part 7): the operator learns the numeric ids of a staff group and
of the accounts in it, to write them into the programme directory; nothing is stored."""

from __future__ import annotations

from config.i18n import translator
from tests.telegram.conftest import COUNSELLOR, FORUM, Tg, texts
from tests.telegram.test_unknown_group import _updates

NEW_GROUP = -1_009_876_543_210
OPERATOR = 7_200_000_042
PERSON = 5_800_000_007


async def test_whoami_shows_the_ids_in_groups_only_and_stores_nothing(tg: Tg) -> None:
    before = await _updates(tg)
    t = translator("de")

    # A supergroup that is not in the directory yet: the ids, then the usual goodbye.
    since = len(tg.api.sent)
    await tg.handled(
        tg.api.push_message(NEW_GROUP, OPERATOR, "/whoami@ausweg_test_bot", chat_type="supergroup")
    )
    said = texts(tg.api.sent[since:], NEW_GROUP)
    assert said[0] == t(
        "staff.whoami", platform="telegram", chat=str(NEW_GROUP), account=str(OPERATOR)
    )
    assert said[1:] == [t("group.leaving")]
    assert tg.api.has_left(NEW_GROUP)

    # The configured staff forum: a counsellor's own id, and the bot stays.
    said = texts(await tg.staff(COUNSELLOR, "/whoami"), FORUM)
    assert said == [
        t("staff.whoami", platform="telegram", chat=str(FORUM), account=str(COUNSELLOR))
    ]
    assert not tg.api.has_left(FORUM)

    # In a private chat it is no command: nobody learns ids there.
    said = texts(await tg.say(PERSON, "/whoami"), PERSON)
    assert str(PERSON) not in "".join(said)
    assert await _updates(tg) == before + 1  # only the private message was recorded
