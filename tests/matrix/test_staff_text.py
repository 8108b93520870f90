"""Issue 10, observation 6 on a real Synapse: person text arrives in the case room as a
quote (plain ``> `` lines and an HTML ``<blockquote>``), and a relayed media event keeps
only msgtype, body, filename, info, url and file."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.transports.matrix import MatrixTransport
from config.directory import Directory
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
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
from tests.matrix.nio_helpers import send_text
from tests.test_staff_text import ATTACK, BIDI, FORGED, assert_safe, bot_lines


@asynccontextmanager
async def claimed_case(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> AsyncIterator[tuple[Peer, Peer, str, str, str]]:
    """A person's case claimed on Matrix: (person, counsellor, dm, case room, code)."""
    tag = secrets.token_hex(3)
    bot = await synapse.register_async(f"bot-{tag}", secrets.token_urlsafe(12))
    person = await new_peer(synapse, "quoted")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot)
    settings.relay_attachments = True
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    try:
        async with running(
            settings, [transport], matrix_directory(directory, counsellor.user_id, staff_room)
        ):
            await joined(counsellor, staff_room, bot.user_id)
            dm = await create_room(person, [bot.user_id], direct=True)
            await joined(person, dm, bot.user_id)
            code = await intake_to_case(person, dm, message=f"hallo {tag}")
            await counsellor.say(staff_room, f"/claim {code}", "übernommen")
            case_room = await accept_invite(counsellor)
            await counsellor.expect(case_room, f"hallo {tag}")
            yield person, counsellor, dm, case_room, code
    finally:
        await person.close()
        await counsellor.close()


async def test_person_text_is_quoted_in_the_case_room(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    async with claimed_case(synapse, tmp_path, directory) as (person, counsellor, dm, room, code):
        before = len(counsellor.bodies(room))
        await send_text(person.client, dm, ATTACK)
        await counsellor.expect(room, FORGED, before=before)
        [event] = [e for e in counsellor.events[room][before:] if FORGED in e["content"]["body"]]
        content = event["content"]
        assert bot_lines(content["body"]) == [f"[{code}]"]
        assert_safe(content["body"], code)
        formatted = content["formatted_body"]
        assert formatted.startswith(f"[{code}]<blockquote>")
        outside = re.sub(r"<blockquote>.*</blockquote>", "", formatted, flags=re.DOTALL)
        assert outside == f"[{code}]"
        assert not BIDI & set(formatted)
        assert "\n" not in formatted


async def test_relayed_media_keeps_only_safe_keys(
    synapse: SynapseServer, tmp_path: Path, directory: Directory
) -> None:
    tag = secrets.token_hex(3)
    async with claimed_case(synapse, tmp_path, directory) as (person, counsellor, dm, room, _):
        image = {
            "msgtype": "m.image",
            "body": f"{tag}\u202egnp.exe",
            "file": {  # an encrypted attachment as Element sends it
                "url": f"mxc://localhost/{tag}",
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
            "format": "org.matrix.custom.html",
            "formatted_body": f'<a href="https://evil.example/{tag}">Hilfe</a>',
            "m.mentions": {"room": True, "user_ids": [counsellor.user_id]},
            "m.relates_to": {"m.in_reply_to": {"event_id": "$elsewhere"}},
        }
        before = len(counsellor.bodies(room))
        await person.client.room_send(dm, "m.room.message", image, ignore_unverified_devices=True)
        await counsellor.expect(room, "gnp.exe", before=before)
        [copied] = [
            e["content"]
            for e in counsellor.events[room][before:]
            if e["content"].get("msgtype") == "m.image"
        ]
        assert set(copied) <= {"msgtype", "body", "filename", "info", "url", "file"}
        assert copied["file"]["url"] == f"mxc://localhost/{tag}"
        assert "\u202e" not in copied["body"]
        assert "evil.example" not in str(copied)
