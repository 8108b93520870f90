"""python-telegram-bot 22, unmocked, against :class:`tests.fakes.telegram_api.FakeBotApi`.

These tests pin down both the fake (it must answer like Telegram) and the way this project
drives PTB: ``initialize`` / ``start`` / ``updater.start_polling`` by hand, never
``run_polling``, so PTB can share the event loop with the Matrix client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_api import (
    DELETE_WINDOW,
    SECRET_HEADER,
    ApiCall,
    FakeBotApi,
    free_port,
    ptb_application_builder,
)

USER = 4242
FORUM = -1001234567890


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without it PTB 22 warns (PTBDeprecationWarning) whenever a RetryAfter is built,
    # which the suite's "warnings are errors" turns into a crash of the 429 path.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    """A bare PTB Bot (no updater) for request/answer checks."""
    api.register_chat(USER)
    async with ptb_application_builder(api).build().bot as ptb_bot:
        yield ptb_bot


@asynccontextmanager
async def polling_app(
    api: FakeBotApi,
    *handlers: BaseHandler[Any, Any, Any],
    rate_limiter: AIORateLimiter | None = None,
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Build, start and poll an Application the way the project does; always shut down."""
    builder = ptb_application_builder(api)
    if rate_limiter is not None:
        builder = builder.rate_limiter(rate_limiter)
    app = builder.build()
    for handler in handlers:
        app.add_handler(handler)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(timeout=10)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    assert update.effective_message.text is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


def sent_to(chat_id: int, method: str = "sendMessage") -> Callable[[ApiCall], bool]:
    """Predicate for wait_for_sent: a ``method`` call addressed to ``chat_id``."""

    def predicate(call: ApiCall) -> bool:
        return call["method"] == method and call["params"].get("chat_id") == chat_id

    return predicate


# ---------------------------------------------------------------------- polling


async def test_echo_round_trip_over_long_polling(api: FakeBotApi) -> None:
    async with polling_app(api, MessageHandler(filters.TEXT & ~filters.COMMAND, echo)):
        api.push_message(USER, USER, "hallo")
        call = await api.wait_for_sent(sent_to(USER))
    assert call["ok"]
    assert call["params"]["text"] == "echo: hallo"
    assert call["result"]["chat"]["id"] == USER
    texts = [m["text"] for m in api.messages_in(USER)]
    assert texts == ["hallo", "echo: hallo"]
    assert not api.pending_updates  # PTB confirmed the batch (offset) before stopping


async def test_command_handler_needs_and_gets_the_bot_command_entity(api: FakeBotApi) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"args={context.args}")

    async with polling_app(api, CommandHandler("start", start)):
        update = api.push_message(USER, USER, "/start abc")
        call = await api.wait_for_sent(sent_to(USER))
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert call["params"]["text"] == "args=['abc']"


async def test_many_updates_in_order_and_ids_monotonic(api: FakeBotApi) -> None:
    async with polling_app(api, MessageHandler(filters.TEXT, echo)):
        updates = [api.push_message(USER, USER, f"m{i}") for i in range(20)]
        calls = await api.wait_for_all(sent_to(USER), 20)
    ids = [u["update_id"] for u in updates]
    assert ids == sorted(set(ids))
    assert [c["params"]["text"] for c in calls] == [f"echo: m{i}" for i in range(20)]
    message_ids = [m["message_id"] for m in api.messages_in(USER)]
    assert message_ids == list(range(1, 41))


async def test_long_poll_wakes_on_push_and_confirms_below_offset(api: FakeBotApi, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)  # let the poll reach the server before pushing
    first = api.push_message(USER, USER, "eins")
    updates = await poll
    assert [u.update_id for u in updates] == [first["update_id"]]
    assert loop.time() - started < 2  # woken by the push, not by the 5 s timeout
    # Not confirmed yet: fetched again. Confirmed by offset: gone.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [first["update_id"]]
    assert await bot.get_updates(offset=first["update_id"] + 1, timeout=0) == ()
    assert api.pending_updates == []


