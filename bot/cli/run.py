"""``ausweg run``: every refusal first, then the bot on the configured platforms."""

from __future__ import annotations

import gc
import logging

from bot.cli.check import preflight_settings
from bot.cli.common import stores_used
from config.directory import load_directory
from config.preflight import directory_refusals, enabled_platforms
from config.settings import ConfigError, Settings

log = logging.getLogger("bot.cli")


async def run(settings: Settings) -> int:
    """Run until stopped; SIGHUP reloads the directory (if `run` would accept it)."""
    from bot.app import App
    from bot.runner import run_until_stopped
    from bot.transports.factory import build_transports

    if not (settings.telegram.enabled or settings.matrix.enabled):
        raise ConfigError(
            "no platform enabled: set AUSWEG_TELEGRAM__ENABLED=true "
            "or AUSWEG_MATRIX__ENABLED=true (try `ausweg demo` first)"
        )
    # Every refusal before the first byte is written (database, key store, ready file).
    findings = preflight_settings(settings, load_directory(settings.directory_path))
    findings.raise_if_refused()
    for line in stores_used(settings):
        log.info("%s", " ".join(line.split()))
    app = App(settings, build_transports(settings), wait_for_sends=False)

    def reload() -> None:
        """SIGHUP: a directory `run` would refuse does not replace the one in force."""
        directory = load_directory(settings.directory_path)
        refusals = directory_refusals(
            directory,
            settings.directory_path,
            enabled_platforms(settings),
            demo=settings.mode != "production",
        )
        if refusals:
            for line in refusals:
                log.error("directory not reloaded: %s", line)
            raise ConfigError("the new directory is refused")
        app.reload_directory(directory)

    from bot.health import HealthServer, Readiness

    verdict = Readiness()
    server = None
    if settings.health.enabled:
        server = HealthServer(app, verdict, settings.health.listen, settings.health.port)
        await server.start()  # alive (/healthz) during the start already
    try:
        await run_until_stopped(
            app, ready_file=settings.data_dir / "ready", reload=reload, verdict=verdict
        )
    finally:
        if server is not None:
            await server.stop()
    # Interpreter shutdown collects the whole heap (python-telegram-bot, nio, SQLAlchemy,
    # matplotlib ...): 1-2 s of CPU after the work is done, which is what made SIGTERM
    # slow. Everything is flushed and closed by now, so nothing is left to collect.
    gc.freeze()
    return 0
