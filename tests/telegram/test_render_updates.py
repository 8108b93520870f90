"""Rendering and update parsing, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from bot.transports.telegram.render import (
    MAX_TEXT,
    chat_id,
    chunks,
    keyboard,
    message_ids,
    split_text,
    thread_id,
    utf16_len,
)
from bot.transports.telegram.updates import Malformed, parse_update
from config.messages import Button, ChatKind

USER = {"id": 4242, "is_bot": False, "first_name": "Sentinel-Name", "username": "sentinel_user",
        "last_name": "Sentinel-Last", "language_code": "en"}  # fmt: skip


def message(**extra: Any) -> dict[str, Any]:
    body = {"message_id": 7, "date": 1, "chat": {"id": 4242, "type": "private",
            "first_name": "Sentinel-Name"}, "from": USER, "text": "hi"}  # fmt: skip
    body.update(extra)
    return {"update_id": 100, "message": body}


def test_short_text_is_one_part() -> None:
    assert split_text("Hallo <b> & *x* _y_ 🙂") == ["Hallo <b> & *x* _y_ 🙂"]


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    para = "a" * 3000
    parts = split_text(f"{para}\n\n{para}\n\n{para}")
    assert parts == [para, para, para]
    lines = "\n".join(["b" * 100] * 60)  # 6059 chars, no paragraph
    parts = split_text(lines)
    assert len(parts) == 2
    assert all(utf16_len(p) <= MAX_TEXT for p in parts)
    assert all(not p.startswith("\n") and p.endswith("b") for p in parts)
    assert "\n".join(parts) == lines
    words = " ".join(["wort"] * 2000)
    parts = split_text(words)
    assert " ".join(parts) == words
    assert all(utf16_len(p) <= MAX_TEXT for p in parts)


def test_split_counts_utf16_and_never_cuts_a_character() -> None:
    emoji = "🙂" * 5000  # 2 UTF-16 units each, no break opportunity
    parts = split_text(emoji)
    assert "".join(parts) == emoji
    assert all(utf16_len(p) <= MAX_TEXT for p in parts)
    assert utf16_len(parts[0]) == MAX_TEXT
    rtl = "مرحبا بك " * 1000
    assert "".join(p + " " for p in split_text(rtl)).strip() == rtl.strip()


def test_split_drops_blank_parts() -> None:
    assert split_text("   ") == []
    assert split_text("x" * 4096 + "\n\n   ") == ["x" * 4096]


def test_keyboard_keeps_opaque_data_and_leaves_out_what_telegram_refuses() -> None:
    rows = ((Button("Ja", "consent:yes"), Button("", "x")), (Button("Zu lang", "z" * 65),))
    markup = keyboard(rows)
    assert markup is not None
    assert [[b.callback_data for b in row] for row in markup.inline_keyboard] == [["consent:yes"]]
    assert keyboard(()) is None
    assert keyboard(((Button("ä" * 3, "ü" * 32),),)) is not None  # 64 bytes is fine


def test_refs_ids_and_chunks() -> None:
    assert message_ids(["12,13", "7", "x", "13"]) == [7, 12, 13]
    assert [len(c) for c in chunks(list(range(250)))] == [100, 100, 50]
    assert chat_id("-1001") == -1001
    assert chat_id("@staff") == "@staff"
    assert thread_id("5") == 5
    assert thread_id(None) is None
    assert thread_id("x") is None


def test_private_message() -> None:
    incoming = parse_update(message(text="/start ref-abc"))
    msg = incoming.message
    assert msg is not None
    assert (msg.sender_id, msg.address.chat_id, msg.text) == ("4242", "4242", "/start ref-abc")
    assert (msg.locale, msg.update_id, msg.message_ref) == ("en", "100", "7")
    assert msg.chat_kind is ChatKind.PRIVATE
    assert msg.address.thread_id is None
    assert "Sentinel" not in repr(incoming)


def test_attachments_and_captions() -> None:
    photo = message(text=None, photo=[{"file_id": "x"}], caption="ich will mich umbringen")
    del photo["message"]["text"]
    msg = parse_update(photo).message
    assert msg is not None
    assert msg.attachment == "photo"
    assert msg.text == "ich will mich umbringen"
    voice = message(voice={"file_id": "v"})
    del voice["message"]["text"]
    assert parse_update(voice).message.attachment == "voice"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "change",
    [
        {"from": {**USER, "is_bot": True}},
        {"chat": {"id": -100, "type": "channel", "title": "c"}},
        {"sender_chat": {"id": -100, "type": "supergroup"}},
        {"new_chat_members": [USER], "text": None},
        {"pinned_message": {"message_id": 1}, "text": None},
    ],
)
def test_ignored_messages(change: dict[str, Any]) -> None:
    update = message(**change)
    update["message"] = {k: v for k, v in update["message"].items() if v is not None}
    incoming = parse_update(update)
    assert incoming.message is None
    assert incoming.update_id == 100


def test_edited_messages_are_marked_and_other_updates_ignored() -> None:
    body = message()["message"]
    # An edit reaches the core marked as one (crisis detection only; red-team finding 5).
    edited = parse_update({"update_id": 5, "edited_message": body}).message
    assert edited is not None
    assert edited.edited
    assert parse_update({"update_id": 6, "my_chat_member": {}}).message is None


def test_group_topic_message_and_reply_thread() -> None:
    group = {"id": -1001, "type": "supergroup", "title": "Team", "is_forum": True}
    incoming = parse_update(
        message(chat=group, message_thread_id=55, is_topic_message=True, text="/claim K-2345")
    )
    msg = incoming.message
    assert msg is not None
    assert msg.chat_kind is ChatKind.GROUP
    assert (msg.address.chat_id, msg.address.thread_id) == ("-1001", "55")
    reply = parse_update(message(chat=group, message_thread_id=9, text="hi")).message
    assert reply is not None
    assert reply.address.thread_id is None


def test_callback_query() -> None:
    query = {"id": "q1", "from": USER, "chat_instance": "1", "data": "scene:right",
             "message": message()["message"]}  # fmt: skip
    incoming = parse_update({"update_id": 9, "callback_query": query})
    assert incoming.callback_id == "q1"
    assert incoming.keyboard_at == (4242, 7)
    assert incoming.message is not None
    assert incoming.message.button == "scene:right"
    assert incoming.message.text == ""
    inline = {"id": "q2", "from": USER, "chat_instance": "1", "inline_message_id": "i"}
    ignored = parse_update({"update_id": 10, "callback_query": inline})
    assert ignored.message is None
    assert ignored.callback_id == "q2"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"message": {}},
        {"update_id": "1", "message": {}},
        {"update_id": True},
        {"update_id": 1, "message": "x"},
        {"update_id": 1, "message": {"message_id": 1, "date": 1}},
        {"update_id": 1, "message": {"message_id": "1", "date": 1,
                                     "chat": {"id": 1, "type": "private"}}},
        {"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": 1}}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"},
                                     "from": {"id": "x"}, "text": "a"}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"},
                                     "from": {"id": 1}, "text": 5}},
        {"update_id": 1, "callback_query": {"from": USER}},
        {"update_id": 1, "callback_query": {"id": "q", "from": USER, "data": 5,
                                            "message": message()["message"]}},
    ],
)  # fmt: skip
def test_malformed_updates_raise_malformed(raw: Any) -> None:
    with pytest.raises(Malformed):
        parse_update(raw)


def test_transport_from_settings_and_factory() -> None:
    from pydantic import SecretStr

    from bot.transports.factory import build_transports
    from bot.transports.telegram import TelegramTransport
    from config.settings import Settings, TelegramSettings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram=TelegramSettings(
            enabled=True,
            token=SecretStr("123456:secret-token-for-the-test"),
            base_url="https://bot-api.example.org/",
            mode="webhook",
            webhook_url="https://bot.example.org/tg",
            webhook_secret=SecretStr("a-webhook-secret-123"),
            read_timeout=7.0,
            poll_timeout=25,
        ),
    )
    [transport] = build_transports(settings)
    assert isinstance(transport, TelegramTransport)
    config = transport.config
    assert (config.base_url, config.mode, config.read_timeout) == (
        "https://bot-api.example.org/", "webhook", 7.0,
    )  # fmt: skip
    assert (config.poll_timeout, config.rate_limit, config.http_backend) == (25, True, "aiohttp")
    assert "secret" not in repr(config)
