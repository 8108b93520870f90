"""The Matrix transport against a real Synapse, without the core: what goes in, what comes out."""

from __future__ import annotations

import asyncio
import secrets
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nio import MatrixRoom, ReactionEvent, RedactionEvent
from pydantic import SecretStr

from bot.transports.matrix import MatrixTransport
from bot.transports.matrix.crypto_store import DEFAULT_STORE_NAME
from bot.transports.matrix.receiving import UNDECRYPTABLE_TEXT
from bot.transports.matrix.session import SESSION_FILE, load_session
from config.messages import Address, Button, ChatKind, InboundMessage, OutboundMessage, OutKind
from config.messages import Platform as P
from config.settings import Settings, decode_key, new_key
from tests.fakes.synapse import SynapseServer
from tests.matrix.journey import (
    Peer,
    accept_invite,
    bot_settings,
    create_room,
    joined,
    new_peer,
)
from tests.matrix.nio_helpers import send_text, sync_until
from tests.matrix.test_crosssign import assert_cross_signed, query_as


@dataclass
class Recorder:
    """Stands in for the core: records what the transport delivers."""

    messages: list[InboundMessage] = field(default_factory=list)

    async def __call__(self, message: InboundMessage) -> None:
        self.messages.append(message)

    async def next(self, *peers: Peer, after: int) -> InboundMessage:
        await sync_until(
            [p.client for p in peers], lambda: len(self.messages) > after, what="a delivery"
        )
        return self.messages[after]


@dataclass
class Setup:
    transport: MatrixTransport
    recorder: Recorder
    settings: Settings
    person: Peer
    counsellor: Peer
    staff_room: str
    dm: str


async def _start(transport: MatrixTransport, recorder: Recorder) -> None:
    await transport.start(recorder)
    async with asyncio.timeout(20):
        await transport.wait_ready()


