"""Raw Bot API updates (JSON) -> :class:`~config.messages.InboundMessage`, defensively.

Works on the decoded JSON, not on python-telegram-bot objects: a malformed update
must not fail a whole ``getUpdates`` batch (PTB's ``Update.de_list`` would, and then
log the raw batch - names included - at CRITICAL). Only what the core needs is read:
the numeric user and chat ids, the text, the language code, the message and thread
ids. First name, last name, username and phone number are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.messages import Address, ChatKind, InboundMessage, Platform

#: The update types the bot asks Telegram for (``chat_member``: who joins a staff
#: group; Telegram sends it only to admins and only when asked for explicitly).
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "chat_member")
#: Chat member statuses that mean "in the group" (``restricted`` only with is_member).
_IN_GROUP = frozenset({"creator", "administrator", "member"})

#: Message fields that make it a message with an attachment, in priority order
#: (an animation also carries ``document``), mapped to the kind the core sees.
ATTACHMENTS = (
    ("photo", "photo"),
    ("voice", "voice"),
    ("audio", "audio"),
    ("video_note", "video"),
    ("animation", "video"),
    ("video", "video"),
    ("sticker", "sticker"),
    ("document", "file"),
    ("contact", "contact"),
    ("location", "location"),
    ("venue", "location"),
    ("poll", "other"),
    ("dice", "other"),
    ("game", "other"),
    ("story", "other"),
    ("paid_media", "other"),
    ("checklist", "other"),
    ("giveaway", "other"),
)


@dataclass(frozen=True, slots=True)
class MemberChange:
    """Someone came into a group (``chat_member``): only numeric ids, never names.

    Attributes:
        chat_id: the group.
        user_id: the account that joined (or was added).
        is_bot: whether that account is a bot.
    """

    chat_id: int
    user_id: int = field(repr=False)
    is_bot: bool = False


class Malformed(ValueError):
    """The update does not have the shape the Bot API documents."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One parsed update.

    Attributes:
        update_id: Telegram's update id (for the polling offset).
        message: what the core gets, or None when the update is ignored.
        callback_id: a callback query to answer (always answered, even if ignored).
        keyboard_at: (chat id, message id) of a pressed question whose keyboard is
            removed once the press was handled (private chats only).
        key: updates with the same key are handled one after the other (the chat).
        member: an account joined a group (``chat_member``); not for the core.
        migrated: (old id, new id) when Telegram moved a group to a supergroup (a
            ``migrate_to_chat_id`` service message); not for the core.
    """

    update_id: int
    message: InboundMessage | None
    callback_id: str | None = None
    keyboard_at: tuple[int, int] | None = None
    key: str = ""
    member: MemberChange | None = None
    migrated: tuple[int, int] | None = None


def update_id_of(raw: object) -> int | None:
    """The update id of a raw update, if it has a valid one."""
    if isinstance(raw, Mapping):
        value = raw.get("update_id")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def parse_update(raw: object) -> Incoming:
    """Turn one raw update into an :class:`Incoming`.

    Raises:
        Malformed: when the update (or the part the bot reads) is not valid.
    """
    update_id = update_id_of(raw)
    if update_id is None or not isinstance(raw, Mapping):
        raise Malformed("no valid update_id")
    if "message" in raw:
        return _message(update_id, _obj(raw, "message"))
    if "edited_message" in raw:  # crisis words added by an edit must be seen
        return _message(update_id, _obj(raw, "edited_message"), edited=True)
    if "callback_query" in raw:
        return _callback(update_id, _obj(raw, "callback_query"))
    if "chat_member" in raw:
        return _member(update_id, _obj(raw, "chat_member"))
    # channel posts, other member updates, ...: not for the core
    return Incoming(update_id, None)


def _obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise Malformed(f"{key} must be an object")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"{key} must be an integer")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{key} must be a string")
    return value


def _chat(message: Mapping[str, Any]) -> tuple[int, str]:
    chat = _obj(message, "chat")
    kind = _opt_str(chat, "type")
    if kind is None:
        raise Malformed("chat.type missing")
    return _int(chat, "id"), kind


def _sender(data: Mapping[str, Any]) -> tuple[int, str | None, bool]:
    """(user id, language code, is a bot) of ``data["from"]``."""
    user = _obj(data, "from")
    is_bot = user.get("is_bot", False)
    if not isinstance(is_bot, bool):
        raise Malformed("from.is_bot must be a boolean")
    language = user.get("language_code")
    return _int(user, "id"), language if isinstance(language, str) and language else None, is_bot


def _chat_kind(kind: str) -> ChatKind | None:
    if kind == "private":
        return ChatKind.PRIVATE
    if kind in ("group", "supergroup"):
        return ChatKind.GROUP
    return None  # channels


def _thread(message: Mapping[str, Any], kind: ChatKind) -> str | None:
    """A forum topic id (group topic messages only; reply threads are not topics)."""
    if kind is not ChatKind.GROUP or message.get("is_topic_message") is not True:
        return None
    return str(_int(message, "message_thread_id"))


def _message(update_id: int, message: Mapping[str, Any], *, edited: bool = False) -> Incoming:
    message_id = _int(message, "message_id")
    chat_id, chat_type = _chat(message)
    kind = _chat_kind(chat_type)
    if kind is None or "sender_chat" in message or "from" not in message:
        return Incoming(update_id, None, key=str(chat_id))  # channel / anonymous admin
    user_id, language, is_bot = _sender(message)
    if is_bot:
        return Incoming(update_id, None, key=str(chat_id))
    text = _opt_str(message, "text")
    caption = _opt_str(message, "caption")
    attachment = next((name for key, name in ATTACHMENTS if key in message), None)
    if text is None and attachment is None:
        moved = message.get("migrate_to_chat_id")
        if isinstance(moved, int) and not isinstance(moved, bool):
            return Incoming(update_id, None, key=str(chat_id), migrated=(chat_id, moved))
        return Incoming(update_id, None, key=str(chat_id))  # service message
    if text is None:
        # A caption is read only in private chats: it may hold crisis words the core
        # must see. Staff attachments get the core's "text only" answer.
        text = (caption or "") if kind is ChatKind.PRIVATE else ""
    msg = InboundMessage(
        platform=Platform.TELEGRAM,
        sender_id=str(user_id),
        address=Address(Platform.TELEGRAM, str(chat_id), _thread(message, kind)),
        text=text,
        locale=language,
        update_id=str(update_id),
        chat_kind=kind,
        attachment=None if edited else attachment,  # an edit relays nothing again
        message_ref=None if edited else str(message_id),
        edited=edited,
    )
    return Incoming(update_id, msg, key=str(chat_id))


def _callback(update_id: int, query: Mapping[str, Any]) -> Incoming:
    query_id = _opt_str(query, "id")
    if not query_id:
        raise Malformed("callback_query.id missing")
    user_id, language, _ = _sender(query)
    data = _opt_str(query, "data")
    if "message" not in query or not data:
        return Incoming(update_id, None, callback_id=query_id)  # inline message or game
    message = _obj(query, "message")
    message_id = _int(message, "message_id")
    chat_id, chat_type = _chat(message)
    kind = _chat_kind(chat_type)
    if kind is None:
        return Incoming(update_id, None, callback_id=query_id, key=str(chat_id))
    msg = InboundMessage(
        platform=Platform.TELEGRAM,
        sender_id=str(user_id),
        address=Address(Platform.TELEGRAM, str(chat_id), _thread(message, kind)),
        button=data,
        locale=language,
        update_id=str(update_id),
        chat_kind=kind,
    )
    keyboard = (chat_id, message_id) if kind is ChatKind.PRIVATE else None
    return Incoming(update_id, msg, callback_id=query_id, keyboard_at=keyboard, key=str(chat_id))


def _in_group(member: Mapping[str, Any]) -> bool:
    status = member.get("status")
    return status in _IN_GROUP or (status == "restricted" and member.get("is_member") is True)


def _member(update_id: int, update: Mapping[str, Any]) -> Incoming:
    """A ``chat_member`` update: a join (or an add) becomes a :class:`MemberChange`."""
    chat_id, _ = _chat(update)
    old, new = _obj(update, "old_chat_member"), _obj(update, "new_chat_member")
    if _in_group(old) or not _in_group(new):
        return Incoming(update_id, None, key=str(chat_id))  # a leave, or a change of rights
    user = _obj(new, "user")
    is_bot = user.get("is_bot", False)
    change = MemberChange(chat_id, _int(user, "id"), is_bot is True)
    return Incoming(update_id, None, key=str(chat_id), member=change)
