"""Telegram moved a staff group to a supergroup (red-team finding 6): the operator is
told clearly what to change; other groups' moves are not named in the log."""

from __future__ import annotations

import logging

import pytest

from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import FORUM, start_tg
from tests.test_attack_config import migration


async def test_a_moved_staff_group_gets_a_clear_operator_hint(
    api: FakeBotApi,
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tg = await start_tg(api, settings, clock, directory)
    try:
        caplog.set_level(logging.INFO, logger="bot.transports.telegram.transport")
        api.register_chat(-4_123_000_001, "group")
        other = api.push_raw(migration(-4_123_000_001, -1_005_555_555_555))
        await tg.handled(other)
        moved = api.push_raw(migration(FORUM, -1_007_777_777_777))
        await tg.handled(moved)
        hints = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(hints) == 1, hints
        assert "-1007777777777" in hints[0]
        assert "staff_rooms" in hints[0]
        assert all("-1005555555555" not in r.getMessage() for r in caplog.records)
    finally:
        await tg.app.stop()
