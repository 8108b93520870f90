"""Privacy check 1 on Telegram: a whole journey with sentinel ids, names and texts at
DEBUG logging leaves none of them in the database files or the logs."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from bot.logsetup import setup_logging
from config.clock import FakeClock
from config.directory import Directory
from tests.conftest import make_settings
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import COUNSELLOR, FORUM, start_tg, texts
from tests.test_sentinels import find

USER_ID = 7_319_046_528
FIRST_NAME = "SentinelFirst-Qx7w"
USERNAME = "sentinel_uname_k9z"
LAST_NAME = "SentinelLast-Pp4r"
PHONE = "+4915199887766"
STAFF_FIRST_NAME = "SentinelStaff-Hn2c"
STAFF_USERNAME = "sentinel_staff_m3v"
TEXTS = ("SentinelHeldText-q8Zr", "SentinelRelayText-Lm3x", "SentinelCounsellorText-Vb7k")
INTAKE = ("consent:yes", "safety:no", "audience:self", "scene:right", "state:MV",
          "district:LUP", "prison:no", "language:de")  # fmt: skip
CODE = re.compile(r"K-[23456789A-HJ-NP-Z]{4}")


async def test_no_sentinel_in_database_files_or_debug_logs(
    api: FakeBotApi, tmp_path: Path, clock: FakeClock, directory: Directory
) -> None:
    buf = io.StringIO()
    handler = setup_logging("DEBUG", stream=buf)
    person = {"first_name": FIRST_NAME, "username": USERNAME}
    staff = {"first_name": STAFF_FIRST_NAME, "username": STAFF_USERNAME}
    tg = await start_tg(api, make_settings(tmp_path / "data"), clock, directory)
    try:
        await tg.say(USER_ID, "/start", **person)
        for answer in INTAKE:
            await tg.press(USER_ID, answer, **person)
        got = await tg.say(USER_ID, TEXTS[0], **person)
        found = CODE.search("\n".join(texts(got, USER_ID)))
        assert found is not None
        [topic] = api.topics_in(FORUM)
        await tg.press(COUNSELLOR, f"claim:{found.group()}", chat=FORUM, **staff)
        await tg.say(USER_ID, TEXTS[1], **person)
        await tg.staff(COUNSELLOR, TEXTS[2], thread=topic, **staff)
        # the person shares their phone number (a contact) and their full name
        shared = api.push_raw(
            {
                "message": {
                    "message_id": 9999,
                    "date": int(api.now()),
                    "chat": {
                        "id": USER_ID,
                        "type": "private",
                        "first_name": FIRST_NAME,
                        "last_name": LAST_NAME,
                        "username": USERNAME,
                    },
                    "from": {
                        "id": USER_ID,
                        "is_bot": False,
                        "first_name": FIRST_NAME,
                        "last_name": LAST_NAME,
                        "username": USERNAME,
                        "language_code": "de",
                    },
                    "contact": {
                        "phone_number": PHONE,
                        "first_name": FIRST_NAME,
                        "last_name": LAST_NAME,
                        "user_id": USER_ID,
                    },
                }
            }
        )
        await tg.handled(shared)
        delivered = "\n".join(texts(api.sent))
        assert all(text in delivered for text in TEXTS), "every sentinel text was relayed"
        logging.getLogger("bot.transports.telegram").debug("debug logging is on")
    finally:
        await tg.app.stop()
        logging.getLogger().removeHandler(handler)

    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.startswith("ausweg.db") for p in files)
    log_text = buf.getvalue()
    assert "debug logging is on" in log_text
    sentinels = (USER_ID, COUNSELLOR, FIRST_NAME, USERNAME, LAST_NAME, PHONE,
                 STAFF_FIRST_NAME, STAFF_USERNAME, *TEXTS, api.token)  # fmt: skip
    for value in sentinels:
        for path in files:
            assert find(path.read_bytes(), value) == [], f"{value!r} in {path.name}"
        assert find(log_text.encode(), value) == [], f"{value!r} in the logs"
