"""Build the transports enabled in the settings (imports platform libraries lazily)."""

from __future__ import annotations

from bot.transports.base import Transport
from config.settings import Settings


def build_transports(settings: Settings) -> list[Transport]:
    """The enabled platform transports, in start order."""
    transports: list[Transport] = []
    if settings.telegram.enabled:
        from bot.transports.telegram import TelegramTransport

        transports.append(TelegramTransport.from_settings(settings))
    if settings.matrix.enabled:
        from bot.transports.matrix import MatrixTransport

        transports.append(MatrixTransport.from_settings(settings))
    return transports
