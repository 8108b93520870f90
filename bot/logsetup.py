"""Logging that cannot leak: a redaction filter and quiet third-party loggers.

No ids, names, message text or tokens at any level. The core never formats
such values into log messages; this filter is the second line of defence for
third-party libraries and exception text.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

_PATTERNS = (
    (re.compile(r"bot\d+:[A-Za-z0-9_-]{20,}"), "bot<token>"),
    (re.compile(r"\b\d+:[A-Za-z0-9_-]{30,}\b"), "<token>"),
    (re.compile(r"(?i)(access_token|password|secret|token)=[^&\s\"']+"), r"\1=<redacted>"),
    (re.compile(r"@[A-Za-z0-9._=/+-]+:[A-Za-z0-9.-]+(:\d+)?"), "<mxid>"),
    (re.compile(r"![A-Za-z0-9._=/+-]+:[A-Za-z0-9.-]+"), "<room>"),
    (re.compile(r"\$[A-Za-z0-9_+/-]{20,}"), "<event>"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"-?\b\d{5,}\b"), "<num>"),
)
#: Loggers that print whole updates, URLs with tokens or request bodies when verbose.
NOISY = (
    "httpx",
    "httpcore",
    "telegram",
    "nio",
    "aiohttp.access",
    "apscheduler",
    "peewee",
    "sqlalchemy.engine",
    "aiosqlite",
    "asyncio",
    "alembic",
    "pymorphy3",
)
#: Loggers that put message content into errors (matrix-nio logs a whole invalid event,
#: body and sender included, at ERROR): silenced; the transports log by type only.
SILENT = ("nio",)


def redact(text: str) -> str:
    """Replace identifiers and secrets in a string."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """Formats the message once, redacts it, and drops exception messages (types stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not crash logging
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            exc_type = record.exc_info[0]
            record.exc_text = self._safe_traceback(record.exc_info)
            record.exc_info = None
            record.msg += f" [{exc_type.__name__ if exc_type else 'Exception'}]"
        return True

    @staticmethod
    def _safe_traceback(exc_info: Any) -> str:
        import traceback

        frames = traceback.extract_tb(exc_info[2])
        lines = [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
        name = exc_info[0].__name__ if exc_info[0] else "Exception"
        return "Traceback (values removed):\n" + "\n".join(lines) + f"\n{name}"


def setup_logging(level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Install one redacting handler on the root logger; quiet noisy libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_ausweg", False):
            root.removeHandler(old)
    handler._ausweg = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in SILENT:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    return handler
