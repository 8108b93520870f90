"""docs/DEPLOY.md followed for real (issue 15 part 7).

The blocks marked ``<!-- guide-test: NAME -->`` run as written in bash, with the paths
moved into a scratch folder, ``sudo -u ...`` dropped (the test runs as root), the
database names made unique and the token pointed at the fake Telegram Bot API: a fresh
virtualenv, PostgreSQL with two databases and roles, keys, directory, settings, the bot
running and answering, ``/whoami`` in the staff group, a backup, an upgrade.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from config.directory import Directory
from config.i18n import translator
from tests.conftest import OPERATOR, PG_URL, production_directory
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import COUNSELLOR, FORUM, telegram_directory

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "DEPLOY.md"
PYTHON = shutil.which("python3.11", path="/usr/local/bin:/usr/bin")
BLOCK = re.compile(r"<!-- guide-test: (\w+) -->\n```sh\n(.*?)```", re.DOTALL)

pytestmark = pytest.mark.skipif(
    PYTHON is None or shutil.which("psql") is None or os.geteuid() != 0,
    reason="needs root, a system python3.11 and psql",
)


def blocks() -> dict[str, str]:
    return dict(BLOCK.findall(GUIDE.read_text(encoding="utf-8")))


def localise(script: str, scratch: Path, tag: str) -> str:
    """The guide's commands with this test's paths, names and tools."""
    host = PG_URL.split("@", 1)[1].split("/", 1)[0].split(":")[0]
    for old, new in (
        ("/opt/ausweg", str(scratch / "opt")),
        ("/etc/ausweg", str(scratch / "etc")),
        ("/var/backups/ausweg", str(scratch / "backups")),
        ("sudo -u postgres psql", f"psql -h {host} -U postgres -d test"),
        ("python3.11 -m venv", f"{PYTHON} -m venv"),
        ("ausweg_main", f"{tag}_main"),
        ("ausweg_keys", f"{tag}_keys"),
        ("-g ausweg ", ""),
        ("chown ausweg ", "true "),
        ("chgrp ausweg ", "true "),
    ):
        script = script.replace(old, new)
    return script


@pytest.fixture
def scratch(pg_reason: str | None) -> Iterator[tuple[Path, str]]:
    if pg_reason:
        pytest.skip(pg_reason)
    root = Path(tempfile.mkdtemp(prefix="ausweg-guide-"))
    tag = "guide_" + secrets.token_hex(4)
    src = root / "opt" / "src"
    for part in ("bot", "handlers", "storage", "config"):
        shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / part, src / part)
    try:
        yield root, tag
    finally:
        shutil.rmtree(root, ignore_errors=True)

        async def drop() -> None:
            conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
            try:
                for suffix in ("main", "keys"):
                    await conn.execute(f"DROP DATABASE IF EXISTS {tag}_{suffix} WITH (FORCE)")
                    await conn.execute(f"DROP ROLE IF EXISTS {tag}_{suffix}")
            finally:
                await conn.close()

        asyncio.run(drop())


def bash(script: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_guide_sections_are_marked() -> None:
    assert set(blocks()) == {"install", "postgres", "settings", "backup", "upgrade"}


@pytest.mark.timeout(900)  # a fresh virtualenv is installed twice (install, upgrade)
async def test_deploy_guide_followed(scratch: tuple[Path, str], directory: Directory) -> None:
    root, tag = scratch
    steps = blocks()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUSWEG_", "PIP_REQ"))}
    env["AUSWEG_DATA_DIR"] = str(root / "var")  # what the systemd unit sets
    (root / "var").mkdir(mode=0o700)
    async with FakeBotApi() as api:
        api.register_forum(FORUM)
        api.set_member(FORUM, api.bot_id, "administrator", can_restrict_members=True,
                       can_manage_topics=True)  # fmt: skip
        setup = "\n".join(localise(steps[n], root, tag) for n in ("install", "postgres"))
        settings = localise(steps["settings"], root, tag)
        settings = settings.replace("<token from @BotFather>", api.token)
        for placeholder, value in (
            ("<your organisation and its postal address>", OPERATOR.name),
            ("<your data-protection contact>", OPERATOR.privacy_contact),
            ("<https address of your full privacy notice>", OPERATOR.privacy_url),
        ):
            # quoted: systemd's EnvironmentFile strips the quotes, and the test sources it
            settings = settings.replace(placeholder, f'"{value}"')
        await asyncio.to_thread(bash, setup + "\n" + settings, root, env)
        env_file = root / "etc" / "ausweg.env"
        assert oct((root / "etc" / "keys.json").stat().st_mode & 0o777) == "0o400"
        # The operator's verified directory (section 4) and the fake Bot API.
        production_directory(telegram_directory(directory), root / "etc" / "directory.yaml")
        with env_file.open("a") as fh:
            fh.write(f"AUSWEG_TELEGRAM__BASE_URL={api.base_url}\nAUSWEG_TELEGRAM__POLL_TIMEOUT=1\n")
        run_env = {**env, "PTB_TIMEDELTA": "true"}
        load = f"set -a; . {env_file}; set +a\n"
        ausweg = root / "opt" / "venv" / "bin" / "ausweg"

        since = len(api.sent)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", load + f"exec {ausweg} run", cwd=root, env=run_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            ready = root / "var" / "ready"
            async with asyncio.timeout(90):
                while not ready.exists():  # noqa: ASYNC110 - a file of another process
                    await asyncio.sleep(0.05)
            api.push_message(5_900_000_001, 5_900_000_001, "/start")
            await api.wait_for_sent(
                lambda c: (
                    c["method"] == "sendMessage" and c["params"].get("chat_id") == 5_900_000_001
                ),
                30,
                since=since,
            )
            # Section 5: /whoami in the staff group shows the ids for the directory.
            api.push_message(FORUM, COUNSELLOR, "/whoami", chat_type="supergroup")
            call = await api.wait_for_sent(
                lambda c: c["method"] == "sendMessage" and c["params"].get("chat_id") == FORUM,
                30,
                since=since,
            )
            assert call["params"]["text"] == translator("de")(
                "staff.whoami", platform="telegram", chat=str(FORUM), account=str(COUNSELLOR)
            )
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, output.decode()[-3000:]

    # The data went to PostgreSQL, not into the data folder.
    assert not (root / "var" / "ausweg.db").exists()
    out = await asyncio.to_thread(bash, load + localise(steps["backup"], root, tag), root, env)
    assert f"{tag}_main" in out
    assert "***" in out  # the password is not shown
    dumps = sorted(p.parent.name for p in (root / "backups").rglob("*.pgdump"))
    assert dumps == ["keystore", "main"]
    upgrade = localise(steps["upgrade"], root, tag)
    # check-config's exit code 1 means "please check" (the test directory's referral
    # programmes without contacts): run it apart and read what it says.
    upgrade = upgrade.replace(f"{ausweg} check-config\n", "")
    out = await asyncio.to_thread(bash, load + upgrade, root, env)
    assert "schema at revision" in out
    check = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", load + f"{ausweg} check-config"],
        capture_output=True, text=True, cwd=root, env=env, check=False,
    )  # fmt: skip
    assert "would refuse" not in check.stdout, check.stdout + check.stderr
