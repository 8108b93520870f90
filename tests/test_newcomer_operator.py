"""Newcomer runs (2026-11-29): a new operator at a small NGO following README and
docs/OPERATIONS.md. OPERATIONS 2a says `ausweg run` refuses controller details that are
"missing, a placeholder or a demo value"; the documentation's own example values pass."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from config.settings import ConfigError, CryptoSettings, OperatorSettings, Settings, new_key

#: Copied verbatim from docs/OPERATIONS.md section 2a and config/ausweg.env.example.
DOCUMENTED = {
    "name": "Beispielverein e.V., Musterstraße 1, 12345 Musterstadt",
    "privacy_contact": "datenschutz@beispielverein.de",
    "privacy_url": "https://beispielverein.de/ausweg/datenschutz",
}


def settings(**operator: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        mode="production",
        crypto=CryptoSettings(
            master_keys={1: SecretStr(new_key())}, pseudonym_keys={1: SecretStr(new_key())}
        ),
        operator=OperatorSettings(**operator),
    )


def test_newcomer_the_documented_example_controller_is_refused() -> None:
    """An operator who copies config/ausweg.env.example and only fills in the token and
    key file starts the bot; every person is then told "Diesen Chat betreibt
    Beispielverein e.V., Musterstraße 1, 12345 Musterstadt. Fragen zum Datenschutz:
    datenschutz@beispielverein.de" - an invented controller, before they consent."""
    with pytest.raises(ConfigError, match="operator"):
        settings(**DOCUMENTED).check_operator()