async def test_stop_wakes_a_pending_long_poll() -> None:
    fake = FakeBotApi()
    await fake.start()
    try:
        async with Bot(
            fake.token, base_url=f"{fake.base_url}/bot", base_file_url=f"{fake.base_url}/file/bot"
        ) as ptb_bot:
            poll = asyncio.create_task(ptb_bot.get_updates(timeout=30))
            await asyncio.sleep(0.05)
            async with asyncio.timeout(3):
                await fake.stop()
                assert await poll == ()
    finally:
        await fake.stop()


async def test_validated_raw_update_reaches_handlers_and_bad_ones_are_refused(
    api: FakeBotApi,
) -> None:
    with pytest.raises(ValueError, match="Message needs"):
        api.push_raw({"message": {"message_id": 1, "text": "no chat, no date"}})
    api.register_chat(USER)
    raw = {
        "message": {
            "message_id": 99,
            "date": int(api.now()),
            "chat": {"id": USER, "type": "private", "first_name": "X"},
            "from": {"id": USER, "is_bot": False, "first_name": "X"},
            "text": "raw",
        }
    }
    async with polling_app(api, MessageHandler(filters.TEXT, echo)):
        pushed = api.push_raw(raw)
        call = await api.wait_for_sent(sent_to(USER))
    assert isinstance(pushed["update_id"], int)
    assert call["params"]["text"] == "echo: raw"


async def test_get_updates_limit_negative_offset_and_allowed_updates(
    api: FakeBotApi, bot: Bot
) -> None:
    sent = await bot.send_message(USER, "Frage")
    first = api.push_message(USER, USER, "eins")
    second = api.push_message(USER, USER, "zwei")
    press = api.push_callback(USER, USER, "yes", sent.message_id)
    assert [u.update_id for u in await bot.get_updates(limit=1)] == [first["update_id"]]
    # A negative offset keeps only the newest -offset updates.
    assert [u.update_id for u in await bot.get_updates(offset=-2)] == [
        second["update_id"],
        press["update_id"],
    ]
    # allowed_updates filters (and forgets) the other kinds; it sticks for later calls.
    updates = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.update_id for u in updates] == [press["update_id"]]
    api.push_message(USER, USER, "drei")
    assert await bot.get_updates(offset=press["update_id"] + 1) == ()


# ---------------------------------------------------------------------- errors


async def test_wrong_token_fails_initialize_with_invalid_token(api: FakeBotApi) -> None:
    app = ptb_application_builder(api).token("999999:WrongTokenWrongTokenWrongToken").build()
    with pytest.raises(InvalidToken):
        await app.initialize()
    # PTB gotcha: a failed initialize() leaves the HTTP client and its keep-alive socket
    # open, and app.shutdown() / bot.shutdown() are no-ops on an uninitialised object.
    await app.bot.request.shutdown()
    assert api.calls("getMe") == []  # refused before it counts as a call


