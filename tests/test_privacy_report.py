"""``ausweg privacy-report`` and the retention / key CLI: counts only, no personal data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import App
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.settings import new_key
from storage.report import privacy_report
from tests.conftest import make_settings
from tests.test_privacy_checks import trace
from tests.world import World, directory_without

ROOT = Path(__file__).resolve().parent.parent
USER_ID = "5550123987"


async def test_privacy_report_counts_stages_and_key_versions_without_ids(world: World) -> None:
    w = world
    code = await w.open(USER_ID, message="Ich will raus")
    await w.person("in-intake", "/start", "b:consent:yes", "b:safety:no")
    assert w.app.db is not None
    assert w.app.keystore is not None
    retention = w.app.settings.retention

    report = await privacy_report(w.app.db, w.app.keystore, retention, w.clock.now())
    assert report.table("contacts").rows == 2
    assert report.table("cases").rows == 1
    assert report.table("held_messages").rows == 1
    assert report.table("case_events").rows >= 1
    assert report.table("referrals").rows == 0
    assert report.table("referrals").oldest_delete_after is None
    assert report.table("held_messages").retention == "held_message_days=14 d"
    assert "reply address" in report.table("contacts").reason
    held = report.table("held_messages").oldest_delete_after
    assert held == w.clock.now() + timedelta(days=14)
    assert all(t.overdue == 0 for t in report.tables)
    assert report.cases_by_status == {"new": 1}
    assert sum(report.contacts_by_state.values()) == 2
    assert report.keys == 3
    assert report.key_status.keys_by_master == {1: 3}
    assert report.key_status.contacts_by_pseudonym == {1: 2}
    assert report.key_status.keys_needing_old == 0
    assert len(report.tables) == 12

    printed = "\n".join(report.lines())
    t = await trace(w.app, USER_ID)
    for value in (USER_ID, code, *t.values()):
        assert value not in printed
    assert "held_message_days=14 d" in printed

    w.clock.advance(hours=49)  # the intake contact is now past its date
    report = await privacy_report(w.app.db, w.app.keystore, retention, w.clock.now())
    assert report.table("contacts").overdue == 1
    await w.app.purge()
    report = await privacy_report(w.app.db, w.app.keystore, retention, w.clock.now())
    assert all(t.overdue == 0 for t in report.tables)
    assert report.table("contacts").rows == 1
    assert report.keys == 2


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # This checkout's code, not whichever one is installed (the cwd is tmp_path).
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        text=True,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


async def test_cli_purge_keys_and_privacy_report(tmp_path: Path) -> None:
    """SQLite, through the real command line: data made three days ago by the app."""
    settings = make_settings(tmp_path / "data")
    keyring = {
        "master_keys": {"1": settings.crypto.master_keys[1].get_secret_value()},
        "pseudonym_keys": {"1": settings.crypto.pseudonym_keys[1].get_secret_value()},
    }
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps(keyring))
    clock = FakeClock(datetime.now(UTC) - timedelta(days=3))
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=directory_without())
    await app.start()
    try:
        w = World(app, transport, clock)
        code = await w.open(USER_ID, message="hallo")
        await w.person("in-intake", "/start", "b:consent:yes")
    finally:
        await app.stop()

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUSWEG_")}
    env |= {"AUSWEG_DATA_DIR": str(tmp_path / "data"), "AUSWEG_CRYPTO__KEY_FILE": str(key_file)}

    shown = cli(["privacy-report"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^contacts\s+2\s+1\s", shown.stdout, re.M), shown.stdout
    assert "needing an old master key: 0" in shown.stdout
    for value in (USER_ID, code):
        assert value not in shown.stdout + shown.stderr

    purged = cli(["purge", "--vacuum"], env, tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert re.search(r"^contacts\s+1$", purged.stdout, re.M), purged.stdout
    assert re.search(r"^data_keys\s+1$", purged.stdout, re.M)
    assert "vacuum: yes" in purged.stdout
    again = cli(["purge"], env, tmp_path)
    assert re.search(r"^contacts\s+0$", again.stdout, re.M)

    keyring["master_keys"]["2"] = new_key()
    keyring["pseudonym_keys"]["2"] = new_key()
    key_file.write_text(json.dumps(keyring))
    status = cli(["keys", "status"], env, tmp_path)
    assert "needing an old master key: 2" in status.stdout, status.stdout
    assert "needing an old pseudonym key: 1" in status.stdout
    rotated = cli(["keys", "rotate", "--batch", "1"], env, tmp_path)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    before, after = rotated.stdout.split("after:")
    assert "needing an old master key: 2" in before
    assert "re-wrapped 2 data keys; re-keyed 1 pseudonyms" in before
    assert "needing an old master key: 0" in after
    assert "needing an old pseudonym key: 0" in after
    assert "remove the old versions" in after


def test_cli_refuses_to_purge_without_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUSWEG_")}
    env["AUSWEG_DATA_DIR"] = str(tmp_path / "data")
    result = cli(["purge"], env, tmp_path)
    assert result.returncode == 2
    assert "crypto.master_keys is missing" in result.stderr
