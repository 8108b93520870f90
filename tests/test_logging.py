"""The redaction filter: no tokens, ids or exception texts in log output."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logsetup import NOISY, redact, setup_logging


@pytest.mark.parametrize(
    ("raw", "gone"),
    [
        (
            "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe",
            "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        ),
        ("user @alice:example.org joined", "@alice:example.org"),
        ("room !abcdef:example.org", "!abcdef:example.org"),
        ("chat 987654321 said", "987654321"),
        ("mail max@example.de now", "max@example.de"),
        ("https://x/?access_token=syt_secret_value&x=1", "syt_secret_value"),
    ],
)
def test_redact_removes_identifiers(raw: str, gone: str) -> None:
    assert gone not in redact(raw)


def test_exception_messages_are_dropped_but_types_kept() -> None:
    buf = io.StringIO()
    handler = setup_logging("DEBUG", stream=buf)
    try:
        try:
            raise ValueError("secret text of a person 4711")
        except ValueError:
            logging.getLogger("bot.test").exception("failed for user %s", 123456789)
    finally:
        logging.getLogger().removeHandler(handler)
    out = buf.getvalue()
    assert "ValueError" in out
    assert "secret text" not in out
    assert "123456789" not in out
    assert "values removed" in out


def test_noisy_libraries_are_capped_even_at_debug() -> None:
    handler = setup_logging("DEBUG", stream=io.StringIO())
    try:
        for name in NOISY:
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
    finally:
        logging.getLogger().removeHandler(handler)
