"""The Dockerfile's install and entry steps, run for real without Docker.

Base images cannot be pulled here, so the image is imitated as closely as a test can:
the files the Dockerfile copies, its ``pip install`` in a clean virtualenv, its ``ENV``
(with /data, /etc/ausweg and /tmp mapped into a scratch folder), its ``USER`` (uid
10001, not root), its ``ENTRYPOINT`` with ``check-config`` and ``run``, and code that
the service user cannot write (as under ``--read-only``). ``run`` talks to the fake
Telegram Bot API, becomes ready and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.directory import Directory
from config.settings import new_key
from tests.conftest import OPERATOR_ENV, production_directory
from tests.fakes.telegram_api import FakeBotApi
from tests.telegram.conftest import FORUM, telegram_directory
from tests.test_deploy import dockerfile, image_env

ROOT = Path(__file__).resolve().parent.parent
UID = 10001
#: Where the image keeps things -> the scratch folder's stand-ins.
MOUNTS = ("/data", "/etc/ausweg", "/tmp", "/app")  # noqa: S108 - paths inside the image

#: A Python 3.11 the image's user can run: the base image's is a system Python, too (a
#: pyenv Python under /root cannot be read by another user).
PYTHON = shutil.which("python3.11", path="/usr/local/bin:/usr/bin")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or PYTHON is None,
    reason="needs root, setpriv and a system python3.11 to run the image's steps as its user",
)


def _as_image_user(*cmd: str) -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *cmd]


@pytest.fixture(scope="module")
def image() -> Iterator[Path]:
    """A scratch folder laid out like the image: app/ (copied code), venv/, data/, etc/, tmp/."""
    root = Path(tempfile.mkdtemp(prefix="ausweg-image-"))
    root.chmod(0o755)  # the service user must reach the code
    try:
        app = root / "app"
        app.mkdir()
        steps = dockerfile()
        for word, rest in steps:
            if word == "COPY":
                *sources, _ = rest.split()
                for source in sources:
                    src = ROOT / source
                    if src.is_dir():
                        shutil.copytree(
                            src, app / source, ignore=shutil.ignore_patterns("__pycache__")
                        )
                    else:
                        shutil.copy2(src, app / source)
        run = next(rest for word, rest in steps if word == "RUN")
        install = shlex.split(run.split("&&")[0])
        assert install[:2] == ["pip", "install"]
        assert PYTHON is not None
        subprocess.run([PYTHON, "-m", "venv", str(root / "venv")], check=True)
        # As in the image, from the package index (pip's cache allowed: only faster).
        pip = {k: v for k, v in image_env().items() if k.startswith("PIP_") and "CACHE" not in k}
        env = {**os.environ, **pip}
        subprocess.run(
            [str(root / "venv" / "bin" / "pip"), *install[1:], "-q"],
            cwd=app,
            env=env,
            check=True,
        )
        # The installed package is the one the service runs (not a checkout on the path).
        where = subprocess.run(
            [str(root / "venv" / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
            capture_output=True, text=True, check=True, cwd=root,
        )  # fmt: skip
        assert where.stdout.startswith(str(root / "venv"))
        for name in ("data", "tmp"):
            (root / name).mkdir(mode=0o700)
            os.chown(root / name, UID, UID)
        (root / "tmp").chmod(0o1777)
        (root / "etc").mkdir(mode=0o755)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def image_environment(root: Path, **settings: str) -> dict[str, str]:
    """The image's ENV with its paths mapped into ``root``, plus the operator's settings."""
    mapped = {
        "/data": str(root / "data"),
        "/etc/ausweg": str(root / "etc"),
        "/tmp": str(root / "tmp"),  # noqa: S108
        "/app": str(root / "app"),
    }
    env = {}
    for key, value in image_env().items():
        for inside, outside in mapped.items():
            if value == inside or value.startswith(inside + "/"):
                value = outside + value[len(inside) :]
                break
        env[key] = value
    env["PATH"] = f"{root / 'venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    env.update(settings)
    return env


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chown(path, UID, UID)


@pytest.mark.timeout(600)  # the install into a fresh virtualenv takes a minute or more
async def test_image_steps_install_check_config_run_and_stop(
    image: Path, directory: Directory
) -> None:
    entry = json.loads(next(rest for word, rest in dockerfile() if word == "ENTRYPOINT"))
    cmd = json.loads(next(rest for word, rest in dockerfile() if word == "CMD"))
    assert cmd == ["run"]
    venv_bin = image / "venv" / "bin"

    async with FakeBotApi() as api:
        api.register_forum(FORUM)
        api.set_member(FORUM, api.bot_id, "administrator", can_restrict_members=True,
                       can_manage_topics=True)  # fmt: skip
        # What the operator mounts read-only at /etc/ausweg: directory and keys (0400).
        production_directory(telegram_directory(directory), image / "etc" / "directory.yaml")
        keys = {"master_keys": {"1": new_key()}, "pseudonym_keys": {"1": new_key()}}
        _write_secret(image / "etc" / "keys.json", json.dumps(keys))
        env = image_environment(
            image,
            AUSWEG_TELEGRAM__ENABLED="true",
            AUSWEG_TELEGRAM__TOKEN=api.token,
            AUSWEG_TELEGRAM__BASE_URL=api.base_url,
            AUSWEG_TELEGRAM__POLL_TIMEOUT="1",
            PTB_TIMEDELTA="true",
            **OPERATOR_ENV,
        )
        check = await asyncio.create_subprocess_exec(
            *_as_image_user(str(venv_bin / entry[0]), "check-config"),
            cwd=image / "app", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(check.communicate(), 120)
        report = out.decode()
        assert "would refuse" not in report, report + err.decode()
        assert "the bot can check every staff group" in report  # it reached the Bot API
        # Exit 1 only for the test directory's referral programmes without a contact.
        assert check.returncode == (1 if "Please check" in report else 0), err.decode()

        since = len(api.sent)
        proc = await asyncio.create_subprocess_exec(
            *_as_image_user(str(venv_bin / entry[0]), *cmd),
            cwd=image / "app", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await api.wait_for_sent("deleteWebhook", 60, since=since)
            ready = image / "data" / "ready"
            async with asyncio.timeout(60):
                while not ready.exists():  # noqa: ASYNC110 - a file of another process
                    await asyncio.sleep(0.05)
            api.push_message(5_700_000_001, 5_700_000_001, "/start")
            await api.wait_for_sent(
                lambda c: (
                    c["method"] == "sendMessage" and c["params"].get("chat_id") == 5_700_000_001
                ),
                30,
                since=since,
            )
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    log = output.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log
    # Everything it wrote is in the data volume, owned by the service user.
    written = sorted(p.name for p in (image / "data").iterdir())
    assert "ausweg.db" in written, written
    assert "keys.db" in written, written
    assert not ready.exists()  # removed on stop
    assert all(p.stat().st_uid == UID for p in (image / "data").iterdir())
    assert not list((image / "app").rglob("__pycache__"))  # nothing written into the code
