"""End-to-end journeys on a real Synapse: a person in an encrypted DM, counsellors in rooms."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bot.logsetup import setup_logging
from bot.transports.matrix import MatrixTransport
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from config.i18n import translator
from config.messages import OutKind
from tests.conftest import memory_directory
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    CODE,
    Peer,
    accept_invite,
    bot_settings,
    create_room,
    intake_to_case,
    joined,
    matrix_directory,
    new_peer,
    running,
)
from tests.matrix.nio_helpers import send_text, sync_until
from tests.matrix.test_store import hits
from tests.test_sentinels import find


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG through the project's redacting handler."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging("DEBUG", stream=buf)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


#: Whether the core already opens case rooms (emits CASE_CLAIMED); then they are required.
CORE_CASE_ROOMS = any(
    "OutKind.CASE_CLAIMED" in p.read_text(encoding="utf-8")
    for p in (Path(__file__).resolve().parents[2] / "handlers" / "casework").glob("*.py")
)


async def claim(counsellor: Peer, transport: MatrixTransport, staff_room: str, command: str) -> str:
    """Claim in the staff room; return the room where the case is discussed from now on."""
    before = len(counsellor.bodies(staff_room))
    await counsellor.say(staff_room, command, "übernommen")
    if not CORE_CASE_ROOMS:
        return staff_room
    case_room = await accept_invite(counsellor)
    assert case_room in transport.case_rooms.values()
    assert len(counsellor.bodies(staff_room)) > before
    return case_room


def staff_room_texts(peer: Peer, room_id: str) -> str:
    """Every byte of every message event the bot sent into a room, as JSON."""
    return json.dumps(peer.events.get(room_id, []), ensure_ascii=False)


async def test_encrypted_journey_claim_and_relay_without_account_data(
    synapse: SynapseServer, tmp_path: Path, directory: Directory, debug_log: io.StringIO
) -> None:
    tag = secrets.token_hex(3)
    display = f"Sentinel Person {tag}"
    held = f"Ich will raus {tag}"
    bot_user = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12))
    person = await new_peer(synapse, "sentinel", displayname=display)
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    jump = matrix_directory(directory, counsellor.user_id, staff_room)
    alias = jump.by_id["jump"].staff[0].alias
    try:
        async with running(settings, [transport], jump):
            await joined(counsellor, staff_room, bot_user.user_id)
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)

            code = await intake_to_case(person, dm, message=held)
            await counsellor.expect(staff_room, code)

            # Claim by command (the "!" form); a case room is opened for it.
            before = len(person.bodies(dm))
            case_room = await claim(counsellor, transport, staff_room, f"!claim {code}")
            await person.expect(dm, f"{alias} von JUMP!", before=before)
            if case_room != staff_room:
                room = counsellor.client.rooms[case_room]
                assert room.encrypted
                assert room.name == f"Fall {code}"

            # Relay both ways, in the case room.
            before = len(person.bodies(dm))
            await send_text(counsellor.client, case_room, f"Hallo, hier ist {alias}.")
            got = await person.expect(dm, f"Hallo, hier ist {alias}.", before=before)
            reply = next(b for b in got if "Hallo, hier ist" in b)
            assert reply.startswith(f"{alias}:\n")  # alias only (issue 12 part 3)
            assert counsellor.user_id not in json.dumps(person.events[dm])
            before = len(counsellor.bodies(case_room))
            await send_text(person.client, dm, f"Danke {tag}")
            await counsellor.expect(case_room, f"[{code}]\n> Danke {tag}", before=before)
    finally:
        await person.close()
        await counsellor.close()

    # Staff rooms never saw the person's account.
    for room_id in {staff_room, case_room}:
        seen = staff_room_texts(counsellor, room_id)
        assert person.user_id not in seen
        assert display not in seen
    assert held in staff_room_texts(counsellor, staff_room) + staff_room_texts(
        counsellor, case_room
    ), "the held message reached the counsellor"

    # The data folder holds no readable identifier or text of the person.
    sentinels = {
        "person id": person.user_id,
        "localpart": person.user_id[1:].split(":")[0],
        "display name": display,
        "message": held,
    }
    assert hits(settings.data_dir, sentinels) == {}
    logs = debug_log.getvalue()
    for value in sentinels.values():
        assert find(logs.encode(), value) == [], f"{value!r} in logs"
    assert "matrix" in {p.name for p in settings.data_dir.iterdir()}


async def test_plain_dm_reaction_and_slash_claim(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-1")
    person = await new_peer(synapse, "plain")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False)
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    try:
        async with running(
            settings, [transport], matrix_directory(directory, counsellor.user_id, staff_room)
        ):
            await joined(counsellor, staff_room, bot_user.user_id)
            response = await person.client.room_create(is_direct=True, invite=[bot_user.user_id])
            dm = response.room_id
            await _joined_plain(person, dm, bot_user.user_id)
            got = await person.say(dm, "/start", "einverstanden")
            question = person.events[dm][-1]
            assert question["content"]["msgtype"] == "m.notice"
            assert "<ol><li>Ja, einverstanden</li>" in question["content"]["formatted_body"]
            # A keycap reaction on the question presses its first option.
            before = len(person.bodies(dm))
            await person.client.room_send(
                dm,
                "m.reaction",
                {
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": question["event_id"],
                        "key": "1\ufe0f\u20e3",
                    }
                },
            )
            await person.expect(dm, "Gefahr", before=before)
            # The rest by typing, claim with the slash form.
            await person.say(dm, "nein", "Wer schreibt")
            for answer, expect in (
                ("1", "Rechtsextrem"),
                ("Rechtsextrem", "Mecklenburg"),
                ("Nordrhein-Westfalen", "Haft"),
                ("Nein", "Deutsch"),
                ("Deutsch", "Nein, weiter"),
            ):
                got = await person.say(dm, answer, expect)
            asked = translator("de")("authority.question")
            got = await person.say(dm, "1", lambda b: any(CODE.search(x) or asked in x for x in b))
            if not any(CODE.search(b) for b in got):  # run by a state authority: told, go on
                got = await person.say(dm, "1", lambda b: any(CODE.search(x) for x in b))
            code = next(m.group() for b in got if (m := CODE.search(b)))
            await counsellor.expect(staff_room, code)
            case_room = await claim(counsellor, transport, staff_room, f"/claim {code}")
            before = len(person.bodies(dm))
            await send_text(counsellor.client, case_room, "Guten Tag")
            got = await person.expect(dm, "Guten Tag", before=before)
            # alias only: the programme is named in the takeover message, not on each line
            assert any(b.endswith("Guten Tag") and "Spurwechsel" not in b for b in got)
    finally:
        await person.close()
        await counsellor.close()


async def _joined_plain(peer: Peer, room_id: str, user_id: str) -> None:
    from tests.matrix.nio_helpers import sync_until

    def ok() -> bool:
        room = peer.client.rooms.get(room_id)
        return bool(room and user_id in room.users and user_id not in room.invited_users)

    await sync_until([peer.client], ok, what="the bot to join")


async def test_person_on_matrix_counsellor_on_memory(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-2")
    person = await new_peer(synapse, "mixed")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    matrix = MatrixTransport(settings, sync_timeout_ms=5000)
    memory = MemoryTransport()
    try:
        async with running(settings, [matrix, memory], memory_directory(directory)):
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo Team")
            announced = memory.pop("staff")
            assert any(code in m.text for m in announced)
            assert all(person.user_id not in m.text for m in announced)
            await memory.push("counsellor", f"/claim {code}", chat="staff", group=True)
            staff_side = memory.pop("staff")
            assert any("Hallo Team" in m.text for m in staff_side)
            assert all(m.kind is not OutKind.VANISH for m in staff_side)
            before = len(person.bodies(dm))
            # The memory staff room has no topics: the case is named (check 16).
            await memory.push("counsellor", f"/r {code} Wie geht es dir?", chat="staff", group=True)
            got = await person.expect(dm, "Wie geht es dir?", before=before)
            assert any(b.endswith("Wie geht es dir?") and b.startswith("Alex:\n") for b in got)
            await send_text(person.client, dm, "Gut, danke")
            await sync_until(
                [person.client],
                lambda: any("Gut, danke" in m.text for m in memory.sent),
                what="the relay to memory",
            )
            assert any(f"[{code}]\n> Gut, danke" in m.text for m in memory.pop("staff")), (
                "the person's reply reached the memory staff room"
            )
    finally:
        await person.close()


class Crash(BaseException):
    """Stands for the process dying (escapes every ``except Exception``)."""


async def test_crash_after_commit_redelivers_without_duplicate_replies(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    """A crash between handling and saving the sync token: redelivered, answered once."""
    bot_user = await synapse.register_async(f"bot-{secrets.token_hex(3)}", "bot-password-3")
    person = await new_peer(synapse, "crash")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    d = memory_directory(directory)
    try:
        first = MatrixTransport(settings, sync_timeout_ms=5000)
        async with running(settings, [first, MemoryTransport()], d) as app:
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            await person.say(dm, "/start", "einverstanden")

            handle = app.on_message

            async def crash_after(msg: Any) -> None:
                await handle(msg)  # committed and answered ...
                if msg.text == "Ja, einverstanden":
                    raise Crash  # ... then the process dies before the token is saved

            first._handler = crash_after
            await person.say(dm, "Ja, einverstanden", "Gefahr")
            assert first._task is not None
            async with asyncio.timeout(10):
                await asyncio.wait({first._task})
            assert isinstance(first._task.exception(), Crash)
        await send_text(person.client, dm, "Nein")  # while the bot is down

        second = MatrixTransport(settings, sync_timeout_ms=5000)
        async with running(settings, [second, MemoryTransport()], d):
            await person.expect(dm, "Wer schreibt")
            assert second.stats["handled"] == 2  # the redelivered event and the new one
        bodies = person.bodies(dm)
        assert sum("Gefahr" in b for b in bodies) == 1, "the redelivered event was answered again"
        assert sum("Wer schreibt" in b for b in bodies) == 1
    finally:
        await person.close()


async def test_image_is_copied_into_the_case_room_when_switched_on(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    tag = secrets.token_hex(3)
    bot_user = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12))
    person = await new_peer(synapse, "photo")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    settings.relay_attachments = True
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    jump = matrix_directory(directory, counsellor.user_id, staff_room)
    try:
        async with running(settings, [transport], jump):
            await joined(counsellor, staff_room, bot_user.user_id)
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo")
            await counsellor.expect(staff_room, code)
            case_room = await claim(counsellor, transport, staff_room, f"/claim {code}")
            # The content is copied, never the file: no upload is needed (the test
            # Synapse serves only the client API), any mxc:// URI will do.
            uri = f"mxc://localhost/{tag}"
            image = {  # an encrypted attachment as Element sends it (key travels inside)
                "msgtype": "m.image",
                "body": f"{tag}.png",
                "file": {
                    "url": uri,
                    "hashes": {"sha256": "aGFzaA"},
                    "iv": "aXY",
                    "key": {
                        "alg": "A256CTR",
                        "k": "a2V5",
                        "ext": True,
                        "kty": "oct",
                        "key_ops": ["encrypt", "decrypt"],
                    },
                    "v": "v2",
                },
                "info": {"mimetype": "image/png", "size": 10},
            }
            before = len(counsellor.bodies(case_room))
            await person.client.room_send(
                dm, "m.room.message", image, ignore_unverified_devices=True
            )
            got = await counsellor.expect(case_room, f"{tag}.png", before=before)
            assert f"[{code}] (Foto)" in counsellor.bodies(case_room)[before:]
            assert f"{tag}.png" in got
            copied = next(
                e
                for e in counsellor.events[case_room][before:]
                if e.get("content", {}).get("msgtype") == "m.image"
            )
            assert copied["content"]["file"]["url"] == uri
            assert person.user_id not in json.dumps(copied)
    finally:
        await person.close()
        await counsellor.close()


async def test_rooms_are_left_and_purged_after_retention(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    tag = secrets.token_hex(3)
    bot_user = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12), admin=True)
    person = await new_peer(synapse, "leaver")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot_user.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot_user)
    settings.matrix.admin_purge = True
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    jump = matrix_directory(directory, counsellor.user_id, staff_room)
    rooms_path = "/_synapse/admin/v1/rooms/{}"
    try:
        async with running(settings, [transport], jump) as app:
            await joined(counsellor, staff_room, bot_user.user_id)
            dm = await create_room(person, [bot_user.user_id], direct=True)
            await joined(person, dm, bot_user.user_id)
            code = await intake_to_case(person, dm, message="Hallo")
            await counsellor.expect(staff_room, code)
            case_room = await claim(counsellor, transport, staff_room, f"/claim {code}")
            await counsellor.say(case_room, "/close exit", "geschlossen")
            await app.purge()
            assert app.last_purge is not None
            assert app.last_purge.rooms == []  # the person may still write for 48 h

            clock = app.clock
            assert isinstance(clock, FakeClock)
            clock.advance(hours=49)
            await app.purge()
            assert [r.chat_id for r in app.last_purge.rooms] == [dm]
            for room_id in (case_room, dm):
                status, _ = await asyncio.to_thread(
                    synapse.request,
                    "GET",
                    rooms_path.format(quote(room_id, safe="")),
                    token=bot_user.access_token,
                )
                assert status == 404, room_id  # purged from the server
            assert case_room not in transport.client.rooms  # type: ignore[union-attr]
    finally:
        await person.close()
        await counsellor.close()
