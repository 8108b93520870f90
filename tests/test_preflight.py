"""Fail-safe configuration (issue 10, obs 7): ``ausweg run`` refuses unsafe settings
before anything is written, one line per problem; ``check-config`` says the same and more."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from config.directory import Directory
from config.preflight import example_values
from config.settings import EXAMPLE_DIRECTORY, ConfigError, new_key
from tests.conftest import OPERATOR_ENV, production_directory
from tests.telegram.conftest import telegram_directory

#: A token of the real shape (digits, colon, 35 characters).
TOKEN = f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(26)}"


def write_keys(path: Path, master: str | None = None, pseudonym: str | None = None) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {
                "master_keys": {"1": master or new_key()},
                "pseudonym_keys": {"1": pseudonym or new_key()},
            },
            fh,
        )
    return path


class Cli:
    """``ausweg`` in this process with a clean ``AUSWEG_*`` environment; the app never runs
    (``run_until_stopped`` is replaced by a recorder)."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.started: list[object] = []
        self.reload: Callable[[], None] | None = None
        self.data = tmp_path / "data"
        for name in list(os.environ):
            if name.startswith("AUSWEG_"):
                monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)  # no stray .env

        async def run_until_stopped(app: object, **kw: Any) -> None:
            self.started.append(app)
            self.reload = kw.get("reload")

        monkeypatch.setattr("bot.runner.run_until_stopped", run_until_stopped)
        monkeypatch.setattr("bot.transports.factory.build_transports", lambda _s: [])

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(f"AUSWEG_{name}", value)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = self.capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture
def ausweg(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    directory: Directory,
) -> Cli:
    """A production configuration that passes: Telegram, a verified directory, 0600 keys."""
    c = Cli(tmp_path, monkeypatch, capsys)
    c.env(
        DATA_DIR=str(c.data),
        DIRECTORY_PATH=str(
            production_directory(telegram_directory(directory), tmp_path / "d.yaml")
        ),
        CRYPTO__KEY_FILE=str(write_keys(tmp_path / "keys.json")),
        TELEGRAM__ENABLED="true",
        TELEGRAM__TOKEN=TOKEN,
        **{k.removeprefix("AUSWEG_"): v for k, v in OPERATOR_ENV.items()},
    )
    return c


def refused(ausweg: Cli, *needles: str) -> list[str]:
    """Run, expect a refusal before anything was written; return the problem lines."""
    code, _, err = ausweg("run")
    assert code == 2, err
    assert not ausweg.started, "the app was started"
    assert not ausweg.data.exists(), "something was written before the refusal"
    lines = [line.strip() for line in err.splitlines()[1:]]
    for needle in needles:
        assert any(needle in line for line in lines), (needle, err)
    return lines


def test_a_safe_production_configuration_starts(ausweg: Cli) -> None:
    code, _, err = ausweg("run")
    assert code == 0, err
    assert len(ausweg.started) == 1


def test_run_refuses_the_example_directory(ausweg: Cli) -> None:
    ausweg.env(DIRECTORY_PATH=str(EXAMPLE_DIRECTORY))
    refused(ausweg, "shipped example")


def test_run_refuses_a_directory_marked_verify_before_going_live(
    ausweg: Cli, directory: Directory, tmp_path: Path
) -> None:
    marked = tmp_path / "marked.yaml"
    text = production_directory(telegram_directory(directory), marked).read_text()
    marked.write_text(
        text.replace("verify_before_going_live: false", "verify_before_going_live: true")
    )
    ausweg.env(DIRECTORY_PATH=str(marked))
    refused(ausweg, "verify_before_going_live")


def test_run_refuses_a_programme_unreachable_on_every_enabled_platform(
    ausweg: Cli, directory: Directory, tmp_path: Path
) -> None:
    # The example's staff sit in the console demo room: nobody on Telegram would hear.
    path = production_directory(directory, tmp_path / "console-only.yaml")
    ausweg.env(DIRECTORY_PATH=str(path))
    lines = refused(ausweg)
    jump = [line for line in lines if "'jump'" in line]
    assert len(jump) == 1, lines
    assert "telegram" in jump[0]
    assert "staff room" in jump[0]
    assert not [line for line in lines if "'dia-mv'" in line], "a referral-only programme"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TELEGRAM__TOKEN", "<token from @BotFather>"),
        ("TELEGRAM__TOKEN", "token from @BotFather"),
        ("TELEGRAM__WEBHOOK_SECRET", "<random string>"),
        ("TELEGRAM__WEBHOOK_SECRET", "<anything at all in brackets>"),
        ("MATRIX__PASSWORD", "<password>"),
        ("MATRIX__STORE_PICKLE_KEY", "<random string, never DEFAULT_KEY>"),
    ],
)
def test_run_refuses_placeholder_shaped_secrets(ausweg: Cli, setting: str, value: str) -> None:
    ausweg.env(**{setting: value})
    name = setting.lower().replace("__", ".")
    refused(ausweg, f"{name} is ")


