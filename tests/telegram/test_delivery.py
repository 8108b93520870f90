"""The transport's mechanics against the fake Bot API, with a stand-in for the core.

Privacy check 12 (429 retried, nothing lost, nothing twice), malformed updates, long
texts, button presses, /vanish deletion, forum topics, command menus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.transports.base import SendLater
from bot.transports.telegram import TelegramTransport
from config.messages import Address, Button, InboundMessage, OutboundMessage, OutKind, Platform
from config.settings import ConfigError
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_api import DELETE_WINDOW, FakeBotApi
from tests.telegram.conftest import FORUM, FastSleep, fake_config, texts, to_chat

PERSON = 5_570_000_001
HERE = Address(Platform.TELEGRAM, str(PERSON))


class Core:
    """Stands in for ``App.on_message``: records, optionally waits, echoes text."""

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.transport: TelegramTransport | None = None
        self.seen: list[InboundMessage] = []
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def __call__(self, msg: InboundMessage) -> None:
        self.seen.append(msg)
        self.entered.set()
        if self.release is not None:
            await self.release.wait()
        if msg.text and self.echo and self.transport is not None:
            await self.transport.send(OutboundMessage(msg.address, f"echo: {msg.text}"))


@asynccontextmanager
async def running(
    api: FakeBotApi,
    core: Core | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **overrides: Any,
) -> AsyncIterator[TelegramTransport]:
    transport = TelegramTransport(fake_config(api, **overrides), sleep=sleep or FastSleep())
    core = core or Core()
    core.transport = transport
    await transport.start(core)
    try:
        yield transport
    finally:
        await transport.stop()


@pytest.fixture
def core() -> Core:
    return Core()


@pytest.fixture(params=["httpx", "aiohttp"])
def http(request: pytest.FixtureRequest) -> str:
    """Both request backends of python-telegram-bot the transport can use."""
    return str(request.param)


def chat_texts(api: FakeBotApi, chat: int = PERSON) -> list[str]:
    return [m["text"] for m in api.messages_in(chat) if m["from"]["id"] == api.bot_id]


# ---------------------------------------------------------------------- 429 and errors


async def test_429_storm_every_message_delivered_exactly_once(api: FakeBotApi, http: str) -> None:
    api.register_chat(PERSON)
    sleep = FastSleep()
    api.fail_with_429(times=7, retry_after=3)
    async with running(api, sleep=sleep, rate_limit=True, http_backend=http) as transport:
        results = await asyncio.gather(
            *(transport.send(OutboundMessage(HERE, f"Nachricht {i}")) for i in range(25))
        )
    assert all(r is not None and r.ref for r in results)
    assert sorted(chat_texts(api)) == sorted(f"Nachricht {i}" for i in range(25))
    assert [c["error_code"] for c in api.calls("sendMessage")].count(429) == 7
    assert sleep.waits.count(3.0) == 7, "each 429 waited retry_after"
    assert transport.stats.flood_waits == 7


async def test_429_during_conversation_replies_once_each(api: FakeBotApi, core: Core) -> None:
    async with running(api, core) as transport:
        api.fail_with_429(times=4, retry_after=1)
        updates = [api.push_message(PERSON, PERSON, f"hallo {i}") for i in range(6)]
        for update in updates:
            await transport.wait_handled(update["update_id"])
    assert chat_texts(api) == [f"echo: hallo {i}" for i in range(6)]  # one chat: in order


async def test_urgent_skips_a_flood_pause(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    gate, pausing = asyncio.Event(), asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        pausing.set()
        await gate.wait()

    async with running(api, sleep=held_sleep) as transport:
        api.fail_with_429(times=1, retry_after=30, method="sendMessage")
        paused = asyncio.create_task(transport.send(OutboundMessage(HERE, "gewöhnlich 1")))
        await pausing.wait()  # the 429 arrived: ordinary sends wait now
        queued = asyncio.create_task(transport.send(OutboundMessage(HERE, "gewöhnlich 2")))
        crisis = await asyncio.wait_for(
            transport.send(OutboundMessage(HERE, "Notruf 110", urgent=True)), timeout=2
        )
        assert crisis is not None
        assert chat_texts(api) == ["Notruf 110"], "the crisis reply did not wait"
        gate.set()
        await asyncio.gather(paused, queued)
    assert sorted(chat_texts(api)) == ["Notruf 110", "gewöhnlich 1", "gewöhnlich 2"]


async def test_urgent_skips_the_throttle(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    async with running(api, rate_limit=True, overall_per_second=1) as transport:
        await transport.send(OutboundMessage(HERE, "gewöhnlich 1"))  # uses this second up
        throttled = asyncio.create_task(transport.send(OutboundMessage(HERE, "gewöhnlich 2")))
        crisis = await asyncio.wait_for(
            transport.send(OutboundMessage(HERE, "Notruf 110", urgent=True)), timeout=0.5
        )
        assert crisis is not None
        assert chat_texts(api) == ["gewöhnlich 1", "Notruf 110"]
        throttled.cancel()
        await asyncio.gather(throttled, return_exceptions=True)


async def test_network_errors_are_retried_with_bounded_backoff(api: FakeBotApi, http: str) -> None:
    api.register_chat(PERSON)
    sleep = FastSleep()
    async with running(api, sleep=sleep, network_retries=3, http_backend=http) as transport:
        api.fail_next("sendMessage", 502, "Bad Gateway", times=2)
        assert await transport.send(OutboundMessage(HERE, "trotzdem")) is not None
        assert sleep.waits == [0.01, 0.02]
        api.fail_next("sendMessage", 500, "Internal Server Error", times=10)
        with pytest.raises(SendLater):  # the core keeps the reply and tries again later
            await transport.send(OutboundMessage(HERE, "später"))
    assert sleep.waits[2:] == [0.01, 0.02, 0.04]  # 3 retries, then handed back
    assert chat_texts(api) == ["trotzdem"]
    assert transport.stats.send_later == 1
    assert transport.stats.send_failures == 0


async def test_permanent_errors_are_logged_without_ids_and_not_raised(
    api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.register_chat(PERSON)
    api.block_bot(PERSON)
    caplog.set_level(logging.DEBUG, logger="bot")
    async with running(api) as transport:
        assert await transport.send(OutboundMessage(HERE, "blockiert")) is None
        gone = Address(Platform.TELEGRAM, "5570000999")
        assert await transport.send(OutboundMessage(gone, "unbekannt")) is None
    assert transport.stats.send_failures == 2
    assert "Forbidden" in caplog.text
    assert "BadRequest" in caplog.text
    assert str(PERSON) not in caplog.text
    assert "5570000999" not in caplog.text


# ---------------------------------------------------------------------- rendering


async def test_plain_text_arrives_verbatim(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    text = "<b>fett?</b> &amp; & *stern* _unter_ `code` [link](x) 🙂👨‍👩‍👧 مرحبا עברית \\ ~"
    async with running(api) as transport:
        await transport.send(OutboundMessage(HERE, text))
    [message] = api.messages_in(PERSON)
    assert message["text"] == text
    assert "entities" not in message
    assert message["has_protected_content"] is True


async def test_long_text_is_split_buttons_on_the_last_part(api: FakeBotApi, http: str) -> None:
    api.register_chat(PERSON)
    paragraphs = [f"Absatz {i}: " + "wort " * 300 for i in range(6)]  # ~9,100 chars
    text = "\n\n".join(paragraphs)
    buttons = ((Button("Ja", "consent:yes"), Button("Nein", "consent:no")),)
    async with running(api, http_backend=http) as transport:
        result = await transport.send(OutboundMessage(HERE, text, buttons))
        assert result is not None
        assert result.ref is not None
        parts = api.messages_in(PERSON)
        assert len(parts) == 3
        assert result.ref == ",".join(str(m["message_id"]) for m in parts)
        assert [("reply_markup" in m) for m in parts] == [False, False, True]
        assert all(len(m["text"]) <= 4096 for m in parts)
        assert "\n\n".join(m["text"] for m in parts) == text
        # /vanish with the ref of a split message deletes every part
        await transport.send(OutboundMessage(HERE, "", kind=OutKind.VANISH, refs=(result.ref,)))
    assert api.messages_in(PERSON) == []


async def test_too_long_callback_data_is_left_out(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    buttons = ((Button("ok", "a:b"), Button("zu lang", "x" * 65)),)
    async with running(api) as transport:
        assert await transport.send(OutboundMessage(HERE, "Frage", buttons)) is not None
    [message] = api.messages_in(PERSON)
    assert message["reply_markup"]["inline_keyboard"] == [[{"text": "ok", "callback_data": "a:b"}]]


# ---------------------------------------------------------------------- receiving


async def test_malformed_updates_are_skipped_and_polling_goes_on(
    api: FakeBotApi, core: Core, http: str
) -> None:
    api.register_chat(PERSON)
    chat = {"id": PERSON, "type": "private"}
    bad = [
        {"message": {"text": "no chat, no id"}},
        {"callback_query": "not an object"},
        {"message": {"message_id": 1, "chat": chat, "from": {"id": "x"}, "text": "id text"}},
        {"message": {"message_id": 2, "chat": chat, "from": {"id": 1}, "text": 42}},
        {"message": ["a", "list"]},
    ]
    async with running(api, core, http_backend=http) as transport:
        for update in bad:
            api.push_raw(update, validate=False)
        # python-telegram-bot could not parse this one (no date); the core needs no date
        no_date = api.push_raw(
            {"message": {"message_id": 3, "chat": chat, "from": {"id": PERSON}, "text": "A"}},
            validate=False,
        )
        good = api.push_message(PERSON, PERSON, "B")
        await transport.wait_handled(good["update_id"])
        await api.wait_until_confirmed(good["update_id"])
    assert transport.stats.malformed == len(bad)
    assert [m.text for m in core.seen] == ["A", "B"]
    assert no_date["update_id"] < good["update_id"]
    assert chat_texts(api) == ["echo: A", "echo: B"]
    assert not api.pending_updates


async def test_bots_channels_and_service_messages_never_reach_the_core(
    api: FakeBotApi, core: Core
) -> None:
    api.register_chat(PERSON)
    bot_user = {"id": 999, "is_bot": True, "first_name": "Other bot"}
    user = {"id": PERSON, "is_bot": False, "first_name": "Sentinel"}
    forum = {"id": FORUM, "type": "supergroup", "title": "Team", "is_forum": True}
    channel = {"id": -1009, "type": "channel", "title": "News"}
    async with running(api, core) as transport:
        api.push_raw({"message": {"message_id": 1, "date": 1, "chat": {"id": PERSON,
                     "type": "private"}, "from": bot_user, "text": "bot"}})  # fmt: skip
        api.push_raw({"message": {"message_id": 2, "date": 1, "chat": forum, "from": user,
                     "new_chat_members": [user]}})  # fmt: skip
        api.push_raw({"message": {"message_id": 3, "date": 1, "chat": forum, "from": user,
                     "sender_chat": channel, "text": "anonymous admin"}})  # fmt: skip
        api.push_raw({"message": {"message_id": 4, "date": 1, "chat": channel, "text": "x"}})
        inline = api.push_raw({"callback_query": {"id": "77", "from": user, "chat_instance": "1",
                              "inline_message_id": "abc", "data": "x"}})  # fmt: skip
        await transport.wait_handled(inline["update_id"])
    assert core.seen == []
    assert transport.stats.ignored == 5
    assert api.calls("answerCallbackQuery")[0]["params"]["callback_query_id"] == "77"


async def test_a_press_is_answered_before_the_core_finishes_then_loses_its_keyboard(
    api: FakeBotApi, core: Core
) -> None:
    api.register_chat(PERSON)
    core.release = asyncio.Event()
    question = OutboundMessage(HERE, "Frage?", ((Button("Ja", "q:yes"), Button("Nein", "q:no")),))
    async with running(api, core) as transport:
        result = await transport.send(question)
        assert result is not None
        assert result.ref is not None
        update = api.push_callback(PERSON, PERSON, "q:yes", int(result.ref))
        await core.entered.wait()
        await api.wait_for_sent("answerCallbackQuery")  # while the core still works
        assert not api.calls("editMessageReplyMarkup")
        core.release.set()
        await transport.wait_handled(update["update_id"])
    [pressed] = core.seen
    assert (pressed.button, pressed.text, pressed.address.chat_id) == ("q:yes", "", str(PERSON))
    assert "reply_markup" not in api.messages_in(PERSON)[0]


async def test_a_failing_core_is_retried_then_skipped(api: FakeBotApi) -> None:
    calls: list[str] = []

    async def broken(msg: InboundMessage) -> None:
        calls.append(msg.text)
        if msg.text == "kaputt":
            raise RuntimeError("boom")

    transport = TelegramTransport(fake_config(api), sleep=FastSleep())
    await transport.start(broken)
    try:
        api.push_message(PERSON, PERSON, "kaputt")
        after = api.push_message(PERSON, PERSON, "danach")
        await transport.wait_handled(after["update_id"])
    finally:
        await transport.stop()
    assert calls == ["kaputt"] * 3 + ["danach"]
    assert transport.stats.failed == 1


# ---------------------------------------------------------------------- vanish


async def test_vanish_deletes_in_chunks_and_skips_what_is_too_old(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    async with running(api, Core(echo=False)) as transport:
        old = [await transport.send(OutboundMessage(HERE, f"alt {i}")) for i in range(110)]
        api.advance_clock(DELETE_WINDOW + 60)
        new = [await transport.send(OutboundMessage(HERE, f"neu {i}")) for i in range(5)]
        mine = api.push_message(PERSON, PERSON, "von mir")["message"]["message_id"]
        refs = (*(r.ref for r in old + new if r is not None and r.ref), str(mine))
        result = await transport.send(OutboundMessage(HERE, "", kind=OutKind.VANISH, refs=refs))
    assert result is None
    assert [len(c["params"]["message_ids"]) for c in api.calls("deleteMessages")] == [100, 16]
    left = [m["text"] for m in api.messages_in(PERSON)]
    assert left == [f"alt {i}" for i in range(110)], "new ones and the person's gone, old kept"


# ---------------------------------------------------------------------- staff groups


async def test_case_opened_gets_a_forum_topic_or_a_plain_message(api: FakeBotApi) -> None:
    plain_group = -1_009_876_543_210
    api.register_chat(plain_group, "supergroup", title="Team ohne Themen")
    claim = ((Button("Übernehmen", "claim:K-2345"),),)
    forum = Address(Platform.TELEGRAM, str(FORUM))
    async with running(api) as transport:
        opened = await transport.send(
            OutboundMessage(forum, "Fall K-2345", claim, kind=OutKind.CASE_OPENED,
                            case_code="K-2345", protect=False)
        )  # fmt: skip
        assert opened is not None
        assert opened.thread is not None
        [(topic, info)] = api.topics_in(FORUM).items()
        assert info["name"] == "K-2345"
        assert opened.thread == Address(Platform.TELEGRAM, str(FORUM), str(topic))
        announced = api.messages_in(FORUM)[-1]
        assert announced["message_thread_id"] == topic
        assert "has_protected_content" not in announced

        plain = await transport.send(
            OutboundMessage(Address(Platform.TELEGRAM, str(plain_group)), "Fall K-3456",
                            kind=OutKind.CASE_OPENED, case_code="K-3456", protect=False)
        )  # fmt: skip
        assert plain is not None
        assert plain.thread is None
        assert api.messages_in(plain_group)[-1]["text"] == "Fall K-3456"

        # a deleted topic: staff still get the message, in the group
        await transport.bot.delete_forum_topic(FORUM, topic)
        got = await transport.send(OutboundMessage(opened.thread, "Neu im Fall", protect=False))
        assert got is not None
    assert api.messages_in(FORUM)[-1]["text"] == "Neu im Fall"
    assert "message_thread_id" not in api.messages_in(FORUM)[-1]


async def test_command_menus_per_scope_and_language(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    async with running(api, set_commands=True):
        pass

    def names(commands: list[dict[str, str]]) -> list[str]:
        return [c["command"] for c in commands]

    person = ["start", "help", "who", "delete", "vanish", "language"]  # /who: issue 12 part 3
    assert names(api.effective_commands(PERSON, language_code="de")) == person
    english = api.effective_commands(PERSON, language_code="en")
    assert names(english) == person
    assert english[0]["description"] == "Start again"
    assert api.effective_commands(PERSON, language_code="fr")[0]["description"] == "Neu beginnen"
    # six languages (issue 12 part 1): each menu in the app's language
    assert api.effective_commands(PERSON, language_code="ru")[0]["description"] == "Начать заново"
    arabic = api.effective_commands(PERSON, language_code="ar")
    assert names(arabic) == person
    assert arabic[-1]["description"] == "اختيار اللغة"
    staff_tr = api.effective_commands(FORUM, user_id=1, language_code="tr")
    assert staff_tr[0]["description"] == "Bekleyen dosyalar"
    assert names(api.effective_commands(FORUM, user_id=1)) == ["queue", "claim", "help"]


async def test_stop_confirms_what_was_handled(api: FakeBotApi, core: Core) -> None:
    async with running(api, core) as transport:
        update = api.push_message(PERSON, PERSON, "eins")
        await transport.wait_handled(update["update_id"])
    assert not api.pending_updates
    assert texts(api.sent, PERSON) == ["echo: eins"]
    assert all(to_chat(PERSON)(c) for c in api.calls("sendMessage"))


async def test_a_refused_token_fails_start_cleanly(api: FakeBotApi, http: str) -> None:
    config = fake_config(api, token="123456:refused-token-of-another-bot", http_backend=http)
    transport = TelegramTransport(config, sleep=FastSleep())
    with pytest.raises(ConfigError):
        await transport.start(Core())
    assert not transport.online
    await transport.stop()


async def test_an_unreachable_bot_api_at_start_is_retried_in_the_background(
    api: FakeBotApi, core: Core, http: str
) -> None:
    port = int(api.base_url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)  # the way to the Bot API, down at first
    config = fake_config(api, base_url=proxy.url, network_retries=2, http_backend=http)
    transport = TelegramTransport(config, sleep=FastSleep())
    try:
        await transport.start(core)  # does not fail: the other platforms must run
        assert transport.offline.is_set()
        assert not transport.online
        await asyncio.wait_for(transport.wait_ready(), timeout=1)  # at once, while offline
        with pytest.raises(SendLater):  # the core keeps replies meanwhile
            await transport.send(OutboundMessage(HERE, "später"))

        await proxy.up()
        api.register_chat(PERSON)
        update = api.push_message(PERSON, PERSON, "wieder da?")
        await transport.wait_handled(int(update["update_id"]))
        assert transport.online
        assert not transport.offline.is_set()
        assert [m.text for m in core.seen] == ["wieder da?"]
    finally:
        await transport.stop()
        await proxy.down()


async def test_a_migrated_staff_group_still_gets_its_messages(
    api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    old_group, new_group = -5_550_001, -1_005_550_001
    api.register_chat(old_group, "group", title="Team")
    api.register_chat(new_group, "supergroup", title="Team")
    api.fail_next(
        "sendMessage",
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        parameters={"migrate_to_chat_id": new_group},
    )
    async with running(api) as transport:
        sent = await transport.send(
            OutboundMessage(Address(Platform.TELEGRAM, str(old_group)), "Neuer Fall", protect=False)
        )
    assert sent is not None
    assert [m["text"] for m in api.messages_in(new_group)] == ["Neuer Fall"]
    assert "update its id in the directory" in caplog.text


async def test_ready_after_the_first_short_poll(api: FakeBotApi, core: Core) -> None:
    api.register_chat(PERSON)
    backlog = api.push_message(PERSON, PERSON, "während der Bot aus war")
    async with running(api, core, poll_timeout=30) as transport:
        await asyncio.wait_for(transport.wait_ready(), timeout=5)  # not after a 30 s poll
        assert [m.text for m in core.seen] == ["während der Bot aus war"]
        await api.wait_until_confirmed(backlog["update_id"])
    first = next(c for c in api.requests if c["method"] == "getUpdates")
    assert first["params"]["timeout"] == 0


def outage_at_call(step_of: object, method: str, n: int) -> None:
    """The ``n``-th call of one of the send path's steps meets an outage (SendLater)."""
    real = getattr(step_of, method)
    calls = 0

    async def step(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            raise SendLater("down")
        return await real(*args, **kwargs)

    setattr(step_of, method, step)


async def test_a_long_reply_cut_by_an_outage_goes_on_where_it_stopped(api: FakeBotApi) -> None:
    api.register_chat(PERSON)
    async with running(api) as transport:
        outage_at_call(transport._sender.texts, "_send_part", 2)
        long = "\n\n".join(("a" * 4000, "b" * 4000, "c" * 100))  # three parts
        reply = OutboundMessage(HERE, long, send_key="box.0")
        with pytest.raises(SendLater):
            await transport.send(reply)
        result = await transport.send(reply)  # the core's retry, same key
    assert [t[0] for t in chat_texts(api)] == ["a", "b", "c"], "no part twice"
    assert result is not None
    assert len(result.ref.split(",")) == 3


async def test_a_case_topic_made_before_an_outage_is_used_again(api: FakeBotApi) -> None:
    async with running(api) as transport:
        outage_at_call(transport._sender.texts, "send", 1)  # after the topic was made
        opened = OutboundMessage(
            Address(Platform.TELEGRAM, str(FORUM)),
            "Neuer Fall K-ABCD",
            kind=OutKind.CASE_OPENED,
            case_code="K-ABCD",
            protect=False,
            send_key="box.1",
        )
        with pytest.raises(SendLater):
            await transport.send(opened)
        result = await transport.send(opened)  # the core's retry, same key
    assert len(api.calls("createForumTopic")) == 1, "one topic per case"
    assert result is not None
    assert result.thread is not None
    assert [m.get("text") for m in api.messages_in(FORUM)].count("Neuer Fall K-ABCD") == 1


async def test_a_press_returns_while_its_keyboard_removal_still_waits(
    api: FakeBotApi, core: Core
) -> None:
    """H11.4: removing the keyboard (which may wait out the chat's 429) and answering
    the press run apart: the update counts as returned once the core returned."""
    api.register_chat(PERSON)
    question = OutboundMessage(HERE, "Frage?", ((Button("Ja", "q:yes"),),))
    async with running(api, core) as transport:
        result = await transport.send(question)
        assert result is not None
        assert result.ref is not None
        receiver = transport._receiver
        stuck = asyncio.Event()
        entered = asyncio.Event()

        async def waiting_out_a_429(*_args: Any) -> None:
            entered.set()
            await stuck.wait()

        receiver._remove_keyboard = waiting_out_a_429  # type: ignore[method-assign]
        receiver._answer_callback = waiting_out_a_429  # type: ignore[method-assign]
        update = api.push_callback(PERSON, PERSON, "q:yes", int(result.ref))
        await transport.wait_handled(update["update_id"], timeout=5)
        assert entered.is_set()
        assert not stuck.is_set()
        assert update["update_id"] not in receiver.open
        stuck.set()
