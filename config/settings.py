"""Settings from the environment (prefix ``AUSWEG_``, nested with ``__``) or a .env file.

Secrets have no defaults. Outside demo mode :func:`Settings.check_secrets` refuses
missing, short or placeholder keys (privacy check 15).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLE_DIRECTORY = PACKAGE_DIR / "directory.example.yaml"

#: Values that must never be accepted as secrets.
PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "replace-me",
        "placeholder",
        "secret",
        "default_key",
        "xxx",
        "todo",
    }
)
#: matrix-nio's built-in store pickle key.
NIO_DEFAULT_PICKLE_KEY = "DEFAULT_KEY"
KEY_BYTES = 32


class ConfigError(ValueError):
    """Raised when settings are unusable; the message says what to fix."""


class DatabaseSettings(BaseModel):
    """Where data lives. SQLite in the data folder unless a URL is given."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db",
    )
    echo: bool = False
    connect_args: dict[str, Any] = Field(default_factory=dict)


class CryptoSettings(BaseModel):
    """Keys live outside the database. Versions allow rotation without downtime.

    ``master_keys`` wrap the per-contact / per-case data keys; ``pseudonym_keys``
    key the HMAC that turns platform ids into pseudonyms. The highest version is
    current. Values are 32 random bytes, base64.
    """

    master_keys: dict[int, SecretStr] = Field(default_factory=dict)
    pseudonym_keys: dict[int, SecretStr] = Field(default_factory=dict)
    key_file: Path | None = Field(
        default=None, description="JSON keyring with master_keys / pseudonym_keys (mode 0600)"
    )
    keystore_url: str | None = Field(
        default=None,
        description="database of the wrapped data keys; default: keys.db in the data folder."
        " Keep it apart from the main database's backups (crypto-shredding).",
    )


class TelegramSettings(BaseModel):
    """Telegram Bot API connection."""

    enabled: bool = False
    token: SecretStr | None = None
    bot_username: str | None = Field(default=None, description="for deep links (ausweg link)")
    base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: SecretStr | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    poll_timeout: int = 30
    concurrency: int = Field(8, ge=1, le=64, description="updates handled at the same time")
    http_backend: Literal["httpx", "aiohttp"] = Field(
        "aiohttp", description="aiohttp: 2-3x less CPU per Bot API call (docs/PERFORMANCE.md)"
    )
    group_per_minute: int = Field(20, ge=1, description="messages per minute into one group")
    unknown_members: Literal["remove", "report"] = Field(
        "remove",
        description="an account that is not staff joins a staff group: remove it, or only"
        " report it (the coordinators are told either way)",
    )


class MatrixSettings(BaseModel):
    """Matrix homeserver connection and the encrypted crypto store."""

    enabled: bool = False
    homeserver: str | None = None
    user_id: str | None = None
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_id: str | None = None
    store_path: Path | None = None
    store_pickle_key: SecretStr | None = None
    admin_purge: bool = Field(
        False, description="the bot account is an admin of its own Synapse: rooms it forgets"
        " after retention are also purged from the server (admin API)",
    )
    reaction_shortcuts: bool = Field(
        False,
        description="in people's chats, too, offer answers as 1️⃣ 2️⃣ ... reactions (staff"
        " rooms always do); off: Element sends reactions unencrypted, so the homeservers"
        " would see which number a person tapped",
    )
    display_name: str | None = Field(
        "Ausweg",
        max_length=64,
        description="the bot account's display name, set at every start when it differs"
        " (what chat lists and notifications show; it must not give the topic away);"
        " empty: leave the profile as it is",
    )
    avatar_path: Path | None = Field(
        None,
        description="an image (PNG, JPEG, WebP, at most 1 MB) uploaded once as the bot's"
        " avatar; uploaded again only when the file changes",
    )


class HealthSettings(BaseModel):
    """The HTTP server for /healthz, /readyz and /metrics (bot/health.py)."""

    enabled: bool = True
    listen: str = Field("127.0.0.1", description="keep it on localhost unless a monitor needs it")
    port: int = Field(9090, ge=0, le=65535, description="0: any free port (tests)")


class RetentionSettings(BaseModel):
    """How long each stage keeps data. Defaults follow docs/PRIVACY.md."""

    intake_hours: int = Field(48, description="abandoned intake conversations")
    held_message_days: int = Field(14, description="messages waiting for a counsellor")
    inactive_case_days: int = Field(90, description="open case without activity")
    inactivity_warning_days: int = Field(
        7,
        description="warn the person and the counsellor this many days before an inactive"
        " case is closed (outcome no_contact) and its data erased",
    )
    closed_grace_days: int = Field(0, description="re-contact window after closing")
    dedup_hours: int = Field(48, description="ids of processed updates")
    vanish_hours: int = Field(48, description="Telegram message ids kept for /vanish")


#: Days a statistics event (``case_events``: categories and a day, no personal data)
#: is kept; the funder report counts over them. Fixed, not a setting.
STATS_DAYS = 3 * 365


class OperatorSettings(BaseModel):
    """Who runs this bot: the controller (Art. 4(7) GDPR) every person is told about
    before consent, with a data-protection contact and the full privacy notice."""

    model_config = ConfigDict(frozen=True)

    name: str | None = Field(default=None, description="controller, e.g. the association")
    privacy_contact: str | None = Field(
        default=None, description="data-protection contact (e-mail or postal address)"
    )
    privacy_url: str | None = Field(default=None, description="the full privacy notice (https)")


