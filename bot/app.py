"""Composition root: settings -> database -> vault -> directory -> router -> transports.

Start order: check secrets, migrate, build the core, start transports. Stop
order is the reverse; a transport is stopped before the database closes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.clock import Clock, SystemClock
from bot.messages import InboundMessage, OutboundMessage, Platform
from bot.router import Router
from bot.transports.base import Transport
from config.directory import Directory, load_directory
from config.settings import Settings, decode_key
from storage.db import Database
from storage.migrate import upgrade
from storage.vault import Vault

log = logging.getLogger(__name__)


def build_vault(settings: Settings) -> Vault:
    """The vault from the configured keys (already checked)."""
    return Vault(
        {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.master_keys.items()},
        {v: decode_key(k.get_secret_value()) for v, k in settings.crypto.pseudonym_keys.items()},
    )


class App:
    """The running bot: owns the database, the core and the transports."""

    def __init__(
        self,
        settings: Settings,
        transports: Sequence[Transport] = (),
        clock: Clock | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.transports: dict[Platform, Transport] = {t.platform: t for t in transports}
        self._directory = directory
        self.db: Database | None = None
        self.router: Router | None = None
        self.dropped = 0

    async def start(self) -> None:
        """Check configuration, migrate, build the core and start the transports."""
        self.settings.load_key_file()
        self.settings.check_secrets()
        directory = self._directory or load_directory(self.settings.directory_path)
        self.db = Database(
            self.settings.database_url,
            echo=self.settings.database.echo,
            connect_args=self.settings.database.connect_args,
        )
        await upgrade(self.db.engine)
        self.router = Router(
            self.db, build_vault(self.settings), directory, self.settings.retention, self.clock
        )
        for transport in self.transports.values():
            await transport.start(self.on_message)
        log.info("ready: %d transport(s)", len(self.transports))

    async def stop(self) -> None:
        """Stop transports, then close the database."""
        for transport in reversed(list(self.transports.values())):
            try:
                await transport.stop()
            except Exception:
                log.exception("transport %s did not stop cleanly", transport.platform)
        if self.db is not None:
            await self.db.dispose()
            self.db = None

    async def on_message(self, msg: InboundMessage) -> None:
        """Handle one inbound message and deliver the replies (after the commit)."""
        if self.router is None:
            raise RuntimeError("app not started")
        for out in await self.router.handle(msg):
            await self.deliver(out)

    async def deliver(self, out: OutboundMessage) -> None:
        """Send through the transport of the address's platform."""
        transport = self.transports.get(out.address.platform)
        if transport is None:
            self.dropped += 1
            log.warning("no transport for %s; message not sent", out.address.platform.value)
            return
        try:
            await transport.send(out)
        except Exception as exc:
            log.error("sending failed on %s: %s", out.address.platform.value, type(exc).__name__)