@pytest.fixture
async def setup(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Setup]:
    """A started transport in a staff room and an encrypted DM with a person."""
    bot = await synapse.register_async(f"bot-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
    person = await new_peer(synapse, "person")
    counsellor = await new_peer(synapse, "counsellor")
    staff_room = await create_room(counsellor, [bot.user_id], direct=False, name="Team")
    settings = bot_settings(tmp_path / "data", synapse, bot, reactions=True)
    transport = MatrixTransport(settings, staff_rooms=[staff_room], sync_timeout_ms=5000)
    recorder = Recorder()
    await _start(transport, recorder)
    state: Setup | None = None
    try:
        await joined(counsellor, staff_room, bot.user_id)
        dm = await create_room(person, [bot.user_id], direct=True)
        await joined(person, dm, bot.user_id)
        state = Setup(transport, recorder, settings, person, counsellor, staff_room, dm)
        yield state
    finally:
        # A test may have restarted the transport: stop the current one.
        await (state.transport if state else transport).stop()
        await person.close()
        await counsellor.close()


async def test_inbound_messages_and_rendering(setup: Setup) -> None:
    s, rec, person = setup, setup.recorder, setup.person
    await send_text(person.client, s.dm, "hallo")
    msg = await rec.next(person, after=0)
    assert msg.platform is P.MATRIX
    assert msg.sender_id == person.user_id
    assert msg.address == Address(P.MATRIX, s.dm)
    assert msg.chat_kind is ChatKind.PRIVATE
    assert msg.text == "hallo"
    assert msg.update_id == msg.message_ref
    assert msg.update_id.startswith("$")

    # Buttons become a numbered list; text is escaped in the HTML body.
    buttons = ((Button("Ja", "q:yes"), Button("Nein <nie>", "q:no")),)
    result = await s.transport.send(OutboundMessage(Address(P.MATRIX, s.dm), "a < b & c", buttons))
    assert result is not None
    assert result.ref
    await person.expect(s.dm, "2. Nein <nie>")
    content = person.events[s.dm][-1]["content"]
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "a < b & c\n\n1. Ja\n2. Nein <nie>"
    assert (
        content["formatted_body"] == "a &lt; b &amp; c<ol><li>Ja</li><li>Nein &lt;nie&gt;</li></ol>"
    )

    # The bot offers the options as reactions: in Element a tap answers.
    offered: list[tuple[str, str]] = []

    async def on_reaction(_room: MatrixRoom, event: ReactionEvent) -> None:
        if event.sender == s.transport.user_id:
            offered.append((event.reacts_to, event.key))

    person.client.add_event_callback(on_reaction, ReactionEvent)
    await sync_until([person.client], lambda: len(offered) >= 2, what="the reaction shortcuts")
    assert offered == [(result.ref, "1\ufe0f\u20e3"), (result.ref, "2\ufe0f\u20e3")]

    # Typing a number presses that button; a keycap reaction too.
    await send_text(person.client, s.dm, " 2 ")
    msg = await rec.next(person, after=1)
    assert (msg.text, msg.button) == ("", "q:no")
    await person.client.room_send(
        s.dm,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": result.ref, "key": "1️⃣"}},
    )
    msg = await rec.next(person, after=2)
    assert (msg.text, msg.button) == ("", "q:yes")

    # Reply fallbacks (they name accounts) are stripped; notices are not delivered; an
    # edit comes marked as one (the core only looks for crisis words in it: red-team
    # finding 5), without a message ref.
    quoted = f"> <{s.transport.user_id}> a < b & c\n\nmeine Antwort"
    reply = {
        "msgtype": "m.text",
        "body": quoted,
        "m.relates_to": {"m.in_reply_to": {"event_id": result.ref}},
    }
    edit = {
        "msgtype": "m.text",
        "body": "* geändert",
        "m.new_content": {"msgtype": "m.text", "body": "geändert"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": msg.update_id},
    }
    for content in (
        reply,
        edit,
        {"msgtype": "m.notice", "body": "ein anderer Bot"},
        {"msgtype": "m.image", "body": "bild.jpg", "url": "mxc://localhost/x"},
    ):
        sent = await person.client.room_send(
            s.dm, "m.room.message", content, ignore_unverified_devices=True
        )
        assert getattr(sent, "event_id", None), sent
    msg = await rec.next(person, after=3)
    assert msg.text == "meine Antwort"
    msg = await rec.next(person, after=4)
    assert (msg.text, msg.edited, msg.message_ref) == ("geändert", True, None)
    msg = await rec.next(person, after=5)
    assert (msg.text, msg.attachment, msg.edited) == ("", "photo", False)

    # Once the bot said something without buttons, "2" is just text again.
    await s.transport.send(OutboundMessage(Address(P.MATRIX, s.dm), "Danke."))
    await person.expect(s.dm, "Danke.")
    await send_text(person.client, s.dm, "2")
    msg = await rec.next(person, after=6)
    assert (msg.text, msg.button) == ("2", None)

    # Staff rooms are groups.
    await send_text(s.counsellor.client, s.staff_room, "/queue")
    msg = await rec.next(person, s.counsellor, after=7)
    assert (msg.chat_kind, msg.address.chat_id, msg.text) == (
        ChatKind.GROUP,
        s.staff_room,
        "/queue",
    )

    # /vanish: the bot's messages in the person's room are redacted.
    redacted: list[str] = []

    async def on_redaction(_room: MatrixRoom, event: RedactionEvent) -> None:
        redacted.append(event.redacts)

    person.client.add_event_callback(on_redaction, RedactionEvent)
    assert (
        await s.transport.send(
            OutboundMessage(
                Address(P.MATRIX, s.dm), "", kind=OutKind.VANISH, refs=(result.ref, "$missing")
            )
        )
        is None
    )
    await sync_until([person.client], lambda: result.ref in redacted, what="the redaction")


async def test_case_rooms_are_encrypted_named_by_code_and_reused(
    setup: Setup, synapse: SynapseServer
) -> None:
    s, rec = setup, setup.recorder
    second = await new_peer(synapse, "second")
    await sync_until([second.client], lambda: True, what="the second device's keys")
    try:
        # Announce, then claim: a case room with the counsellor invited.
        await s.transport.send(
            OutboundMessage(
                Address(P.MATRIX, s.staff_room),
                "Fall K-TEST",
                ((Button("Übernehmen", "claim:K-TEST"),),),
                kind=OutKind.CASE_OPENED,
                case_code="K-TEST",
            )
        )
        announced = await s.counsellor.expect(s.staff_room, "Fall K-TEST")
        announcement = s.counsellor.events[s.staff_room][-1]
        # A thumbs-up on a one-button message presses it (claim by reaction).
        await s.counsellor.client.room_send(
            s.staff_room,
            "m.reaction",
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": announcement["event_id"],
                    "key": "👍",
                }
            },
            ignore_unverified_devices=True,
        )
        msg = await rec.next(s.counsellor, after=0)
        assert (msg.button, msg.chat_kind) == ("claim:K-TEST", ChatKind.GROUP)
        assert announced

        result = await s.transport.send(
            OutboundMessage(
                Address(P.MATRIX, s.staff_room),
                "Anna hat K-TEST übernommen.",
                kind=OutKind.CASE_CLAIMED,
                case_code="K-TEST",
                invite=(s.counsellor.user_id, "counsellor", s.transport.user_id),
            )
        )
        assert result is not None
        assert result.thread is not None
        case_room = result.thread.chat_id
        assert result.thread == Address(P.MATRIX, case_room)
        assert await accept_invite(s.counsellor) == case_room
        # The message posted before the counsellor joined is readable (keys went to invitees).
        await s.counsellor.expect(case_room, "Anna hat K-TEST übernommen.")
        await s.counsellor.expect(s.staff_room, "Anna hat K-TEST übernommen.")
        assert s.counsellor.undecrypted == 0
        room = s.counsellor.client.rooms[case_room]
        assert room.encrypted
        assert room.name == "Fall K-TEST"
        assert room.topic is None
        assert set(room.users) == {s.counsellor.user_id, s.transport.user_id}

        # A counsellor's message in the case room (two members) is a group message.
        await send_text(s.counsellor.client, case_room, "Hallo")
        msg = await rec.next(s.counsellor, after=1)
        assert (msg.chat_kind, msg.address.chat_id) == (ChatKind.GROUP, case_room)

        # A second claim addressed to the case room invites into the same room.
        again = await s.transport.send(
            OutboundMessage(
                Address(P.MATRIX, case_room),
                "Luca ist dabei.",
                kind=OutKind.CASE_CLAIMED,
                case_code="K-TEST",
                invite=(second.user_id,),
            )
        )
        assert again is not None
        assert again.thread == Address(P.MATRIX, case_room)
        assert await accept_invite(second) == case_room
        await s.transport.send(OutboundMessage(Address(P.MATRIX, case_room), "Willkommen."))
        await second.expect(case_room, "Willkommen.")
        assert "Luca ist dabei." in second.bodies(case_room)  # sent right after the invite
    finally:
        await second.close()


