"""Run the bot from the environment until SIGTERM / SIGINT, like ``ausweg run``.

Used by the crash test (``python -m tests.telegram.run_bot``): ``ausweg run`` does
not start platform transports yet.
"""

from __future__ import annotations

import asyncio
import signal

from bot.app import App
from bot.logsetup import setup_logging
from bot.transports.factory import build_transports
from config.settings import Settings


async def main() -> None:
    settings = Settings()
    setup_logging(settings.log_level)
    app = App(settings, build_transports(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main())
