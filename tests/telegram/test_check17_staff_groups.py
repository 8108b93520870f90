"""Privacy check 17 on Telegram: staff groups hold only current staff (fake Bot API).

The bot asks for ``chat_member`` updates; an account that is not staff joining a staff
group is removed (ban + unban) or, where configured, only reported, and the
coordinators are told; start-up and ``ausweg check-config`` say when the bot lacks the
rights to do so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
import yaml

from bot.transports.telegram.updates import ALLOWED_UPDATES, MemberChange, parse_update
from config.clock import FakeClock
from config.directory import Directory
from config.settings import Settings
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import (
    COUNSELLOR,
    COUNSELLOR2,
    FORUM,
    Tg,
    start_tg,
    telegram_directory,
    texts,
)

OUTSIDER = 6_666_000_001
ROOT = Path(__file__).resolve().parents[2]


def make_admin(api: FakeBotApi, *, restrict: bool = True) -> None:
    api.set_member(FORUM, api.bot_id, "administrator", can_restrict_members=restrict)


async def join(tg: Tg, user: int) -> list[str]:
    """``user`` joins the staff group; returns the bot's messages into it meanwhile."""
    since = len(tg.api.sent)
    update = tg.api.push_chat_member(FORUM, user)
    assert update is not None, "the bot is an admin: Telegram tells it"
    await tg.handled(update)
    return texts(tg.api.sent[since:], FORUM)


async def test_check17_non_staff_joining_a_staff_group_is_removed_and_coordinators_told(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    make_admin(api)
    tg = await start_tg(api, settings, clock, directory)
    try:
        assert tg.transport.unchecked_groups == {}
        # (The fake delivers chat_member updates only when the bot asked for them.)
        said = await join(tg, OUTSIDER)
        assert api.member_status(FORUM, OUTSIDER) == "left"
        methods = [c["method"] for c in api.sent if c["params"].get("user_id") == OUTSIDER]
        assert methods == ["banChatMember", "unbanChatMember"]
        assert len(said) == 1
        assert "Koordination" in said[0]
        assert "entfernt" in said[0]
        assert str(OUTSIDER) not in said[0]
        assert tg.transport.stats.outsiders == 1

        # A counsellor of the directory joining is left alone.
        said = await join(tg, COUNSELLOR2)
        assert api.member_status(FORUM, COUNSELLOR2) == "member"
        assert said == []
    finally:
        await tg.app.stop()


async def test_check17_non_staff_joining_is_only_reported_where_configured(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    make_admin(api)
    tg = await start_tg(api, settings, clock, directory, unknown_members="report")
    try:
        said = await join(tg, OUTSIDER)
        assert api.member_status(FORUM, OUTSIDER) == "member"
        assert not [c for c in api.sent if c["method"] == "banChatMember"]
        assert len(said) == 1
        assert "liest mit" in said[0]
    finally:
        await tg.app.stop()


@pytest.mark.parametrize("restrict", [False, None])
async def test_check17_startup_says_when_a_staff_group_cannot_be_checked(
    api: FakeBotApi,
    settings: Settings,
    clock: FakeClock,
    directory: Directory,
    caplog: pytest.LogCaptureFixture,
    restrict: bool | None,
) -> None:
    if restrict is not None:
        make_admin(api, restrict=restrict)  # an admin without the right to ban
    caplog.set_level(logging.WARNING)
    tg = await start_tg(api, settings, clock, directory)
    try:
        programmes = {p.id for p in directory.programmes if p.staff_rooms}
        assert set(tg.transport.unchecked_groups) == programmes
        assert any("cannot be checked" in r.getMessage() for r in caplog.records)
        # Not an admin at all: Telegram does not even tell the bot who joins.
        if restrict is None:
            assert api.push_chat_member(FORUM, OUTSIDER) is None
    finally:
        await tg.app.stop()


async def check_config(api: FakeBotApi, directory: Directory, tmp_path: Path) -> tuple[int, str]:
    """``ausweg check-config`` against the fake Bot API (the loop keeps serving it)."""
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(telegram_directory(directory).model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUSWEG_")}
    env.update(
        {
            "AUSWEG_DATA_DIR": str(tmp_path / "data"),
            "AUSWEG_TELEGRAM__ENABLED": "true",
            "AUSWEG_TELEGRAM__TOKEN": api.token,
            "AUSWEG_TELEGRAM__BASE_URL": api.base_url,
        }
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check-config",
        str(path),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_check17_check_config_says_when_a_staff_group_cannot_be_checked(
    api: FakeBotApi, directory: Directory, tmp_path: Path
) -> None:
    code, out = await check_config(api, directory, tmp_path)
    assert code == 1, out
    assert "cannot be checked" in out
    assert "not an administrator" in out

    make_admin(api)
    _, out = await check_config(api, directory, tmp_path)  # (other findings may remain)
    assert "cannot be checked" not in out


def test_check17_chat_member_updates_are_read_as_joins_only() -> None:
    def update(old: str, new: str) -> dict[str, object]:
        user = {"id": OUTSIDER, "is_bot": False, "first_name": "Named"}
        return {
            "update_id": 1,
            "chat_member": {
                "chat": {"id": FORUM, "type": "supergroup"},
                "from": user,
                "date": 0,
                "old_chat_member": {"user": user, "status": old},
                "new_chat_member": {"user": user, "status": new},
            },
        }

    joined = parse_update(update("left", "member"))
    assert joined.message is None
    assert joined.member == MemberChange(FORUM, OUTSIDER, False)
    assert "Named" not in repr(joined)
    assert parse_update(update("member", "left")).member is None  # a leave
    assert parse_update(update("member", "administrator")).member is None  # a promotion
    assert parse_update(update("kicked", "member")).member is not None  # back in
    assert "chat_member" in ALLOWED_UPDATES


async def test_check17_counsellor_removed_from_the_directory_is_removed_from_the_group(
    api: FakeBotApi, settings: Settings, clock: FakeClock, directory: Directory
) -> None:
    make_admin(api)
    api.set_member(FORUM, COUNSELLOR2)
    api.set_member(FORUM, COUNSELLOR)
    tg = await start_tg(api, settings, clock, directory)
    try:
        data = telegram_directory(directory).model_dump(mode="python")
        for programme in data["programmes"]:
            programme["staff"] = [
                m for m in programme["staff"] if m["accounts"].get("telegram") != str(COUNSELLOR2)
            ]
        since = len(api.sent)
        tg.app.reload_directory(Directory.model_validate(data))
        await api.wait_for_sent(lambda c: c["method"] == "sendMessage", since=since)
        assert api.member_status(FORUM, COUNSELLOR2) == "left"
        assert api.member_status(FORUM, COUNSELLOR) == "member"
        said = texts(api.sent[since:], FORUM)
        assert len(said) == 1
        assert "nicht mehr" in said[0]
    finally:
        await tg.app.stop()
