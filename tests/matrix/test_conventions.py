"""Issue 12 part 10 on a real Synapse: Matrix conventions.

Element keeps messages starting with "/" for itself (``/help`` never leaves the app, any
other unknown one opens a "send as message?" dialog). A person here uses only ``!``
commands and plain words, and nothing the bot sends names a "/" command. The bot's
profile shows the configured display name and avatar (uploaded once).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from nio import ProfileGetResponse

from bot.transports.matrix import MatrixTransport
from config.directory import Directory
from config.i18n import translator
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    CODE,
    Peer,
    bot_settings,
    create_room,
    joined,
    matrix_directory,
    new_peer,
    option,
    running,
)
from tests.matrix.nio_helpers import sync_until

#: A command named with a slash, as a word of its own (not in a path or an address).
SLASH_COMMAND = re.compile(r"(?<![\w/.:@-])/[a-z_]+\b")
#: A minimal valid 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def bot_lines(bodies: list[str]) -> list[str]:
    """Lines the bot wrote itself (quoted person text is the person's own)."""
    return [line for b in bodies for line in b.split("\n") if not line.startswith(">")]


@pytest.mark.xfail(
    strict=False,
    reason="open: the erasure receipt of this journey did not arrive in 20 s",
)
async def test_a_person_uses_only_bang_commands_and_plain_words_and_reads_no_slash(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    de, en = translator("de"), translator("en")
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-1")
    person = await new_peer(synapse, "bang")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False)
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    try:
        async with running(
            settings, [transport], matrix_directory(directory, counsellor.user_id, staff_room)
        ):
            await joined(counsellor, staff_room, bot_user.user_id)
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)

            got = await person.say(dm, "hallo", "einverstanden")
            got = await person.say(dm, "hilfe", de("help.person.matrix"))
            assert any("!delete" in b for b in got)
            got = await person.say(dm, "!gibtsnicht", "Diesen Befehl kenne ich nicht")
            assert any("!help" in b for b in got)
            # "sprache" offers the six languages; a typed name switches (issue 12 part 1)
            await person.say(dm, "sprache", "Welche Sprache möchtest du?")
            got = await person.say(dm, "English", "Yes, I agree")
            assert any(en("language.switched") in b for b in got)
            got = await person.say(dm, "!sprache deutsch", "Ja, einverstanden")
            assert any(de("language.switched") in b for b in got)
            got = await person.say(dm, option(got, "Ja, einverstanden"), "Gefahr")
            got = await person.say(dm, "Nein", "1. Ich will")
            got = await person.say(dm, option(got, "Ich will aus"), "Rechtsextrem")
            got = await person.say(dm, "rechtsextrem", "Mecklenburg")
            got = await person.say(dm, "zurück", "Rechtsextrem")  # plain word: one back
            got = await person.say(dm, "rechtsextrem", "Mecklenburg")
            got = await person.say(dm, option(got, "Mecklenburg"), "Ludwigslust")
            got = await person.say(dm, option(got, "Ludwigslust"), "Haft")
            got = await person.say(dm, "Nein", "Deutsch")
            got = await person.say(dm, "Deutsch", "Nein, weiter")
            got = await person.say(dm, "Ich will raus", lambda b: any(CODE.search(x) for x in b))
            assert any("!who" in b for b in got)
            code = next(m.group() for b in got if (m := CODE.search(b)))
            await counsellor.expect(staff_room, code)

            before = len(person.bodies(dm))
            await counsellor.say(staff_room, f"!claim {code}", "übernommen")
            got = await person.expect(dm, "!who", before=before)
            await person.say(dm, "wer", "Du hast gefragt, wer hier schreibt")
            await person.say(dm, "!pause", lambda b: len(b) > 0)
            got = await person.say(dm, "löschen", "wirklich alles löschen")
            await person.say(dm, option(got, "Ja, alles löschen"), "Alles ist gelöscht")
    finally:
        await person.close()
        await counsellor.close()

    sent_to_person = person.bodies(dm)
    assert len(sent_to_person) > 20
    for line in bot_lines(sent_to_person):
        assert "/help" not in line
        assert not SLASH_COMMAND.search(line), line
    # Counsellors on Element hit the same wall: their texts name "!claim" too.
    staff = bot_lines(counsellor.bodies(staff_room))
    assert staff
    for line in staff:
        assert not SLASH_COMMAND.search(line), line


async def test_the_bot_sets_its_display_name_and_uploads_its_avatar_once(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    tag = secrets.token_hex(3)
    name = f"Ausweg {tag}"
    avatar = tmp_path / "avatar.png"
    avatar.write_bytes(PNG)
    bot_user = await synapse.register_async(f"bot-{tag}", "bot-password-1")
    person = await new_peer(synapse, "looker")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False)
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    settings.matrix.display_name = name
    settings.matrix.avatar_path = avatar
    jump = matrix_directory(directory, counsellor.user_id, staff_room)

    async def profile(peer: Peer) -> ProfileGetResponse:
        got = await peer.client.get_profile(bot_user.user_id)
        assert isinstance(got, ProfileGetResponse), got
        return got

    before = await profile(person)
    assert before.displayname != name
    assert before.avatar_url is None
    try:
        transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
        async with running(settings, [transport], jump):
            first = await profile(person)
            assert first.displayname == name
            assert first.avatar_url is not None
            assert first.avatar_url.startswith("mxc://")
            # The person's chat list shows the name, not the account's localpart.
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)

            def shows_name() -> bool:
                room = person.client.rooms.get(dm)
                user = room.users.get(bot_user.user_id) if room else None
                return user is not None and user.display_name == name

            await sync_until([person.client], shows_name, what="the bot's display name")

        # A restart with the same file: nothing uploaded again, the profile unchanged.
        transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
        async with running(settings, [transport], jump):
            again = await profile(person)
            assert again.avatar_url == first.avatar_url
            assert again.displayname == name

        # A new picture is uploaded (a new mxc URI) and set.
        avatar.write_bytes(PNG + b"\x00")
        transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
        async with running(settings, [transport], jump):
            changed = await profile(person)
            assert changed.avatar_url not in (None, first.avatar_url)
    finally:
        await person.close()
        await counsellor.close()
