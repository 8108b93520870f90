"""A Bot API outage longer than the transport's retries: replies wait, none is lost."""

from __future__ import annotations

from bot.app import App
from bot.transports.telegram import TelegramTransport
from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.telegram_api import ApiCall, FakeBotApi
from tests.telegram.conftest import FastSleep, fake_config, telegram_directory

PERSON = 5_580_000_001


def reply_to_person(call: ApiCall) -> bool:
    return (
        call["method"] == "sendMessage" and call["ok"] and call["params"].get("chat_id") == PERSON
    )


async def test_replies_wait_out_an_outage_and_arrive_once(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    transport = TelegramTransport(fake_config(api, network_retries=1), sleep=FastSleep())
    app = App(
        settings,
        [transport],
        clock=clock,
        directory=telegram_directory(directory),
        retry_seconds=3600,  # rounds are run by hand below
    )
    await app.start()
    try:
        api.register_chat(PERSON)
        # Two attempts per send (one retry): the outage outlasts the first retry round.
        api.fail_next("sendMessage", 500, "Internal Server Error", times=4)
        update = api.push_message(PERSON, PERSON, "/start")
        await transport.wait_handled(int(update["update_id"]))
        assert app.waiting == 1  # handled and kept, although nothing could be sent
        await app.retry_waiting()  # still down
        assert app.waiting == 1
        assert not [c for c in api.sent if reply_to_person(c)]
        await app.retry_waiting()  # back
        got = [c["params"]["text"] for c in api.sent if reply_to_person(c)]
        assert len(got) == 2, "the greeting and the consent question, once each"
        assert "einverstanden" in got[-1]
        assert app.waiting == 0
        assert transport.stats.send_later == 2
    finally:
        await app.stop()