#: Shown in the demo only: clearly not a real controller (production refuses them).
DEMO_OPERATOR = OperatorSettings(
    name="DEMO – kein echter Betreiber / not a real operator",
    privacy_contact="datenschutz@demo.invalid (DEMO)",
    privacy_url="https://demo.invalid/datenschutz (DEMO)",
)
#: Parts of the example controller in docs/OPERATIONS.md and ausweg.env.example (and the
#: reserved example domains): an operator who copies the example must not tell people an
#: invented controller runs the bot.
EXAMPLE_OPERATOR_MARKS = (
    "beispielverein",
    "musterstraße",
    "musterstrasse",
    "musterstadt",
    "example.org",
    "example.com",
    "example.net",
)


class Settings(BaseSettings):
    """All settings. Read from ``AUSWEG_*`` variables and an optional ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="AUSWEG_",
        env_nested_delimiter="__",
        env_file=os.environ.get("AUSWEG_ENV_FILE", ".env"),
        extra="ignore",
    )

    mode: Literal["production", "demo"] = "production"
    data_dir: Path = Path("data")
    directory_path: Path = EXAMPLE_DIRECTORY
    log_level: str = "INFO"
    default_locale: Literal["de", "en"] = "de"
    relay_attachments: bool = Field(
        False, description="copy photos / voice / files between person and counsellor"
        " once a case is claimed (never stored); off: people are asked to write text",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    crypto: CryptoSettings = Field(default_factory=CryptoSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    matrix: MatrixSettings = Field(default_factory=MatrixSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)

    def controller(self) -> OperatorSettings:
        """The operator as told to people; in the demo, missing values are demo values."""
        if self.mode != "demo":
            return self.operator
        return OperatorSettings(
            **{
                name: getattr(self.operator, name) or getattr(DEMO_OPERATOR, name)
                for name in OperatorSettings.model_fields
            }
        )

    def check_operator(self) -> None:
        """Refuse a production start that cannot tell people who runs it.

        Raises:
            ConfigError: naming the setting to fix.
        """
        if self.mode == "demo":
            return
        for name in OperatorSettings.model_fields:
            value = (getattr(self.operator, name) or "").strip()
            demo = getattr(DEMO_OPERATOR, name)
            documented = any(mark in value.lower() for mark in EXAMPLE_OPERATOR_MARKS)
            if value.lower() in PLACEHOLDERS or value == demo or ".invalid" in value or documented:
                raise ConfigError(
                    f"operator.{name} is missing, a placeholder or the documented example: set "
                    f"AUSWEG_OPERATOR__{name.upper()} (people are told who runs the bot before "
                    "they consent)"
                )
        url = (self.operator.privacy_url or "").strip()
        if not url.startswith("https://"):
            raise ConfigError("operator.privacy_url must be the https:// address of the notice")

    @property
    def database_url(self) -> str:
        """The configured URL, or SQLite in the data folder."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ausweg.db').resolve()}"

    @property
    def keystore_url(self) -> str:
        """The key store's URL (SQLite file in the data folder unless set)."""
        if self.crypto.keystore_url:
            return self.crypto.keystore_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'keys.db').resolve()}"

    def load_key_file(self) -> None:
        """Merge keys from ``crypto.key_file`` (if set) into the settings."""
        path = self.crypto.key_file
        if path is None:
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read key file {path}: {exc}") from exc
        for name in ("master_keys", "pseudonym_keys"):
            section = raw.get(name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"key file {path}: '{name}' must be an object")
            merged = dict(getattr(self.crypto, name))
            merged.update({int(k): SecretStr(str(v)) for k, v in section.items()})
            setattr(self.crypto, name, merged)

    def check_secrets(self) -> None:
        """Refuse missing or placeholder secrets (outside demo mode too for keys in use).

        Raises:
            ConfigError: naming the setting to fix.
        """
        for name in ("master_keys", "pseudonym_keys"):
            keys: dict[int, SecretStr] = getattr(self.crypto, name)
            if not keys:
                raise ConfigError(
                    f"crypto.{name} is missing: set AUSWEG_CRYPTO__{name.upper()}"
                    " or crypto.key_file (generate with `ausweg keys generate`)"
                )
            for version, secret in keys.items():
                decode_key(secret.get_secret_value(), f"crypto.{name}[{version}]")
        if self.telegram.enabled:
            _require(self.telegram.token, "telegram.token")
            if self.telegram.mode == "webhook":
                _require(self.telegram.webhook_secret, "telegram.webhook_secret")
        if self.matrix.enabled:
            _require(self.matrix.store_pickle_key, "matrix.store_pickle_key")
            if not (self.matrix.password or self.matrix.access_token):
                raise ConfigError("matrix needs matrix.password or matrix.access_token")


def _require(secret: SecretStr | None, name: str) -> None:
    value = secret.get_secret_value() if secret else ""
    if value.strip().lower() in PLACEHOLDERS or value == NIO_DEFAULT_PICKLE_KEY:
        raise ConfigError(f"{name} is missing or a placeholder; set a real secret")
    if len(value) < 16:
        raise ConfigError(f"{name} is too short to be a real secret")


def decode_key(value: str, name: str = "key") -> bytes:
    """Decode a base64 key and refuse placeholders, wrong lengths and trivial bytes."""
    if value.strip().lower() in PLACEHOLDERS:
        raise ConfigError(f"{name} is a placeholder; generate a key with `ausweg keys generate`")
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{name} must be {KEY_BYTES} bytes, got {len(key)}")
    if len(set(key)) < 8:
        raise ConfigError(f"{name} looks like a placeholder (too few distinct bytes)")
    return key


def new_key() -> str:
    """A fresh random key, base64."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def ensure_demo_keys(settings: Settings) -> Path:
    """Create (once) a demo keyring in the data folder with mode 0600 and use it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = settings.data_dir / "demo-keys.json"
    if not path.exists():
        payload = json.dumps(
            {"master_keys": {"1": new_key()}, "pseudonym_keys": {"1": new_key()}}, indent=2
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
    settings.crypto.key_file = path
    return path
