"""Receiving by webhook: Telegram POSTs each update; 200 only once it returned.

The secret header is checked in constant time; the update goes into its chat's lane
(:mod:`.receiving`) and the answer waits until the core returned for it, so a crash
before that makes Telegram deliver it again.
"""

from __future__ import annotations

import hmac
import json
import logging
from functools import partial
from urllib.parse import urlsplit

from aiohttp import web

from bot.transports.telegram.calls import BotCalls
from bot.transports.telegram.config import TelegramConfig
from bot.transports.telegram.receiving import Receiver
from bot.transports.telegram.updates import ALLOWED_UPDATES, update_id_of
from config.settings import ConfigError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
#: Largest webhook body accepted (updates are a few KiB).
MAX_BODY = 1024 * 1024


class WebhookServer:
    """The HTTP server Telegram posts updates to."""

    def __init__(self, config: TelegramConfig, calls: BotCalls, receiver: Receiver) -> None:
        self.config = config
        self._calls = calls
        self._receiver = receiver
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen (kept over a retried start), then tell Telegram the URL."""
        c = self.config
        if not c.webhook_url or not c.webhook_secret:
            raise ConfigError("webhook mode needs telegram.webhook_url and telegram.webhook_secret")
        path = urlsplit(c.webhook_url).path or "/"
        if self._runner is None:  # a retried start keeps the listening server
            app = web.Application(client_max_size=MAX_BODY)
            app.router.add_post(path, self._on_webhook)
            runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=c.stop_timeout
            )
            await runner.setup()
            await web.TCPSite(runner, c.webhook_listen, c.webhook_port).start()
            self._runner = runner
        # The server listens before Telegram is told about it.
        calls = self._calls
        await calls.call(
            partial(
                calls.bot.set_webhook,
                url=c.webhook_url,
                secret_token=c.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=False,
            ),
            what="setWebhook",
        )

    async def stop(self) -> None:
        """Close the server; waits for the requests in hand."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        """Check the secret, handle the update, answer 200 only after the core returned."""
        receiver = self._receiver
        secret = (self.config.webhook_secret or "").encode()
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not secret or not hmac.compare_digest(given, secret):
            receiver.stats.rejected += 1
            log.warning("webhook request without the right secret refused")
            return web.Response(status=403)
        if receiver.stopping.is_set():
            return web.Response(status=503)  # Telegram delivers it again later
        try:
            raw = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            receiver.stats.malformed += 1
            log.warning("skipped a webhook body that is not JSON")
            return web.Response(status=200)
        receiver.stats.received += 1
        incoming = receiver.parse(raw, update_id_of(raw))
        if incoming is not None and not await receiver.handle_now(incoming):
            return web.Response(status=503)  # stopping: not taken on, delivered again later
        return web.Response(status=200)