async def test_raw_http_answers_like_telegram(api: FakeBotApi) -> None:
    api.register_chat(USER)
    root = f"{api.base_url}/bot{api.token}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api.base_url}/bot1:wrong/getMe") as response:
            assert response.status == 401
            assert await response.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with session.get(f"{root}/noSuchMethod") as response:
            assert response.status == 404
            assert (await response.json())["description"] == "Not Found"
        async with session.post(f"{root}/sendMessage", data={"text": "x"}) as response:
            assert response.status == 400
            assert (await response.json())["description"] == "Bad Request: chat_id is empty"
        markup = {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
        form = {"chat_id": str(USER), "text": "form", "reply_markup": json.dumps(markup)}
        async with session.post(f"{root}/sendMessage", data=form) as response:
            assert (await response.json())["result"]["reply_markup"] == markup
        body = {"chat_id": USER, "text": "json", "reply_markup": markup}
        async with session.post(f"{root}/SENDMESSAGE", json=body) as response:
            assert (await response.json())["ok"] is True  # method names are case-insensitive
        async with session.get(f"{root}/sendMessage", params={"chat_id": USER, "text": "get"}):
            pass
    assert [c["params"]["text"] for c in api.calls("sendMessage")] == [
        "x",
        "form",
        "json",
        "get",
    ]
    assert api.calls("sendMessage")[1]["params"]["reply_markup"] == markup
    assert [m["text"] for m in api.messages_in(USER)] == ["form", "json", "get"]


async def test_unknown_method_is_404(bot: Bot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "Message text is empty"),
        ({"text": "   "}, "Message text is empty"),
        ({"text": "x" * 4097}, "Message is too long"),
        ({"text": "<b>bold", "parse_mode": "HTML"}, "Can't find end tag"),
        ({"text": "<b>x</i>", "parse_mode": "HTML"}, "Unmatched end tag"),
        ({"text": "<blink>x</blink>", "parse_mode": "HTML"}, "Unsupported start tag"),
        ({"text": "Ende.", "parse_mode": "MarkdownV2"}, "Character '.' is reserved"),
        ({"text": "*fett", "parse_mode": "MarkdownV2"}, "Can't find end of Bold entity"),
        (
            {
                "text": "x",
                "reply_markup": InlineKeyboardMarkup(
                    [[InlineKeyboardButton("a", callback_data="x" * 65)]]
                ),
            },
            "Button_data_invalid",
        ),
        ({"text": "x", "chat_id": 777}, "Chat not found"),
        ({"text": "x", "message_thread_id": 5, "chat_id": FORUM}, "Message thread not found"),
    ],
)
async def test_send_message_bad_requests(
    api: FakeBotApi, bot: Bot, kwargs: dict[str, Any], message: str
) -> None:
    api.register_forum(FORUM)
    kwargs = {"chat_id": USER, **kwargs}
    # PTB strips "Bad Request: " and str.capitalize()s the rest, lower-casing it.
    with pytest.raises(BadRequest, match=f"(?i){message}"):
        await bot.send_message(**kwargs)
    assert api.messages_in(USER) == []


async def test_formatted_text_is_accepted_and_parsed(api: FakeBotApi, bot: Bot) -> None:
    html = await bot.send_message(USER, "<b>fett</b> &amp; <i>kursiv</i>", parse_mode="HTML")
    assert html.text == "fett & kursiv"
    assert [(e.type, e.offset, e.length) for e in html.entities] == [
        ("bold", 0, 4),
        ("italic", 7, 6),
    ]
    md = await bot.send_message(USER, r"*Hallo* Welt\!", parse_mode="MarkdownV2")
    assert md.text == "Hallo Welt!"
    protected = await bot.send_message(
        USER, "leise", protect_content=True, disable_notification=True
    )
    assert protected.has_protected_content
    assert api.calls("sendMessage")[-1]["params"]["disable_notification"] is True


async def test_blocked_user_is_forbidden(api: FakeBotApi, bot: Bot) -> None:
    api.block_bot(USER)
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(USER, "hallo")


# ---------------------------------------------------------------------- 429


async def test_429_without_rate_limiter_raises_retry_after(api: FakeBotApi, bot: Bot) -> None:
    api.fail_with_429(times=1, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "eins")
    assert caught.value.retry_after == timedelta(seconds=3)  # a timedelta with PTB_TIMEDELTA
    assert (await bot.send_message(USER, "zwei")).text == "zwei"


async def test_429_is_retried_by_aio_rate_limiter(api: FakeBotApi) -> None:
    api.register_chat(USER)
    api.fail_with_429(times=1, retry_after=1, method="sendMessage")
    async with polling_app(api, rate_limiter=AIORateLimiter(max_retries=2)) as app:
        message = await app.bot.send_message(USER, "trotzdem")
    calls = api.calls("sendMessage")
    assert [c["error_code"] for c in calls] == [429, None]
    assert message.text == "trotzdem"
    assert [m["text"] for m in api.messages_in(USER)] == ["trotzdem"]


