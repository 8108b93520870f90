"""Tests that drive python-telegram-bot for real against the fake Bot API."""
