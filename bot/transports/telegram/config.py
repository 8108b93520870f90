"""The Telegram transport's settings and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from config.settings import ConfigError, Settings


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """Everything the transport needs (built from :class:`config.settings.TelegramSettings`).

    Attributes:
        token: the bot token.
        base_url: Bot API root (``https://api.telegram.org`` or a self-hosted server).
        mode: ``polling`` or ``webhook``.
        webhook_url: public URL Telegram posts to; its path is served.
        webhook_listen / webhook_port: where the webhook server listens.
        webhook_secret: expected ``X-Telegram-Bot-Api-Secret-Token``.
        connect_timeout / read_timeout / write_timeout / pool_timeout: HTTP timeouts (s).
        poll_timeout: long-poll timeout of ``getUpdates`` (s).
        rate_limit: throttle within Telegram's limits (off only for tests/benchmarks).
        overall_per_second / group_per_minute: the throttle's limits.
        concurrency: updates handled at the same time (one chat is always sequential).
        network_retries: attempts after a network error before a send is given up.
        flood_retries: 429 answers tolerated per call before it is given up.
        handler_retries: attempts for an update whose handler raised.
        backoff_base / backoff_max: exponential back-off bounds (s).
        set_commands: publish the command menus at start.
        connection_pool_size: HTTP connections for sending.
        stop_timeout: how long stop waits for in-flight updates (s).
        http_backend: PTB's request class: ``aiohttp`` (:mod:`.aiohttp_request`; 2-3x
            less CPU per Bot API call, about half of the pipeline's CPU per relayed message
            less; see docs/PERFORMANCE.md) or ``httpx`` (PTB's default).
        unknown_members: what happens when an account that is not staff joins a staff
            group: ``remove`` it (ban and unban) or only ``report`` it; the
            coordinators are told either way.
    """

    token: str = field(repr=False)
    base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    poll_timeout: int = 30
    rate_limit: bool = True
    overall_per_second: float = 30.0
    group_per_minute: float = 20.0
    concurrency: int = 8
    network_retries: int = 6
    flood_retries: int = 30
    handler_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    set_commands: bool = True
    connection_pool_size: int = 32
    stop_timeout: float = 30.0
    http_backend: Literal["aiohttp", "httpx"] = "aiohttp"
    unknown_members: Literal["remove", "report"] = "remove"

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramConfig:
        """Read ``settings.telegram``."""
        tg = settings.telegram
        if tg.token is None:
            raise ConfigError("telegram.token is missing")
        return cls(
            token=tg.token.get_secret_value(),
            base_url=tg.base_url,
            mode=tg.mode,
            webhook_url=tg.webhook_url,
            webhook_listen=tg.webhook_listen,
            webhook_port=tg.webhook_port,
            webhook_secret=tg.webhook_secret.get_secret_value() if tg.webhook_secret else None,
            connect_timeout=tg.connect_timeout,
            read_timeout=tg.read_timeout,
            write_timeout=tg.write_timeout,
            pool_timeout=tg.pool_timeout,
            poll_timeout=tg.poll_timeout,
            concurrency=tg.concurrency,
            http_backend=tg.http_backend,
            group_per_minute=tg.group_per_minute,
            unknown_members=tg.unknown_members,
        )


@dataclass(slots=True)
class TelegramStats:
    """Counters (no ids): what came in, what was skipped, what went out."""

    received: int = 0
    handled: int = 0
    ignored: int = 0
    malformed: int = 0
    rejected: int = 0
    failed: int = 0
    sent: int = 0
    send_failures: int = 0
    #: Sends given back to the core because the Bot API was unreachable (it retries).
    send_later: int = 0
    flood_waits: int = 0
    network_retries: int = 0
    #: Accounts that joined a staff group without being staff (removed or reported).
    outsiders: int = 0
