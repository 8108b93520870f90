"""Telegram transport (python-telegram-bot 22): see :mod:`bot.transports.telegram.transport`."""

from bot.transports.telegram.config import TelegramConfig, TelegramStats
from bot.transports.telegram.limiter import FloodLimiter
from bot.transports.telegram.transport import TelegramTransport

__all__ = ["FloodLimiter", "TelegramConfig", "TelegramStats", "TelegramTransport"]
