"""Test-suite of Ausweg (a package, so tests/telegram does not shadow python-telegram-bot)."""