async def test_undecryptable_event_gets_a_kind_reply(setup: Setup, synapse: SynapseServer) -> None:
    s, person = setup, setup.person
    fake = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg",
        "device_id": person.user.device_id,
        "sender_key": "a" * 43,
        "session_id": "b" * 43,
    }
    status, reply = await asyncio.to_thread(
        synapse.request,
        "PUT",
        f"/_matrix/client/v3/rooms/{s.dm}/send/m.room.encrypted/{secrets.token_hex(8)}",
        fake,
        token=person.user.access_token,
    )
    assert status == 200, reply
    await person.expect(s.dm, UNDECRYPTABLE_TEXT)
    assert s.transport.stats["undecryptable"] == 1
    assert s.recorder.messages == []
    # Still alive: the next message is delivered.
    await send_text(person.client, s.dm, "noch da?")
    msg = await s.recorder.next(person, after=0)
    assert msg.text == "noch da?"


def _keys(settings: Settings) -> dict[int, bytes]:
    return {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.master_keys.items()}


async def test_restart_resumes_without_reprocessing_and_stays_cross_signed(
    setup: Setup, synapse: SynapseServer
) -> None:
    s, person = setup, setup.person
    session_path = s.settings.data_dir / "matrix" / SESSION_FILE
    loaded = load_session(session_path, _keys(s.settings))
    assert loaded is not None
    session = loaded[0]
    assert session.seeds is not None
    device = s.transport.device_id
    assert device == session.device_id
    assert stat.S_IMODE(session_path.stat().st_mode) == 0o600
    raw = session_path.read_bytes()
    assert session.access_token.encode() not in raw
    assert device.encode() not in raw

    # Cross-signing as another user sees it: master -> self-signing -> this device.
    reply = await query_as(synapse, person.user, s.transport.user_id)
    assert_cross_signed(reply, s.transport.user_id, [device], session.seeds)

    await send_text(person.client, s.dm, "vor dem Neustart")
    await s.recorder.next(person, after=0)
    await s.transport.stop()

    # While the bot is down, two messages arrive.
    await send_text(person.client, s.dm, "während 1")
    await send_text(person.client, s.dm, "während 2")

    # Key rotation at the same time: a new master key version becomes current.
    s.settings.crypto.master_keys[2] = SecretStr(new_key())
    recorder = Recorder()
    transport = MatrixTransport(s.settings, staff_rooms=[s.staff_room], sync_timeout_ms=5000)
    s.transport = transport  # the fixture stops this one
    await _start(transport, recorder)
    await sync_until([person.client], lambda: len(recorder.messages) >= 2, what="catch-up")
    assert [m.text for m in recorder.messages] == ["während 1", "während 2"]
    assert transport.device_id == device  # same device, same store, same identity

    # Nothing old comes again; new messages flow.
    await send_text(person.client, s.dm, "nach dem Neustart")
    await recorder.next(person, after=2)
    assert [m.text for m in recorder.messages] == ["während 1", "während 2", "nach dem Neustart"]
    reply = await query_as(synapse, person.user, transport.user_id)
    assert_cross_signed(reply, transport.user_id, [device], session.seeds)

    # The session and the store moved to key version 2: version 1 is no longer needed.
    await transport.stop()
    del s.settings.crypto.master_keys[1]
    loaded = load_session(session_path, _keys(s.settings))
    assert loaded is not None
    assert loaded[1] == 2
    transport = MatrixTransport(s.settings, staff_rooms=[s.staff_room], sync_timeout_ms=5000)
    s.transport = transport
    await _start(transport, Recorder())
    assert transport.device_id == device
    assert sorted(p.name for p in (s.settings.data_dir / "matrix").iterdir()) == [
        DEFAULT_STORE_NAME,
        SESSION_FILE,
    ]