async def test_enforced_limits_answer_429_for_a_burst() -> None:
    fake = FakeBotApi(enforce_limits=True)
    await fake.start()
    try:
        fake.register_chat(USER)
        async with ptb_application_builder(fake).build().bot as ptb_bot:
            sent = 0
            with pytest.raises(RetryAfter):  # noqa: PT012 - the burst is the statement
                for i in range(10):
                    await ptb_bot.send_message(USER, f"burst {i}")
                    sent += 1
        assert 3 <= sent < 10  # RateLimits.private_burst, refilled at 1 message/s
        assert len(fake.messages_in(USER)) == sent
    finally:
        await fake.stop()


# ---------------------------------------------------------------------- webhook


async def test_webhook_delivery_secret_and_conflict(api: FakeBotApi) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg"
    app = ptb_application_builder(api).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    try:
        # An update queued while the bot was down, and a webhook set before anything listens
        # (as run_webhook / start_webhook do): the fake must retry the refused connection.
        queued = api.push_message(USER, USER, "while down")
        await app.bot.set_webhook(url, secret_token="s3cret")
        refused = await api.wait_for_delivery(queued["update_id"], ok=False)
        assert refused.status is None
        await app.updater.start_webhook(
            listen="127.0.0.1", port=port, url_path="tg", secret_token="s3cret", webhook_url=url
        )
        assert (await app.bot.get_webhook_info()).url == url
        assert (await api.wait_for_delivery(queued["update_id"])).status == 200

        live = api.push_message(USER, USER, "per webhook")
        await api.wait_for_all(sent_to(USER), 2)
        assert (await api.wait_for_delivery(live["update_id"])).status == 200
        assert not api.pending_updates

        with pytest.raises(Conflict, match="webhook is active"):
            await app.bot.get_updates()

        async with aiohttp.ClientSession() as session:
            forged = {**live, "update_id": live["update_id"] + 1000}
            forged["message"] = {**live["message"], "text": "forged"}
            for headers in ({SECRET_HEADER: "wrong"}, {}):
                async with session.post(url, json=forged, headers=headers) as response:
                    assert response.status == 403
        # Updates are handled one by one: once this one is echoed, a forged one would be too.
        api.push_message(USER, USER, "after")
        await api.wait_for_all(sent_to(USER), 3)
        texts = [c["params"]["text"] for c in api.sent if c["method"] == "sendMessage"]
        assert texts == ["echo: while down", "echo: per webhook", "echo: after"]
    finally:
        await app.updater.stop()
        await app.stop()
        await app.bot.delete_webhook()
        assert (await app.bot.get_webhook_info()).url == ""
        await app.shutdown()


# ---------------------------------------------------------------------- messages