@pytest.mark.parametrize(
    ("setting", "value", "name"),
    [
        ("TELEGRAM__BOT_USERNAME", "<the bot's @username, for `ausweg link`>", "bot_username"),
        ("TELEGRAM__WEBHOOK_URL", "https://bot.example.org/telegram", "webhook_url"),
    ],
)
def test_run_refuses_template_settings(ausweg: Cli, setting: str, value: str, name: str) -> None:
    ausweg.env(**{setting: value})
    refused(ausweg, f"telegram.{name} is ")


def test_the_env_example_placeholders_are_known() -> None:
    values = example_values()
    assert {"<token from @BotFather>", "<random string>", "<password>"} <= values


@pytest.mark.parametrize("mode", [0o666, 0o640, 0o604, 0o620])
def test_run_refuses_a_key_file_readable_by_group_or_others(
    ausweg: Cli, tmp_path: Path, mode: int
) -> None:
    keys = tmp_path / "keys.json"
    keys.chmod(mode)
    refused(ausweg, f"{mode:04o}", "chmod 600")


def test_run_refuses_equal_master_and_pseudonym_keys(ausweg: Cli, tmp_path: Path) -> None:
    key = new_key()
    write_keys(tmp_path / "keys.json", master=key, pseudonym=key)
    refused(ausweg, "crypto.master_keys[1] equals crypto.pseudonym_keys[1]")


def test_equal_keys_are_found_whatever_their_spelling(ausweg: Cli, tmp_path: Path) -> None:
    key = new_key()
    write_keys(tmp_path / "keys.json", master=key, pseudonym=f" {key}\n")
    refused(ausweg, "equals")


def test_run_refuses_database_echo(ausweg: Cli) -> None:
    ausweg.env(DATABASE__ECHO="true")
    refused(ausweg, "database.echo")


def test_run_names_every_problem_on_its_own_line(ausweg: Cli, tmp_path: Path) -> None:
    key = new_key()
    write_keys(tmp_path / "keys.json", master=key, pseudonym=key).chmod(0o644)
    ausweg.env(
        DIRECTORY_PATH=str(EXAMPLE_DIRECTORY),
        DATABASE__ECHO="true",
        TELEGRAM__WEBHOOK_SECRET="<random string>",
    )
    lines = refused(ausweg)
    for needle in ("shipped example", "0644", "equals", "database.echo", "webhook_secret"):
        assert sum(needle in line for line in lines) == 1, (needle, lines)


def test_demo_mode_run_accepts_the_example_directory_but_not_unreachable_staff(
    ausweg: Cli,
) -> None:
    ausweg.env(DIRECTORY_PATH=str(EXAMPLE_DIRECTORY), MODE="demo")
    lines = refused(ausweg, "'jump'")
    assert not [line for line in lines if "example" in line]


def edit(directory: Directory, change: Callable[[dict[str, Any]], None]) -> Directory:
    data = directory.model_dump(mode="python")
    change(data)
    return Directory.model_validate(data)


def test_check_config_flags_usernames_and_referrals_without_contact(
    ausweg: Cli, directory: Directory, tmp_path: Path
) -> None:
    def change(data: dict[str, Any]) -> None:
        jump = next(p for p in data["programmes"] if p["id"] == "jump")
        jump["staff"][0]["accounts"]["telegram"] = "@jump_counsellor"

    path = production_directory(edit(telegram_directory(directory), change), tmp_path / "u.yaml")
    ausweg.env(DIRECTORY_PATH=str(path))
    code, out, _ = ausweg("check-config")
    assert code == 1
    flags = out.split("Please check:")[1].splitlines()
    assert any("'jump'" in f and "@jump_counsellor" in f and "numeric" in f for f in flags), out
    # dia-mv and betriebsberatung refer people on, but the example has no contact for them.
    assert any("'dia-mv'" in f and "no contact" in f for f in flags), out
    assert not any("'bamf'" in f for f in flags), "bamf has a phone number"
    # Its only counsellor cannot be recognised, so `run` would refuse JUMP! as unreachable.
    refusals = out.split("would refuse to start:")[1].split("Please check:")[0]
    assert [line for line in refusals.splitlines() if "'jump'" in line]
    assert "telegram: no counsellor account" in refusals
    assert "'bidaya'" not in refusals


def test_check_config_says_what_run_would_refuse(ausweg: Cli) -> None:
    ausweg.env(DIRECTORY_PATH=str(EXAMPLE_DIRECTORY))
    code, out, _ = ausweg("check-config")
    assert code == 1
    assert "self/right->jump(match)" in out  # the routing table still comes first
    refusals = out.split("would refuse to start:")[1].split("Please check:")[0]
    assert "shipped example" in refusals
    assert "'jump'" in refusals
    assert "telegram" in refusals


def test_sighup_keeps_the_directory_when_the_new_one_would_be_refused(
    ausweg: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = ausweg("run")
    assert code == 0, err
    assert ausweg.reload is not None
    used: list[Directory] = []
    monkeypatch.setattr("bot.app.App.reload_directory", lambda _app, d=None: used.append(d))
    ausweg.reload()  # the verified directory: taken
    assert len(used) == 1
    path = tmp_path / "d.yaml"
    path.write_text(
        path.read_text().replace(
            "verify_before_going_live: false", "verify_before_going_live: true"
        )
    )
    with pytest.raises(ConfigError):
        ausweg.reload()
    assert len(used) == 1, "a refused directory replaced the one in force"
