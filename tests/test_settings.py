"""Settings refuse missing and placeholder secrets (privacy check 15)."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from config.settings import (
    ConfigError,
    CryptoSettings,
    MatrixSettings,
    Settings,
    TelegramSettings,
    ensure_demo_keys,
    new_key,
)


def good() -> CryptoSettings:
    return CryptoSettings(
        master_keys={1: SecretStr(new_key())}, pseudonym_keys={1: SecretStr(new_key())}
    )


def make(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg, arg-type]


def test_valid_keys_pass() -> None:
    make(crypto=good()).check_secrets()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "changeme",
        "CHANGE_ME",
        base64.b64encode(b"\0" * 32).decode(),
        base64.b64encode(b"short").decode(),
        "not base64 !!!",
        base64.b64encode(b"ab" * 16).decode(),
    ],
)
def test_placeholder_or_bad_keys_are_refused(value: str) -> None:
    crypto = good()
    crypto.master_keys = {1: SecretStr(value)}
    with pytest.raises(ConfigError, match="master_keys"):
        make(crypto=crypto).check_secrets()


def test_missing_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="missing"):
        make().check_secrets()


def test_telegram_token_and_webhook_secret_required() -> None:
    with pytest.raises(ConfigError, match=r"telegram\.token"):
        make(crypto=good(), telegram=TelegramSettings(enabled=True)).check_secrets()
    tg = TelegramSettings(enabled=True, token=SecretStr("123456:" + "A" * 35), mode="webhook")
    with pytest.raises(ConfigError, match="webhook_secret"):
        make(crypto=good(), telegram=tg).check_secrets()


@pytest.mark.parametrize("pickle_key", [None, "DEFAULT_KEY", "changeme", "short"])
def test_matrix_store_pickle_key_default_is_refused(pickle_key: str | None) -> None:
    mx = MatrixSettings(
        enabled=True,
        password=SecretStr("a-long-password-123"),
        store_pickle_key=SecretStr(pickle_key) if pickle_key else None,
    )
    with pytest.raises(ConfigError, match="store_pickle_key"):
        make(crypto=good(), matrix=mx).check_secrets()


def test_nested_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = new_key()
    monkeypatch.setenv("AUSWEG_CRYPTO__MASTER_KEYS", json.dumps({"3": key}))
    monkeypatch.setenv("AUSWEG_RETENTION__INTAKE_HOURS", "12")
    monkeypatch.setenv("AUSWEG_DATABASE__URL", "sqlite+aiosqlite:///x.db")
    s = make()
    assert s.crypto.master_keys[3].get_secret_value() == key
    assert s.retention.intake_hours == 12
    assert s.database_url == "sqlite+aiosqlite:///x.db"
    assert key not in repr(s)


def test_demo_keys_are_private_and_stable(tmp_path: Path) -> None:
    s = make(data_dir=tmp_path / "d", mode="demo")
    path = ensure_demo_keys(s)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    s.load_key_file()
    s.check_secrets()
    first = s.crypto.master_keys[1].get_secret_value()
    s2 = make(data_dir=tmp_path / "d", mode="demo")
    ensure_demo_keys(s2)
    s2.load_key_file()
    assert s2.crypto.master_keys[1].get_secret_value() == first


def test_broken_key_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text("{not json")
    s = make(crypto=CryptoSettings(key_file=bad))
    with pytest.raises(ConfigError, match="cannot read key file"):
        s.load_key_file()


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += _env_names(kind, f"{env}__")
        else:
            names.append(env)
    return names


def test_every_setting_is_in_the_env_example() -> None:
    """The operator's reference (config/ausweg.env.example) names every variable."""
    example = (Path(__file__).resolve().parents[1] / "config" / "ausweg.env.example").read_text(
        encoding="utf-8"
    )
    names = _env_names(Settings, "AUSWEG_")
    assert "AUSWEG_MATRIX__STORE_PICKLE_KEY" in names  # the walk reaches nested settings
    assert [n for n in names if not re.search(rf"\b{n}=", example)] == []
