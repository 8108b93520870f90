"""A fake Telegram Bot API server for driving python-telegram-bot for real in tests.

It speaks the HTTP protocol of ``https://api.telegram.org`` (``/bot<token>/<method>``
and ``/file/bot<token>/<path>``) on loopback, keeps chats, messages, topics, commands and
the update queue in memory, validates requests the way Telegram does where it matters to
this project (text length, HTML / MarkdownV2 entities, inline keyboards, 48-hour delete
window, forum topics) and answers errors in Telegram's words. Tests push updates with
:meth:`FakeBotApi.push_message` / :meth:`FakeBotApi.push_callback` and look at what the bot
did with :attr:`FakeBotApi.sent` / :meth:`FakeBotApi.wait_for_sent`.

Usage::

    api = FakeBotApi()
    await api.start()
    app = ptb_application_builder(api).build()
    ...
    await api.stop()

Deliberate differences from Telegram: webhooks may use plain ``http://`` on any port,
``sendPhoto`` & co. accept any non-empty string as a file id, and bots may delete any
message (admin rights are modelled only for ``banChatMember`` / ``unbanChatMember`` and
``chat_member`` updates: see :meth:`FakeBotApi.set_member`; in a group the bot is a
plain member until a test makes it an administrator).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from telegram.ext import ApplicationBuilder

JSON = dict[str, Any]

DEFAULT_TOKEN = "123456789:AAFakeTokenForAuswegTestsOnly_0123456"
MAX_TEXT = 4096
MAX_CAPTION = 1024
DELETE_WINDOW = 48 * 3600
CALLBACK_ANSWER_WINDOW = 15 * 60
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Update types Telegram sends when allowed_updates was never given (or given as []).
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message", "edited_message", "channel_post", "edited_channel_post",
        "business_connection", "business_message", "edited_business_message",
        "deleted_business_messages", "inline_query", "chosen_inline_result",
        "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media",
        "poll", "poll_answer", "my_chat_member", "chat_join_request", "chat_boost",
        "removed_chat_boost",
    }
)  # fmt: skip
ALL_UPDATE_TYPES = DEFAULT_UPDATE_TYPES | {"chat_member", "message_reaction",
                                           "message_reaction_count"}  # fmt: skip
_MESSAGE_UPDATES = frozenset(
    {"message", "edited_message", "channel_post", "edited_channel_post",
     "business_message", "edited_business_message"}
)  # fmt: skip

_JSON_FIELDS = frozenset(
    {"reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates",
     "message_ids", "link_preview_options", "reply_parameters", "media"}
)  # fmt: skip
_INT_FIELDS = frozenset(
    {"message_id", "message_thread_id", "offset", "limit", "user_id", "reply_to_message_id",
     "max_connections", "cache_time", "icon_color", "duration", "width", "height",
     "until_date"}
)  # fmt: skip
_FLOAT_FIELDS = frozenset({"timeout"})
_BOOL_FIELDS = frozenset(
    {"disable_notification", "protect_content", "drop_pending_updates", "show_alert",
     "allow_sending_without_reply", "disable_web_page_preview", "remove_caption",
     "has_spoiler", "disable_content_type_detection", "allow_paid_broadcast",
     "only_if_banned", "revoke_messages"}
)  # fmt: skip
_CHAT_ID_FIELDS = frozenset({"chat_id", "from_chat_id"})

_CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
     "upload_document", "choose_sticker", "find_location", "record_video_note",
     "upload_video_note"}
)  # fmt: skip
_INLINE_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip
_TOPIC_COLORS = frozenset({7322096, 16766590, 13338331, 9367192, 16749490, 16478047})
_SCOPES_WITH_CHAT = frozenset({"chat", "chat_administrators", "chat_member"})
_SCOPES = (
    frozenset({"default", "all_private_chats", "all_group_chats", "all_chat_administrators"})
    | _SCOPES_WITH_CHAT
)

METHODS = (
    "getMe", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo", "sendMessage",
    "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery", "deleteMessage",
    "deleteMessages", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "setMyCommands", "getMyCommands", "deleteMyCommands", "createForumTopic", "editForumTopic",
    "closeForumTopic", "reopenForumTopic", "deleteForumTopic", "sendChatAction", "getChat",
    "sendPhoto", "sendDocument", "sendVoice", "getFile", "leaveChat", "getChatMember",
    "banChatMember", "unbanChatMember",
)  # fmt: skip
"""Bot API methods the fake implements; any other answers 404 like an unknown method."""

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_INT_RE = re.compile(r"^-?\d+$")


class ApiError(Exception):
    """An error answer of the Bot API (raised inside method implementations)."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSON:
        """The JSON body Telegram answers with."""
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


class ApiCall(TypedDict):
    """One request the bot made, as recorded by the fake."""

    method: str
    params: JSON
    ok: bool
    result: Any
    error_code: int | None
    description: str | None
    time: float


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook (``status`` None: no connection)."""

    update_id: int
    url: str
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        """The webhook answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Telegram's documented flood limits, enforced only with ``enforce_limits=True``."""

    global_per_second: int = 30
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: int = 20


@dataclass(slots=True)
class _Topic:
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False


@dataclass(slots=True)
class _Chat:
    info: JSON
    messages: dict[int, JSON] = field(default_factory=dict)
    next_message_id: int = 1
    topics: dict[int, _Topic] = field(default_factory=dict)
    blocked: bool = False
    left: bool = False

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def is_forum(self) -> bool:
        return bool(self.info.get("is_forum"))

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass(slots=True)
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(slots=True)
class _Fault:
    method: str | None
    remaining: int
    error: ApiError


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    unique_id: str
    path: str
    data: bytes


class _Params:
    """Typed, validating access to the (already normalised) request parameters."""

    def __init__(self, values: JSON, uploads: dict[str, bytes] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def get_str(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise _bad(f"{name} is empty")
            return default
        if not isinstance(value, str):
            return json.dumps(value) if isinstance(value, dict | list) else str(value)
        return value

    def get_int(self, name: str, *, required: bool = False) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise _bad(f"{name} is empty")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f'field "{name}" must be a valid Number')
        return value

    def get_float(self, name: str, default: float = 0.0) -> float:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(f'field "{name}" must be a valid Number')
        return float(value)

    def get_bool(self, name: str) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return False
        if not isinstance(value, bool):
            raise _bad(f'field "{name}" must be of type Boolean')
        return value

    def get_json(self, name: str) -> Any:
        value = self.values.get(name)
        return None if value == "" else value


def _normalise(name: str, value: Any) -> Any:
    """Turn a form field (always a string) into the value Telegram would see."""
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON object") from None
    if name in _CHAT_ID_FIELDS or name in _INT_FIELDS:
        return int(value) if _INT_RE.match(value) else value
    if name in _FLOAT_FIELDS:
        try:
            return float(value)
        except ValueError:
            return value
    if name in _BOOL_FIELDS:
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
    return value


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


# --------------------------------------------------------------------------- formatting

_HTML_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*?)?)\s*/?>")
_HTML_ATTR_RE = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_HTML_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link",
    "code": "code", "pre": "pre", "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip


def _parse_html(text: str) -> tuple[str, list[JSON]]:
    """Strip Telegram's HTML subset, returning plain text and entities (UTF-16 offsets)."""
    out: list[str] = []
    out_len = 0
    entities: list[JSON] = []
    stack: list[tuple[str, int, dict[str, str]]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            match = _HTML_TAG_RE.match(text, i)
            where = f"at byte offset {_byte_offset(text, i)}"
            if match is None:
                raise _bad(f"can't parse entities: Unexpected start tag {where}")
            closing, name = match.group(1) == "/", match.group(2).lower()
            attrs = {
                m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or ""
                for m in _HTML_ATTR_RE.finditer(match.group(3))
            }
            if not closing:
                if name not in _HTML_ENTITY_TYPES or (
                    name == "span" and attrs.get("class") != "tg-spoiler"
                ):
                    raise _bad(f'can\'t parse entities: Unsupported start tag "{name}" {where}')
                stack.append((name, out_len, attrs))
            else:
                if not stack:
                    raise _bad(f"can't parse entities: Unexpected end tag {where}")
                if stack[-1][0] != name:
                    raise _bad(
                        f"can't parse entities: Unmatched end tag {where}, "
                        f'expected "</{stack[-1][0]}>", found "</{name}>"'
                    )
                tag, start, tag_attrs = stack.pop()
                if out_len > start:
                    entity: JSON = {
                        "type": _HTML_ENTITY_TYPES[tag], "offset": start, "length": out_len - start
                    }  # fmt: skip
                    if tag == "a":
                        if not tag_attrs.get("href"):
                            entity = {}
                        else:
                            entity["url"] = tag_attrs["href"]
                    elif tag == "blockquote" and "expandable" in tag_attrs:
                        entity["type"] = "expandable_blockquote"
                    elif tag == "tg-emoji":
                        entity["custom_emoji_id"] = tag_attrs.get("emoji-id", "")
                    if entity:
                        entities.append(entity)
            i = match.end()
            continue
        piece = char
        if char == "&" and (ent := _HTML_ENTITY_RE.match(text, i)) is not None:
            code = ent.group(1)
            if code.startswith("#x"):
                piece = chr(int(code[2:], 16))
            elif code.startswith("#"):
                piece = chr(int(code[1:]))
            else:
                piece = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}[code]
            i = ent.end()
        else:
            i += 1
        out.append(piece)
        out_len += _utf16_len(piece)
    if stack:
        raise _bad(
            "can't parse entities: Can't find end tag corresponding to start tag "
            f'"{stack[-1][0]}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


_MD2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD2_NAMES = {
    "*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler",
    "`": "Code", "```": "Pre", "[": "TextUrl",
}  # fmt: skip
_MD2_TYPES = {
    "*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler",
    "`": "code", "```": "pre", "[": "text_link",
}  # fmt: skip


def _parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Strip MarkdownV2 markup, enforcing Telegram's escaping rules."""
    out: list[str] = []
    out_len = 0
    entities: list[JSON] = []
    stack: list[tuple[str, int, int]] = []  # marker, utf16 start, source index

    def emit(piece: str) -> None:
        nonlocal out_len
        out.append(piece)
        out_len += _utf16_len(piece)

    def toggle(marker: str, index: int) -> None:
        if stack and stack[-1][0] == marker:
            _, start, _ = stack.pop()
            if out_len > start:
                entities.append(
                    {"type": _MD2_TYPES[marker], "offset": start, "length": out_len - start}
                )
        elif any(entry[0] == marker for entry in stack):
            marker_open, _, source = stack[-1]
            raise _bad(
                f"can't parse entities: Can't find end of {_MD2_NAMES[marker_open]} entity "
                f"at byte offset {_byte_offset(text, source)}"
            )
        else:
            stack.append((marker, out_len, index))

    i = 0
    while i < len(text):
        char = text[i]
        in_code = bool(stack) and stack[-1][0] in ("`", "```")
        if char == "\\":
            if i + 1 >= len(text):
                raise _bad(
                    "can't parse entities: Character '\\' is reserved and must be escaped "
                    "with the preceding '\\'"
                )
            emit(text[i + 1])
            i += 2
        elif in_code:
            marker = stack[-1][0]
            if text.startswith(marker, i):
                toggle(marker, i)
                i += len(marker)
            else:
                emit(char)
                i += 1
        elif text.startswith("```", i):
            toggle("```", i)
            i += 3
            newline = text.find("\n", i)
            if newline != -1 and re.fullmatch(r"[A-Za-z0-9+#_-]*", text[i:newline]):
                i = newline + 1
        elif char in "*~`":
            toggle(char, i)
            i += 1
        elif text.startswith("||", i):
            toggle("||", i)
            i += 2
        elif char == "_":
            double = text.startswith("__", i) and not (stack and stack[-1][0] == "_")
            toggle("__" if double else "_", i)
            i += 2 if double else 1
        elif char == "[":
            stack.append(("[", out_len, i))
            i += 1
        elif char == "]" and stack and stack[-1][0] == "[":
            _, start, source = stack.pop()
            url_match = re.compile(r"\(((?:\\.|[^)\\])*)\)").match(text, i + 1)
            if url_match is None:
                raise _bad(
                    "can't parse entities: Can't find end of a url at byte offset "
                    f"{_byte_offset(text, source)}"
                )
            url = re.sub(r"\\(.)", r"\1", url_match.group(1))
            if out_len > start:
                entities.append(
                    {"type": "text_link", "offset": start, "length": out_len - start, "url": url}
                )
            i = url_match.end()
        elif char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # block quote marker at the start of a line
        elif char in _MD2_RESERVED:
            raise _bad(
                f"can't parse entities: Character '{char}' is reserved and must be escaped "
                "with the preceding '\\'"
            )
        else:
            emit(char)
            i += 1
    if stack:
        marker, _, source = stack[-1]
        raise _bad(
            f"can't parse entities: Can't find end of {_MD2_NAMES[marker]} entity at byte "
            f"offset {_byte_offset(text, source)}"
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _format(text: str, parse_mode: str, entities: Any) -> tuple[str, list[JSON]]:
    """Apply ``parse_mode`` (or explicit ``entities``) to a text or caption."""
    mode = parse_mode.lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return text, []  # legacy Markdown is lenient; not validated here
    if mode:
        raise _bad("unsupported parse_mode")
    if entities is None:
        return text, []
    if not isinstance(entities, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) for e in entities
    ):
        raise _bad("can't parse entities JSON object")
    return text, entities


def _validate_markup(markup: Any) -> JSON | None:
    """Validate ``reply_markup`` like Telegram; return it if it belongs in the Message."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if "keyboard" in markup and not isinstance(markup["keyboard"], list):
            raise _bad('field "keyboard" must be an Array')
        if not {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
            raise _bad("can't parse reply keyboard markup JSON object")
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad('field "inline_keyboard" must be an Array of Arrays')
    if sum(len(row) for row in rows) > 100:
        raise _bad("reply markup is too long")
    for button in itertools.chain.from_iterable(rows):
        if not isinstance(button, dict):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        if not isinstance(button.get("text"), str) or not button["text"].strip():
            raise _bad("BUTTON_TEXT_INVALID")
        actions = [name for name in _INLINE_ACTIONS if name in button]
        if not actions:
            raise _bad("text buttons are unallowed in the inline keyboard")
        if len(actions) > 1:
            raise _bad("can't parse inline keyboard button: more than one action specified")
        data = button.get("callback_data")
        if "callback_data" in button and (
            not isinstance(data, str) or not 1 <= len(data.encode()) <= 64
        ):
            raise _bad("BUTTON_DATA_INVALID")
        url = button.get("url")
        if "url" in button and (
            not isinstance(url, str) or not re.match(r"^(https?|tg)://\S+$", url)
        ):
            raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
    return {"inline_keyboard": rows}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers the test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ptb_application_builder(api: FakeBotApi) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    """An ``ApplicationBuilder`` pointed at ``api`` (token, base URLs set)."""
    from telegram.ext import ApplicationBuilder

    return (
        ApplicationBuilder()
        .token(api.token)
        .base_url(f"{api.base_url}/bot")
        .base_file_url(f"{api.base_url}/file/bot")
    )


# --------------------------------------------------------------------------- the server


class FakeBotApi:
    """An in-memory Telegram Bot API on ``127.0.0.1`` (see the module docstring).

    Args:
        token: the only token accepted; others get 401 Unauthorized.
        clock: wall clock in Unix seconds (default :func:`time.time`); message dates, the
            48-hour delete window and callback-query expiry use it plus
            :meth:`advance_clock` offsets.
        enforce_limits: answer 429 when the bot exceeds ``limits`` (off by default).
        limits: the flood limits used with ``enforce_limits``.
        bot_username: username reported by ``getMe``.
        webhook_connect_timeout: how long to retry a refused webhook connection.
        webhook_retry_delay: pause before redelivering after a failed webhook POST.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        clock: Callable[[], float] | None = None,
        enforce_limits: bool = False,
        limits: RateLimits | None = None,
        bot_username: str = "ausweg_test_bot",
        webhook_connect_timeout: float = 5.0,
        webhook_retry_delay: float = 0.2,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if _TOKEN_RE.match(token) else 1
        self.bot_user: JSON = {
            "id": self.bot_id, "is_bot": True, "first_name": "Ausweg Test Bot",
            "username": bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": False, "has_main_web_app": False,
        }  # fmt: skip
        self.enforce_limits = enforce_limits
        self.limits = limits or RateLimits()
        self.webhook_connect_timeout = webhook_connect_timeout
        self.webhook_retry_delay = webhook_retry_delay
        self.sent: list[ApiCall] = []
        """Every call except ``getUpdates``, in order (failed ones included)."""
        self.requests: list[ApiCall] = []
        """Every call, ``getUpdates`` included."""
        self.deliveries: list[WebhookDelivery] = []
        self._clock = clock or time.time
        self._clock_offset = 0.0
        self._chats: dict[int, _Chat] = {}
        self._pending: deque[JSON] = deque()
        self._next_update_id = 100_000
        self._allowed_updates = DEFAULT_UPDATE_TYPES
        self._changed = asyncio.Event()
        self._sent_changed = asyncio.Condition()
        self._poll_generation = 0
        self._stopping = False
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._faults: list[_Fault] = []
        self._callbacks: dict[str, JSON] = {}
        self._callback_ids = itertools.count(1)
        self._commands: dict[tuple[tuple[str, int | None, int | None], str], list[JSON]] = {}
        self._files: dict[str, _StoredFile] = {}
        #: chat -> user -> ChatMember dict (no entry: "left"; the bot: "member").
        self._members: dict[int, dict[int, JSON]] = {}
        self._file_ids = itertools.count(1)
        self._global_sends: deque[float] = deque()
        self._chat_sends: dict[int, deque[float]] = {}
        self._private_buckets: dict[int, tuple[float, float]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = 0
        self._methods: dict[str, tuple[str, Callable[[_Params], Awaitable[Any]]]] = {
            name.lower(): (name, getattr(self, f"_m_{name}")) for name in METHODS
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=2.0, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._stopping = False

    async def stop(self) -> None:
        """Wake pending long polls, stop webhook delivery, close the server and client."""
        self._stopping = True
        self._notify_updates()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            await asyncio.gather(self._webhook_task, return_exceptions=True)
            self._webhook_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:8123`` (append ``/bot`` / ``/file/bot``)."""
        if not self._port:
            raise RuntimeError("FakeBotApi is not started")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """The server clock in Unix seconds."""
        return self._clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the server clock forward (e.g. past the 48-hour delete window)."""
        self._clock_offset += seconds

    # ------------------------------------------------------------------ chats

    def register_chat(
        self,
        chat_id: int,
        chat_type: str = "private",
        *,
        title: str | None = None,
        first_name: str = "Test",
        username: str | None = None,
        is_forum: bool = False,
    ) -> JSON:
        """Make a chat known (sending to unknown chats fails); returns its Chat dict."""
        if chat_type == "private":
            info: JSON = {"id": chat_id, "type": "private", "first_name": first_name}
        else:
            info = {"id": chat_id, "type": chat_type, "title": title or "Test group"}
            if is_forum:
                info["is_forum"] = True
        if username:
            info["username"] = username
        chat = self._chats.get(chat_id)
        if chat is None:
            # In a forum, 1 is the General topic: created topics get later ids.
            self._chats[chat_id] = _Chat(info=info, next_message_id=2 if is_forum else 1)
        else:
            chat.info = info
            chat.left = False  # registering again = the bot was added again
        return dict(info)

    def register_forum(self, chat_id: int, title: str = "Ausweg staff") -> JSON:
        """Register a supergroup with topics enabled (needed for the forum-topic methods)."""
        return self.register_chat(chat_id, "supergroup", title=title, is_forum=True)

    def has_left(self, chat_id: int) -> bool:
        """Whether the bot left the group (``leaveChat``) and was not added again."""
        chat = self._chats.get(chat_id)
        return chat is not None and chat.left

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """Make sends to the private chat with ``user_id`` fail with 403 (user blocked)."""
        self._chat(user_id).blocked = blocked

    def set_member(
        self, chat_id: int, user_id: int, status: str = "member", **rights: bool
    ) -> JSON:
        """Put an account into a group with ``status`` (``administrator`` takes ``rights``
        such as ``can_restrict_members=True``); returns the ChatMember dict."""
        member = self._member_dict(user_id, status, rights)
        self._members.setdefault(chat_id, {})[user_id] = member
        return copy.deepcopy(member)

    def member_status(self, chat_id: int, user_id: int) -> str:
        """An account's status in a group (``left`` when never seen)."""
        return str(self._get_member(chat_id, user_id)["status"])

    def _get_member(self, chat_id: int, user_id: int) -> JSON:
        found = self._members.get(chat_id, {}).get(user_id)
        if found is None:
            status = "member" if user_id == self.bot_id and chat_id < 0 else "left"
            found = self._member_dict(user_id, status, {})
        return found

    def _member_dict(self, user_id: int, status: str, rights: Mapping[str, bool]) -> JSON:
        user = (
            dict(self.bot_user)
            if user_id == self.bot_id
            else {"id": user_id, "is_bot": False, "first_name": "Test"}
        )
        member: JSON = {"user": user, "status": status}
        if status == "administrator":
            member.update(dict.fromkeys(_ADMIN_RIGHTS, False))
            member.update({"can_be_edited": False, "is_anonymous": False})
            member.update(rights)
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _can_restrict(self, chat_id: int) -> bool:
        bot = self._get_member(chat_id, self.bot_id)
        return bot["status"] == "creator" or (
            bot["status"] == "administrator" and bool(bot.get("can_restrict_members"))
        )

    def messages_in(self, chat_id: int) -> list[JSON]:
        """The messages currently in a chat (user's and bot's, deleted ones gone), in order."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [copy.deepcopy(chat.messages[k]) for k in sorted(chat.messages)]

    def topics_in(self, chat_id: int) -> dict[int, JSON]:
        """Forum topics of a chat: ``message_thread_id -> {name, icon_color, closed}``."""
        chat = self._chat(chat_id)
        return {
            thread: {"name": t.name, "icon_color": t.icon_color, "closed": t.closed}
            for thread, t in chat.topics.items()
        }

    def add_file(self, data: bytes, *, kind: str = "documents", name: str = "file") -> str:
        """Store a file the bot can ``getFile`` and download; returns its ``file_id``."""
        return self._store_file(data, kind, name).file_id

    # ------------------------------------------------------------------ pushing updates

    def push_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        chat_type: str = "private",
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "de",
        message_thread_id: int | None = None,
        is_topic_message: bool = False,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """Queue a text message from a user; a leading ``/command`` gets its entity.

        Returns:
            The update dict as the bot will receive it.
        """
        chat = self._chats.get(chat_id)
        if chat is None:
            self.register_chat(chat_id, chat_type, first_name=first_name, username=username)
            chat = self._chats[chat_id]
        sender: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            sender["username"] = username
        if language_code:
            sender["language_code"] = language_code
        message: JSON = {
            "message_id": chat.take_message_id(),
            "from": sender,
            "chat": dict(chat.info),
            "date": int(self.now()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            if is_topic_message:
                message["is_topic_message"] = True
        if reply_to_message_id is not None:
            replied = chat.messages.get(reply_to_message_id)
            if replied is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat_id}")
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        chat.messages[message["message_id"]] = copy.deepcopy(message)
        return self._enqueue({"message": message})

    def push_photo(
        self,
        chat_id: int,
        user_id: int,
        *,
        caption: str | None = None,
        message_thread_id: int | None = None,
    ) -> JSON:
        """Queue a photo message (kept like a text message, so the bot can copy it)."""
        update = self.push_message(
            chat_id,
            user_id,
            "",
            message_thread_id=message_thread_id,
            is_topic_message=message_thread_id is not None,
        )
        message = update["message"]
        del message["text"]
        message["photo"] = [
            {
                "file_id": self.add_file(b"\x89PNG", kind="photos", name="p.png"),
                "file_unique_id": f"u{message['message_id']}",
                "width": 1,
                "height": 1,
            }
        ]
        if caption:
            message["caption"] = caption
        self._chats[chat_id].messages[message["message_id"]] = copy.deepcopy(message)
        return update

    def push_callback(
        self,
        chat_id: int,
        user_id: int,
        data: str,
        message_id: int,
        *,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "de",
    ) -> JSON:
        """Queue a button press on the bot's ``message_id`` in ``chat_id``.

        Returns:
            The update dict; its ``callback_query.id`` is what the bot must answer.
        """
        chat = self._chat(chat_id)
        message = chat.messages.get(message_id)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        sender: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            sender["username"] = username
        if language_code:
            sender["language_code"] = language_code
        query_id = f"{self.bot_id}{next(self._callback_ids):010d}"
        query: JSON = {
            "id": query_id,
            "from": sender,
            "message": copy.deepcopy(message),
            "chat_instance": f"-{abs(chat_id) * 7919 + 17}",
            "data": data,
        }
        self._callbacks[query_id] = {"date": self.now(), "answered": None}
        return self._enqueue({"callback_query": query})

    def push_chat_member(
        self,
        chat_id: int,
        user_id: int,
        status: str = "member",
        *,
        old_status: str = "left",
        is_bot: bool = False,
        first_name: str = "Test",
        actor: int | None = None,
    ) -> JSON | None:
        """An account joins (or is added to) a group: its status changes and, as on
        Telegram, a ``chat_member`` update is queued only when the bot is an admin there.

        Returns:
            The update, or None when Telegram would not tell the bot.
        """
        chat = self._chat(chat_id)
        self.set_member(chat_id, user_id, status)
        user: JSON = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        self._members[chat_id][user_id]["user"] = dict(user)
        bot = self._get_member(chat_id, self.bot_id)
        if bot["status"] not in ("administrator", "creator"):
            return None
        by = {"id": actor, "is_bot": False, "first_name": "Test"} if actor else dict(user)
        return self._enqueue(
            {
                "chat_member": {
                    "chat": dict(chat.info),
                    "from": by,
                    "date": int(self.now()),
                    "old_chat_member": {"user": dict(user), "status": old_status},
                    "new_chat_member": {"user": dict(user), "status": status},
                }
            }
        )

    def push_raw(self, update: JSON, *, validate: bool = True) -> JSON:
        """Queue an arbitrary update.

        The fake assigns ``update_id`` unless the update brings a greater one. With
        ``validate`` the update must have the minimal shape python-telegram-bot needs
        (ValueError otherwise); ``validate=False`` injects it as it is, which can make a
        polling PTB fetch the same batch forever.
        """
        if not isinstance(update, dict):
            raise TypeError("an update is a dict")
        if validate:
            _check_update(update)
        given = update.get("update_id")
        if isinstance(given, int) and not isinstance(given, bool) and given > self._next_update_id:
            self._next_update_id = given - 1
        elif given is not None and validate:
            raise ValueError("update_id must be greater than all earlier ones")
        return self._enqueue({k: v for k, v in update.items() if k != "update_id"})

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by the bot."""
        return list(self._pending)

    def _enqueue(self, body: JSON) -> JSON:
        self._next_update_id += 1
        update = {"update_id": self._next_update_id, **body}
        self._pending.append(update)
        self._notify_updates()
        return update

    def _notify_updates(self) -> None:
        """Wake everything waiting for queue changes (long polls, the webhook worker)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_changed(self, at_most: float | None) -> None:
        event = self._changed
        try:
            async with asyncio.timeout(at_most):
                await event.wait()
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ inspection

    def calls(self, method: str) -> list[ApiCall]:
        """All recorded calls of ``method`` (case-insensitive), including failed ones."""
        wanted = method.lower()
        return [call for call in self.requests if call["method"].lower() == wanted]

    async def wait_for_sent(
        self,
        predicate: str | Callable[[ApiCall], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - test-side convenience
        *,
        since: int = 0,
    ) -> ApiCall:
        """Wait until a recorded call (index >= ``since`` in :attr:`sent`) matches.

        Args:
            predicate: a method name, or a function of the recorded call.
            timeout: seconds before ``TimeoutError``.
            since: ignore calls recorded before this index (use ``len(api.sent)``).
        """
        return (await self.wait_for_all(predicate, 1, timeout, since=since))[0]

    async def wait_for_all(
        self,
        predicate: str | Callable[[ApiCall], bool],
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - test-side convenience
        *,
        since: int = 0,
    ) -> list[ApiCall]:
        """Wait until ``count`` recorded calls match; returns the first ``count`` of them."""
        if isinstance(predicate, str):
            name = predicate.lower()

            def by_name(call: ApiCall) -> bool:
                return call["method"].lower() == name

            matches: Callable[[ApiCall], bool] = by_name
        else:
            matches = predicate

        def found() -> list[ApiCall]:
            return [c for c in itertools.islice(self.sent, since, None) if matches(c)]

        try:
            async with asyncio.timeout(timeout), self._sent_changed:
                await self._sent_changed.wait_for(lambda: len(found()) >= count)
        except TimeoutError:
            recent = [c["method"] for c in self.sent[-10:]]
            raise TimeoutError(
                f"{len(found())}/{count} matching calls after {timeout}s; last calls: {recent}"
            ) from None
        return found()[:count]

    async def wait_for_delivery(
        self,
        update_id: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - test-side convenience
        *,
        ok: bool = True,
    ) -> WebhookDelivery:
        """Wait for a webhook attempt for ``update_id`` that succeeded (or, ``ok=False``, not)."""

        def found() -> WebhookDelivery | None:
            return next(
                (d for d in self.deliveries if d.update_id == update_id and d.ok == ok), None
            )

        async with asyncio.timeout(timeout), self._sent_changed:
            await self._sent_changed.wait_for(lambda: found() is not None)
        delivery = found()
        assert delivery is not None
        return delivery

    async def wait_for_request(
        self,
        predicate: Callable[[ApiCall], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - test-side convenience
        *,
        since: int = 0,
    ) -> ApiCall:
        """Like :meth:`wait_for_sent`, over :attr:`requests` (``getUpdates`` included)."""

        def found() -> ApiCall | None:
            return next(
                (c for c in itertools.islice(self.requests, since, None) if predicate(c)), None
            )

        try:
            async with asyncio.timeout(timeout), self._sent_changed:
                await self._sent_changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            recent = [c["method"] for c in self.requests[-10:]]
            raise TimeoutError(f"no matching request after {timeout}s; last: {recent}") from None
        call = found()
        assert call is not None
        return call

    async def wait_until_confirmed(
        self,
        update_id: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - test-side convenience
    ) -> None:
        """Wait until ``update_id`` is no longer pending (confirmed by a greater offset)."""

        def confirmed() -> bool:
            return all(u["update_id"] != update_id for u in self._pending)

        try:
            async with asyncio.timeout(timeout), self._sent_changed:
                await self._sent_changed.wait_for(confirmed)
        except TimeoutError:
            raise TimeoutError(f"update {update_id} not confirmed after {timeout}s") from None

    def reset_records(self) -> None:
        """Forget recorded calls and deliveries (chats and updates stay)."""
        self.sent.clear()
        self.requests.clear()
        self.deliveries.clear()

    # ------------------------------------------------------------------ failures

    def fail_with_429(
        self, times: int = 1, retry_after: int = 1, *, method: str | None = None
    ) -> None:
        """Answer the next ``times`` sending calls (or calls of ``method``) with 429."""
        error = ApiError(
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )
        self._faults.append(_Fault(method.lower() if method else None, times, error))

    def clear_faults(self) -> None:
        """Forget failures set up with :meth:`fail_with_429` / :meth:`fail_next`."""
        self._faults.clear()

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        times: int = 1,
        parameters: JSON | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an arbitrary error
        (``parameters``: e.g. ``{"migrate_to_chat_id": ...}``)."""
        error = ApiError(error_code, description, parameters)
        self._faults.append(_Fault(method.lower(), times, error))

    # ------------------------------------------------------------------ commands

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """Commands stored for exactly this scope and language (like ``getMyCommands``)."""
        key = self._scope_key(scope or {"type": "default"})
        return copy.deepcopy(self._commands.get((key, language_code), []))

    def effective_commands(
        self,
        chat_id: int,
        *,
        user_id: int | None = None,
        language_code: str = "",
        is_admin: bool = False,
    ) -> list[JSON]:
        """The command menu a user sees, by Telegram's scope and language fallback rules."""
        chat = self._chat(chat_id)
        scopes: list[tuple[str, int | None, int | None]]
        if chat.info["type"] == "private":
            scopes = [("chat", chat_id, None), ("all_private_chats", None, None)]
        else:
            scopes = [("chat_member", chat_id, user_id)] if user_id is not None else []
            if is_admin:
                scopes.append(("chat_administrators", chat_id, None))
            scopes.append(("chat", chat_id, None))
            if is_admin:
                scopes.append(("all_chat_administrators", None, None))
            scopes.append(("all_group_chats", None, None))
        scopes.append(("default", None, None))
        for scope in scopes:
            for lang in (language_code, ""):
                if (scope, lang) in self._commands:
                    return copy.deepcopy(self._commands[(scope, lang)])
        return []

    def _scope_key(self, scope: Any) -> tuple[str, int | None, int | None]:
        if not isinstance(scope, dict) or scope.get("type") not in _SCOPES:
            raise _bad("can't parse BotCommandScope JSON object")
        kind = scope["type"]
        chat_id = user_id = None
        if kind in _SCOPES_WITH_CHAT:
            chat_id = self._chat_from(_normalise("chat_id", scope.get("chat_id"))).id
        if kind == "chat_member":
            user_id = _normalise("user_id", scope.get("user_id"))
            if not isinstance(user_id, int):
                raise _bad("user not found")
        return kind, chat_id, user_id

    # ------------------------------------------------------------------ HTTP handling

    async def _read_params(self, request: web.Request) -> _Params:
        """Query string plus JSON, form-encoded or multipart body, normalised."""
        raw: dict[str, Any] = dict(request.query)
        uploads: dict[str, bytes] = {}
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad("JSON object expected")
            raw.update(body)
        elif request.can_read_body:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    raw[name] = {"upload": value.filename or name, "size": len(data)}
                    uploads[name] = data
                else:
                    raw[name] = value
        return _Params({name: _normalise(name, value) for name, value in raw.items()}, uploads)

    async def _handle_api(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if token != self.token:
            code = 401 if _TOKEN_RE.match(token) else 404
            refusal = ApiError(code, "Unauthorized" if code == 401 else "Not Found")
            return web.json_response(refusal.payload(), status=code)
        if method.lower() not in self._methods:
            return web.json_response(ApiError(404, "Not Found").payload(), status=404)
        name, implementation = self._methods[method.lower()]
        error: ApiError | None = None
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            params, error = _Params({}), exc
        result: Any = None
        if error is None:
            try:
                self._check_faults(name, params)
                result = await implementation(params)
            except ApiError as exc:
                error = exc
        await self._record(name, params.values, result, error)
        if error is not None:
            return web.json_response(error.payload(), status=error.code)
        return web.json_response({"ok": True, "result": result})

    async def _record(self, name: str, values: JSON, result: Any, error: ApiError | None) -> None:
        call = ApiCall(
            method=name,
            params=values,
            ok=error is None,
            # getUpdates batches are recorded as update ids: fuzz runs push 100k updates.
            result=[u["update_id"] for u in result]
            if name == "getUpdates" and isinstance(result, list)
            else copy.deepcopy(result),
            error_code=error.code if error else None,
            description=error.description if error else None,
            time=self.now(),
        )
        self.requests.append(call)
        if name != "getUpdates":
            self.sent.append(call)
        async with self._sent_changed:
            self._sent_changed.notify_all()

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").payload(), status=401)
        path = request.match_info["path"]
        for stored in self._files.values():
            if stored.path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response(ApiError(404, "Not Found").payload(), status=404)

    def _check_faults(self, name: str, params: _Params) -> None:
        lowered = name.lower()
        sending = lowered.startswith(("send", "copy", "forward", "edit"))
        for fault in self._faults:
            if fault.remaining > 0 and (
                fault.method == lowered or (fault.method is None and sending)
            ):
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
                raise fault.error
        if self.enforce_limits and sending and name != "sendChatAction":
            chat_id = params.values.get("chat_id")
            self._check_limits(chat_id if isinstance(chat_id, int) else None)

    def _check_limits(self, chat_id: int | None) -> None:
        now = time.monotonic()
        limits = self.limits
        while self._global_sends and now - self._global_sends[0] >= 1.0:
            self._global_sends.popleft()
        if len(self._global_sends) >= limits.global_per_second:
            raise _too_many(self._global_sends[0] + 1.0 - now)
        if chat_id is not None and chat_id < 0:
            window = self._chat_sends.setdefault(chat_id, deque())
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= limits.group_per_minute:
                raise _too_many(window[0] + 60.0 - now)
            window.append(now)
        elif chat_id is not None:
            tokens, last = self._private_buckets.get(chat_id, (float(limits.private_burst), now))
            tokens = min(limits.private_burst, tokens + (now - last) * limits.private_per_second)
            if tokens < 1.0:
                raise _too_many((1.0 - tokens) / limits.private_per_second)
            self._private_buckets[chat_id] = (tokens - 1.0, now)
        self._global_sends.append(now)

    # ------------------------------------------------------------------ helpers

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"unknown chat {chat_id}; push a message or register it first")
        return chat

    def _chat_from(self, value: Any) -> _Chat:
        if isinstance(value, str) and value.startswith("@"):
            for chat in self._chats.values():
                if chat.info.get("username", "").lower() == value[1:].lower():
                    return chat
        elif isinstance(value, int) and value in self._chats:
            return self._chats[value]
        raise _bad("chat not found")

    def _target_chat(self, params: _Params, name: str = "chat_id") -> _Chat:
        if not params.has(name):
            raise _bad(f"{name} is empty")
        chat = self._chat_from(params.values[name])
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat.left:
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat.info['type']} chat")
        return chat

    def _message(self, chat: _Chat, message_id: int | None, error: str) -> JSON:
        message = chat.messages.get(message_id) if message_id is not None else None
        if message is None:
            raise _bad(error)
        return message

    def _thread(self, chat: _Chat, params: _Params) -> int | None:
        thread = params.get_int("message_thread_id")
        if thread is None:
            return None
        if chat.info["type"] == "private":
            return thread
        topic = chat.topics.get(thread)
        if not chat.is_forum or (topic is None and thread != 1):
            raise _bad("message thread not found")
        if topic is not None and topic.closed:
            raise _bad("TOPIC_CLOSED")
        return thread

    def _new_message(self, chat: _Chat, params: _Params, content: JSON) -> JSON:
        """Create and store a message the bot sends (threads, replies, markup, flags)."""
        thread = self._thread(chat, params)
        markup = _validate_markup(params.get_json("reply_markup"))
        reply_to = params.get_int("reply_to_message_id")
        allow_missing = params.get_bool("allow_sending_without_reply")
        reply_parameters = params.get_json("reply_parameters")
        if isinstance(reply_parameters, dict):
            reply_to = _normalise("message_id", reply_parameters.get("message_id"))
            allow_missing = bool(reply_parameters.get("allow_sending_without_reply"))
        replied = chat.messages.get(reply_to) if isinstance(reply_to, int) else None
        if reply_to is not None and replied is None and not allow_missing:
            raise _bad("message to be replied not found")
        message: JSON = {
            "message_id": chat.take_message_id(),
            "from": dict(self.bot_user),
            "chat": dict(chat.info),
            "date": int(self.now()),
            **content,
        }
        if thread is not None and chat.info["type"] != "private":
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        if replied is not None:
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        if params.get_bool("protect_content"):
            message["has_protected_content"] = True
        if markup is not None:
            message["reply_markup"] = markup
        chat.messages[message["message_id"]] = message
        return message

    def _text_content(self, params: _Params) -> JSON:
        text = params.get_str("text")
        if not text.strip():
            raise _bad("message text is empty")
        plain, entities = _format(text, params.get_str("parse_mode"), params.get_json("entities"))
        if not plain.strip():
            raise _bad("message text is empty")
        if _utf16_len(plain) > MAX_TEXT:
            raise _bad("message is too long")
        content: JSON = {"text": plain}
        if entities:
            content["entities"] = entities
        return content

    def _caption_content(self, params: _Params) -> JSON:
        caption = params.get_str("caption")
        if not caption:
            return {}
        plain, entities = _format(
            caption, params.get_str("parse_mode"), params.get_json("caption_entities")
        )
        if _utf16_len(plain) > MAX_CAPTION:
            raise _bad("message caption is too long")
        content: JSON = {"caption": plain}
        if entities:
            content["caption_entities"] = entities
        return content

    def _store_file(self, data: bytes, kind: str, name: str) -> _StoredFile:
        number = next(self._file_ids)
        stored = _StoredFile(
            file_id=f"FAKE{kind[:3].upper()}{number:08d}",
            unique_id=f"U{number:08d}",
            path=f"{kind}/{name}_{number}",
            data=data,
        )
        self._files[stored.file_id] = stored
        return stored

    def _input_file(self, params: _Params, name: str) -> _StoredFile:
        uploads = params.uploads
        if name in uploads:
            return self._store_file(uploads[name], f"{name}s", name)
        value = params.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = value.removeprefix("attach://")
            if attached in uploads:
                return self._store_file(uploads[attached], f"{name}s", name)
        if not isinstance(value, str) or not value:
            raise _bad(f"there is no {name} in the request")
        if value not in self._files:
            self._files[value] = _StoredFile(value, f"U{abs(hash(value)) % 10**8:08d}",
                                             f"{name}s/{len(self._files)}", b"")  # fmt: skip
        return self._files[value]

    # ------------------------------------------------------------------ methods

    async def _m_getMe(self, params: _Params) -> JSON:
        return dict(self.bot_user)

    async def _m_getUpdates(self, params: _Params) -> list[JSON]:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get_int("offset") or 0
        limit = min(max(params.get_int("limit") or 100, 1), 100)
        timeout = max(params.get_float("timeout"), 0.0)
        allowed = params.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = (
                frozenset(allowed) & ALL_UPDATE_TYPES if allowed else DEFAULT_UPDATE_TYPES
            )
        if offset > 0:
            while self._pending and self._pending[0]["update_id"] < offset:
                self._pending.popleft()
        elif offset < 0:
            while len(self._pending) > -offset:
                self._pending.popleft()
        async with self._sent_changed:  # wakes wait_until_confirmed
            self._sent_changed.notify_all()
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify_updates()  # an older long poll ends with 409, as on Telegram
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            batch = self._take_allowed(limit)
            remaining = deadline - asyncio.get_running_loop().time()
            if batch or self._stopping or remaining <= 0:
                return batch
            await self._wait_changed(remaining)

    def _take_allowed(self, limit: int) -> list[JSON]:
        """The first ``limit`` pending updates of allowed types (others are forgotten).

        Only the scanned head of the queue is touched, so a long queue stays cheap.
        """
        blocked = ALL_UPDATE_TYPES - self._allowed_updates
        batch: list[JSON] = []
        scanned = 0
        for update in self._pending:
            if len(batch) >= limit:
                break
            scanned += 1
            if _update_type(update) not in blocked:
                batch.append(update)
        if len(batch) < scanned:
            for _ in range(scanned):
                self._pending.popleft()
            self._pending.extendleft(reversed(batch))
        return batch

    async def _m_setWebhook(self, params: _Params) -> bool:
        url = params.get_str("url")
        if not url:
            return await self._m_deleteWebhook(params)
        if not re.match(r"^https?://[^\s/]+", url):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get_str("secret_token") or None
        if secret is not None and not _SECRET_RE.match(secret):
            raise _bad("secret token contains unallowed characters")
        max_connections = params.get_int("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = (
                frozenset(allowed) & ALL_UPDATE_TYPES if allowed else DEFAULT_UPDATE_TYPES
            )
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        self._webhook = _Webhook(url, secret, max_connections)
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._webhook_worker())
        self._notify_updates()
        return True

    async def _m_deleteWebhook(self, params: _Params) -> bool:
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        self._webhook = None
        self._notify_updates()
        return True

    async def _m_getWebhookInfo(self, params: _Params) -> JSON:
        hook = self._webhook
        info: JSON = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
            if self._allowed_updates != DEFAULT_UPDATE_TYPES:
                info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    async def _webhook_worker(self) -> None:
        """Deliver queued updates one at a time while a webhook is set."""
        while not self._stopping and self._webhook is not None:
            batch = self._take_allowed(1)
            if not batch:
                await self._wait_changed(None)
                continue
            hook, update = self._webhook, batch[0]
            if await self._post_update(hook, update):
                if self._pending and self._pending[0] is update:
                    self._pending.popleft()
                elif update in self._pending:
                    self._pending.remove(update)
            elif self._webhook is hook:
                last = self.deliveries[-1]
                hook.last_error_date = int(self.now())
                hook.last_error_message = last.error or f"Wrong response: {last.status}"
                await self._wait_changed(self.webhook_retry_delay)

    async def _post_update(self, hook: _Webhook, update: JSON) -> bool:
        """POST one update, recording each attempt; retry refused connections for a while.

        Refusals are expected: PTB calls setWebhook before its server listens.
        """
        assert self._session is not None
        headers = {SECRET_HEADER: hook.secret_token} if hook.secret_token else {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.webhook_connect_timeout
        while True:
            try:
                async with self._session.post(hook.url, json=update, headers=headers) as resp:
                    await resp.read()
                    ok = 200 <= resp.status < 300
                    await self._record_delivery(
                        update, hook, resp.status, None if ok else resp.reason
                    )
                    return ok
            except aiohttp.ClientConnectorError as exc:
                await self._record_delivery(update, hook, None, f"Connection refused: {exc}")
                if self._stopping or self._webhook is not hook or loop.time() >= deadline:
                    return False
                await self._wait_changed(0.05)
            except (aiohttp.ClientError, TimeoutError) as exc:
                await self._record_delivery(update, hook, None, f"{type(exc).__name__}: {exc}")
                return False

    async def _record_delivery(
        self, update: JSON, hook: _Webhook, status: int | None, error: str | None
    ) -> None:
        self.deliveries.append(WebhookDelivery(update["update_id"], hook.url, status, error))
        async with self._sent_changed:
            self._sent_changed.notify_all()

    async def _m_sendMessage(self, params: _Params) -> JSON:
        chat = self._target_chat(params)
        content = self._text_content(params)
        return self._new_message(chat, params, content)

    async def _m_editMessageText(self, params: _Params) -> JSON:
        _, message = self._editable(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        content = self._text_content(params)
        markup = _validate_markup(params.get_json("reply_markup"))
        return self._apply_edit(message, content, markup)

    async def _m_editMessageReplyMarkup(self, params: _Params) -> JSON:
        _, message = self._editable(params)
        content: JSON = {k: message[k] for k in ("text", "entities") if k in message}
        markup = _validate_markup(params.get_json("reply_markup"))
        return self._apply_edit(message, content, markup)

    def _editable(self, params: _Params) -> tuple[_Chat, JSON]:
        if params.has("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._target_chat(params)
        message = self._message(
            chat, params.get_int("message_id", required=True), "message to edit not found"
        )
        if message.get("from", {}).get("id") != self.bot_id:
            raise _bad("message can't be edited")
        return chat, message

    def _apply_edit(self, message: JSON, content: JSON, markup: JSON | None) -> JSON:
        before = (message.get("text"), message.get("entities"), message.get("reply_markup"))
        if before == (content.get("text", message.get("text")), content.get("entities"), markup):
            raise _bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.pop("entities", None)
        message.pop("reply_markup", None)
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        message["edit_date"] = int(self.now())
        return message

    async def _m_answerCallbackQuery(self, params: _Params) -> bool:
        query_id = params.get_str("callback_query_id", required=True)
        state = self._callbacks.get(query_id)
        if (
            state is None
            or state["answered"] is not None
            or self.now() - state["date"] > CALLBACK_ANSWER_WINDOW
        ):
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if len(params.get_str("text")) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        state["answered"] = dict(params.values)
        return True

    async def _m_deleteMessage(self, params: _Params) -> bool:
        chat = self._target_chat(params)
        message = self._message(
            chat, params.get_int("message_id", required=True), "message to delete not found"
        )
        self._check_deletable(message)
        del chat.messages[message["message_id"]]
        return True

    async def _m_deleteMessages(self, params: _Params) -> bool:
        """Missing ids are skipped (as on Telegram); one too old fails the whole call."""
        chat = self._target_chat(params)
        ids = _message_ids(params)
        found = [chat.messages[i] for i in ids if i in chat.messages]
        for message in found:
            self._check_deletable(message)
        for message in found:
            del chat.messages[message["message_id"]]
        return True

    def _check_deletable(self, message: JSON) -> None:
        if self.now() - message["date"] >= DELETE_WINDOW or "forum_topic_created" in message:
            raise _bad("message can't be deleted")

    def _copy_content(self, source: JSON, params: _Params) -> JSON:
        if "forum_topic_created" in source:
            raise _bad("message can't be copied")
        keys = ("text", "entities", "photo", "document", "voice", "caption", "caption_entities")
        content = {k: copy.deepcopy(source[k]) for k in keys if k in source}
        if params.get_bool("remove_caption"):
            content.pop("caption", None)
            content.pop("caption_entities", None)
        elif params.has("caption") and "text" not in content:
            content.pop("caption_entities", None)
            content.update(self._caption_content(params))
        return content

    async def _m_copyMessage(self, params: _Params) -> JSON:
        source_chat = self._target_chat(params, "from_chat_id")
        source = self._message(
            source_chat, params.get_int("message_id", required=True), "message to copy not found"
        )
        chat = self._target_chat(params)
        message = self._new_message(chat, params, self._copy_content(source, params))
        return {"message_id": message["message_id"]}

    async def _m_copyMessages(self, params: _Params) -> list[JSON]:
        source_chat = self._target_chat(params, "from_chat_id")
        chat = self._target_chat(params)
        result = []
        for message_id in _message_ids(params):
            source = source_chat.messages.get(message_id)
            if source is not None:
                copied = self._new_message(chat, params, self._copy_content(source, params))
                result.append({"message_id": copied["message_id"]})
        return result

    def _forward(self, chat: _Chat, source: JSON, params: _Params) -> JSON:
        origin: JSON = {"date": source["date"]}
        if source["chat"]["type"] == "channel":
            origin.update(type="channel", chat=source["chat"], message_id=source["message_id"])
        else:
            origin.update(type="user", sender_user=source.get("from", self.bot_user))
        content = self._copy_content(source, _Params({}))
        content["forward_origin"] = origin
        return self._new_message(chat, params, content)

    async def _m_forwardMessage(self, params: _Params) -> JSON:
        source_chat = self._target_chat(params, "from_chat_id")
        source = self._message(
            source_chat, params.get_int("message_id", required=True), "message to forward not found"
        )
        return self._forward(self._target_chat(params), source, params)

    async def _m_forwardMessages(self, params: _Params) -> list[JSON]:
        source_chat = self._target_chat(params, "from_chat_id")
        chat = self._target_chat(params)
        return [
            {"message_id": self._forward(chat, source_chat.messages[i], params)["message_id"]}
            for i in _message_ids(params)
            if i in source_chat.messages
        ]

    def _command_key(self, params: _Params) -> tuple[tuple[str, int | None, int | None], str]:
        scope = params.get_json("scope")
        language = params.get_str("language_code")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise _bad("invalid language code specified")
        return self._scope_key(scope or {"type": "default"}), language

    async def _m_setMyCommands(self, params: _Params) -> bool:
        commands = params.get_json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand JSON object")
            if not _COMMAND_RE.match(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._command_key(params)
        if commands:
            self._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self._commands.pop(key, None)
        return True

    async def _m_getMyCommands(self, params: _Params) -> list[JSON]:
        return copy.deepcopy(self._commands.get(self._command_key(params), []))

    async def _m_deleteMyCommands(self, params: _Params) -> bool:
        self._commands.pop(self._command_key(params), None)
        return True

    def _forum(self, params: _Params) -> _Chat:
        chat = self._target_chat(params)
        if not chat.is_forum:
            raise _bad("the chat is not a forum")
        return chat

    def _topic(self, chat: _Chat, params: _Params) -> tuple[int, _Topic]:
        thread = params.get_int("message_thread_id", required=True)
        assert thread is not None
        topic = chat.topics.get(thread)
        if topic is None:
            raise _bad("TOPIC_ID_INVALID")
        return thread, topic

    async def _m_createForumTopic(self, params: _Params) -> JSON:
        chat = self._forum(params)
        name = params.get_str("name")
        if not 1 <= len(name) <= 128:
            raise _bad("TOPIC_NAME_INVALID" if name else "name is empty")
        color = params.get_int("icon_color") or 7322096
        if color not in _TOPIC_COLORS:
            raise _bad("TOPIC_ICON_COLOR_INVALID")
        emoji = params.get_str("icon_custom_emoji_id") or None
        thread = chat.take_message_id()
        chat.topics[thread] = _Topic(name, color, emoji)
        topic: JSON = {"message_thread_id": thread, "name": name, "icon_color": color}
        if emoji:
            topic["icon_custom_emoji_id"] = emoji
        chat.messages[thread] = {
            "message_id": thread, "from": dict(self.bot_user), "chat": dict(chat.info),
            "date": int(self.now()), "message_thread_id": thread, "is_topic_message": True,
            "forum_topic_created": {"name": name, "icon_color": color},
        }  # fmt: skip
        return topic

    async def _m_editForumTopic(self, params: _Params) -> bool:
        chat = self._forum(params)
        _, topic = self._topic(chat, params)
        name = params.get_str("name") or topic.name
        emoji = params.get_str("icon_custom_emoji_id") if params.has("icon_custom_emoji_id") else (
            topic.icon_custom_emoji_id
        )  # fmt: skip
        if len(name) > 128:
            raise _bad("TOPIC_NAME_INVALID")
        if (name, emoji) == (topic.name, topic.icon_custom_emoji_id):
            raise _bad("TOPIC_NOT_MODIFIED")
        topic.name, topic.icon_custom_emoji_id = name, emoji
        return True

    async def _m_closeForumTopic(self, params: _Params) -> bool:
        return self._set_closed(params, closed=True)

    async def _m_reopenForumTopic(self, params: _Params) -> bool:
        return self._set_closed(params, closed=False)

    def _set_closed(self, params: _Params, *, closed: bool) -> bool:
        _, topic = self._topic(self._forum(params), params)
        if topic.closed == closed:
            raise _bad("TOPIC_NOT_MODIFIED")
        topic.closed = closed
        return True

    async def _m_deleteForumTopic(self, params: _Params) -> bool:
        chat = self._forum(params)
        thread, _ = self._topic(chat, params)
        del chat.topics[thread]
        chat.messages = {
            k: m for k, m in chat.messages.items() if m.get("message_thread_id") != thread
        }
        return True

    async def _m_sendChatAction(self, params: _Params) -> bool:
        chat = self._target_chat(params)
        if params.get_str("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self._thread(chat, params)
        return True

    async def _m_leaveChat(self, params: _Params) -> bool:
        chat = self._target_chat(params)
        if chat.info["type"] == "private":
            raise _bad("chat member status can't be changed in private chats")
        chat.left = True
        return True

    async def _m_getChat(self, params: _Params) -> JSON:
        chat = self._chat_from(params.values.get("chat_id"))
        return {
            **chat.info, "accent_color_id": 0, "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                "premium_subscription": False, "gifts_from_channels": False,
            },
        }  # fmt: skip

    async def _m_sendPhoto(self, params: _Params) -> JSON:
        chat = self._target_chat(params)
        stored = self._input_file(params, "photo")
        size = {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                "width": 320, "height": 240}  # fmt: skip
        content = {"photo": [size], **self._caption_content(params)}
        return self._new_message(chat, params, content)

    async def _m_sendDocument(self, params: _Params) -> JSON:
        chat = self._target_chat(params)
        stored = self._input_file(params, "document")
        document = {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                    "file_size": len(stored.data)}  # fmt: skip
        content = {"document": document, **self._caption_content(params)}
        return self._new_message(chat, params, content)

    async def _m_sendVoice(self, params: _Params) -> JSON:
        chat = self._target_chat(params)
        stored = self._input_file(params, "voice")
        voice = {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                 "duration": params.get_int("duration") or 1}  # fmt: skip
        content = {"voice": voice, **self._caption_content(params)}
        return self._new_message(chat, params, content)

    async def _m_getChatMember(self, params: _Params) -> JSON:
        chat = self._target_chat(params)
        user_id = params.get_int("user_id", required=True)
        assert user_id is not None
        return copy.deepcopy(self._get_member(chat.id, user_id))

    def _restrictable(self, params: _Params) -> tuple[_Chat, int, JSON]:
        chat = self._target_chat(params)
        if chat.info.get("type") not in ("group", "supergroup", "channel"):
            raise _bad("method is available for supergroup and channel chats only")
        user_id = params.get_int("user_id", required=True)
        assert user_id is not None
        if not self._can_restrict(chat.id):
            raise _bad("not enough rights to restrict/unrestrict chat member")
        member = self._get_member(chat.id, user_id)
        if member["status"] in ("creator", "administrator") or user_id == self.bot_id:
            raise _bad("user is an administrator of the chat")
        return chat, user_id, member

    async def _m_banChatMember(self, params: _Params) -> bool:
        chat, user_id, member = self._restrictable(params)
        banned = self.set_member(chat.id, user_id, "kicked")
        self._members[chat.id][user_id]["user"] = member["user"]
        self._members[chat.id][user_id]["until_date"] = params.get_int("until_date") or 0
        return bool(banned)

    async def _m_unbanChatMember(self, params: _Params) -> bool:
        chat, user_id, member = self._restrictable(params)
        if member["status"] == "kicked" or not params.get_bool("only_if_banned"):
            # Telegram: unbanning a member (without only_if_banned) removes them.
            self.set_member(chat.id, user_id, "left")
            self._members[chat.id][user_id]["user"] = member["user"]
        return True

    async def _m_getFile(self, params: _Params) -> JSON:
        stored = self._files.get(params.get_str("file_id", required=True))
        if stored is None:
            raise _bad("invalid file_id")
        return {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                "file_size": len(stored.data), "file_path": stored.path}  # fmt: skip


_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_pin_messages", "can_manage_topics",
)  # fmt: skip


def _too_many(wait: float) -> ApiError:
    retry_after = max(1, math.ceil(wait))
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def _message_ids(params: _Params) -> list[int]:
    ids = params.get_json("message_ids")
    if not isinstance(ids, list) or not ids:
        raise _bad("message identifiers are not specified")
    if len(ids) > 100:
        raise _bad("too many message identifiers specified")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise _bad("message identifiers must be numbers")
    return ids


def _update_type(update: Mapping[str, Any]) -> str | None:
    kinds = [k for k in update if k != "update_id"]
    return kinds[0] if len(kinds) == 1 else None


def _check_update(update: Any) -> None:
    """Raise ValueError unless ``update`` has the shape python-telegram-bot can parse."""
    if not isinstance(update, dict):
        raise ValueError("an update is a JSON object")
    if "update_id" in update and (
        isinstance(update["update_id"], bool) or not isinstance(update["update_id"], int)
    ):
        raise ValueError("update_id must be an integer")
    kind = _update_type(update)
    if kind is None or kind not in ALL_UPDATE_TYPES or not isinstance(update[kind], dict):
        raise ValueError("an update carries exactly one known update object")
    body = update[kind]

    def user(value: Any) -> None:
        if not (
            isinstance(value, dict)
            and isinstance(value.get("id"), int)
            and isinstance(value.get("is_bot"), bool)
            and isinstance(value.get("first_name"), str)
        ):
            raise ValueError("a User needs id (int), is_bot (bool), first_name (str)")

    def message(value: Any) -> None:
        if not (
            isinstance(value, dict)
            and isinstance(value.get("message_id"), int)
            and isinstance(value.get("date"), int)
            and isinstance(value.get("chat"), dict)
            and isinstance(value["chat"].get("id"), int)
            and isinstance(value["chat"].get("type"), str)
        ):
            raise ValueError("a Message needs message_id, date (ints) and chat {id, type}")
        if "from" in value:
            user(value["from"])
        if "text" in value and not isinstance(value["text"], str):
            raise ValueError("Message.text must be a string")
        for key in ("entities", "caption_entities"):
            for entity in value.get(key, []):
                if not (
                    isinstance(entity, dict)
                    and isinstance(entity.get("type"), str)
                    and isinstance(entity.get("offset"), int)
                    and isinstance(entity.get("length"), int)
                ):
                    raise ValueError("a MessageEntity needs type, offset, length")

    if kind in _MESSAGE_UPDATES:
        message(body)
    elif kind in ("chat_member", "my_chat_member"):
        chat = body.get("chat")
        if not (isinstance(chat, dict) and isinstance(chat.get("id"), int)):
            raise ValueError("a ChatMemberUpdated needs chat {id, type}")
        user(body.get("from"))
        for key in ("old_chat_member", "new_chat_member"):
            member = body.get(key)
            if not (isinstance(member, dict) and isinstance(member.get("status"), str)):
                raise ValueError(f"ChatMemberUpdated.{key} needs a status")
            user(member.get("user"))
    elif kind == "callback_query":
        if not isinstance(body.get("id"), str) or not isinstance(body.get("chat_instance"), str):
            raise ValueError("a CallbackQuery needs id and chat_instance (strings)")
        user(body.get("from"))
        if "message" in body:
            message(body["message"])