async def test_a_reply_sent_again_after_a_restart_arrives_once(setup: Setup) -> None:
    """Outbox replies carry a stable key: the homeserver de-duplicates the retry."""
    s, person = setup, setup.person
    reply = OutboundMessage(Address(P.MATRIX, s.dm), "Nur einmal, bitte.", send_key="k1.0")
    first = await s.transport.send(reply)
    assert first is not None
    await person.expect(s.dm, "Nur einmal, bitte.")

    # A crash before the outbox row was deleted: the new process sends it again.
    await s.transport.stop()
    transport = MatrixTransport(s.settings, staff_rooms=[s.staff_room], sync_timeout_ms=5000)
    s.transport = transport  # the fixture stops this one
    await _start(transport, Recorder())
    again = await transport.send(reply)
    assert again is not None
    assert again.ref == first.ref  # the same event, not a second one
    other = await transport.send(
        OutboundMessage(Address(P.MATRIX, s.dm), "Nur einmal, bitte.", send_key="k1.1")
    )
    assert other is not None
    assert other.ref != first.ref
    await transport.send(OutboundMessage(Address(P.MATRIX, s.dm), "Ende."))
    await person.expect(s.dm, "Ende.")  # the timeline is ordered: a duplicate came before
    assert person.bodies(s.dm).count("Nur einmal, bitte.") == 2  # k1.0 once, k1.1 once