async def test_delete_message_48_hour_window(api: FakeBotApi, bot: Bot) -> None:
    old = await bot.send_message(USER, "alt")
    api.advance_clock(DELETE_WINDOW + 1)
    fresh = await bot.send_message(USER, "neu")
    with pytest.raises(BadRequest, match="Message can't be deleted"):
        await bot.delete_message(USER, old.message_id)
    with pytest.raises(BadRequest, match="Message can't be deleted"):
        await bot.delete_messages(USER, [old.message_id, fresh.message_id])
    assert await bot.delete_message(USER, fresh.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(USER, fresh.message_id)
    assert [m["text"] for m in api.messages_in(USER)] == ["alt"]
    assert fresh.date.timestamp() - old.date.timestamp() >= DELETE_WINDOW


async def test_edit_copy_and_forward_are_recorded(api: FakeBotApi, bot: Bot) -> None:
    api.register_forum(FORUM)
    api.push_message(USER, USER, "Bitte helft mir")
    copied = await bot.copy_message(FORUM, USER, 1)
    assert api.messages_in(FORUM)[-1]["text"] == "Bitte helft mir"
    assert "forward_origin" not in api.messages_in(FORUM)[-1]
    copies = await bot.copy_messages(FORUM, USER, [1, 999])
    assert len(copies) == 1
    assert api.calls("forwardMessage") == []
    await bot.forward_message(FORUM, USER, 1)
    assert len(api.calls("forwardMessage")) == 1
    assert api.messages_in(FORUM)[-1]["forward_origin"]["sender_user"]["id"] == USER

    sent = await bot.send_message(USER, "Entwurf")
    edited = await bot.edit_message_text("Endfassung", chat_id=USER, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert edited.text == "Endfassung"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("Endfassung", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", chat_id=USER, message_id=1)
    assert copied.message_id > 0


async def test_media_by_file_id_and_upload_then_download(api: FakeBotApi, bot: Bot) -> None:
    photo = await bot.send_photo(USER, "AgACAgIAAxkBAAIBfake", caption="Bild")
    assert photo.photo
    assert photo.caption == "Bild"
    voice = await bot.send_voice(USER, "AwACAgIAAxkBAAIBfake")
    assert voice.voice is not None
    document = await bot.send_document(USER, b"%PDF-1.4 test", filename="info.pdf")
    assert document.document is not None
    downloaded = await (await bot.get_file(document.document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == b"%PDF-1.4 test"
    assert api.calls("sendDocument")[0]["params"]["document"]["size"] == 13


async def test_commands_per_scope_and_language(api: FakeBotApi, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("start", "Beginnen")], language_code="de")
    await bot.set_my_commands([BotCommand("start", "Start")])
    await bot.set_my_commands(
        [BotCommand("hilfe", "Hilfe")], scope=BotCommandScopeAllPrivateChats()
    )
    await bot.set_my_commands([BotCommand("fall", "Fall")], scope=BotCommandScopeChat(USER))
    german = await bot.get_my_commands(language_code="de")
    assert [(c.command, c.description) for c in german] == [("start", "Beginnen")]
    assert api.effective_commands(USER, language_code="de") == [
        {"command": "fall", "description": "Fall"}
    ]
    await bot.delete_my_commands(scope=BotCommandScopeChat(USER))
    assert api.effective_commands(USER)[0]["command"] == "hilfe"
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Start!", "x")])


async def test_forum_topics(api: FakeBotApi, bot: Bot) -> None:
    api.register_forum(FORUM)
    topic = await bot.create_forum_topic(FORUM, "Fall K7Q2")
    thread = topic.message_thread_id
    sent = await bot.send_message(FORUM, "Neue Anfrage", message_thread_id=thread)
    assert sent.message_thread_id == thread
    assert sent.is_topic_message
    assert await bot.edit_forum_topic(FORUM, thread, name="Fall K7Q2 (offen)")
    assert await bot.close_forum_topic(FORUM, thread)
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(FORUM, "zu", message_thread_id=thread)
    assert api.topics_in(FORUM)[thread] == {
        "name": "Fall K7Q2 (offen)",
        "icon_color": 7322096,
        "closed": True,
    }
    assert await bot.delete_forum_topic(FORUM, thread)
    assert api.topics_in(FORUM) == {}
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(USER, "nope")
    assert await bot.send_chat_action(USER, "typing")
    chat = await bot.get_chat(FORUM)
    assert chat.is_forum
    assert chat.type == "supergroup"


async def test_callback_query_round_trip(api: FakeBotApi) -> None:
    async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Ja", callback_data="yes")],
             [InlineKeyboardButton("Nein", callback_data="no")]]
        )  # fmt: skip
        await update.effective_message.reply_text("Weiter?", reply_markup=keyboard)

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Danke")
        await query.edit_message_text(f"Gewählt: {query.data}")

    handlers = (CommandHandler("start", ask), CallbackQueryHandler(answer))
    async with polling_app(api, *handlers) as app:
        api.push_message(USER, USER, "/start")
        question = await api.wait_for_sent(sent_to(USER))
        message_id = question["result"]["message_id"]
        assert question["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "yes"
        press = api.push_callback(USER, USER, "yes", message_id)
        answered = await api.wait_for_sent("answerCallbackQuery")
        edited = await api.wait_for_sent("editMessageText")
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):  # answered already
            await app.bot.answer_callback_query(press["callback_query"]["id"])
    assert answered["params"]["callback_query_id"] == press["callback_query"]["id"]
    assert answered["params"]["text"] == "Danke"
    assert edited["result"]["text"] == "Gewählt: yes"
    assert "reply_markup" not in edited["result"]  # editing text drops the keyboard
