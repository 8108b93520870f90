"""Privacy check 1: sentinel ids and texts never reach database files or logs."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

from bot.app import App
from bot.logsetup import setup_logging
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory
from tests.conftest import OFFICE_TIME, make_settings, memory_directory

USER_ID = 7319046528
TEXTS = ("SentinelHeldText-q8Zr", "SentinelRelayText-Lm3x", "SentinelCounsellorText-Vb7k")


def encodings(value: str | int) -> list[bytes]:
    """The forms a value could take in a file: raw, hex, base64, and integer bytes."""
    raw = str(value).encode()
    forms = [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
    ]
    if isinstance(value, int):
        forms += [
            format(value, "x").encode(),
            value.to_bytes(8, "big"),
            value.to_bytes(8, "little"),
        ]
    return forms


def find(blob: bytes, value: str | int) -> list[bytes]:
    return [form for form in encodings(value) if form in blob]


async def test_no_sentinel_in_database_files_or_debug_logs(
    tmp_path: Path, directory: Directory
) -> None:
    buf = io.StringIO()
    handler = setup_logging("DEBUG", stream=buf)
    settings = make_settings(tmp_path / "data")
    transport = MemoryTransport()
    app = App(
        settings, [transport], clock=FakeClock(OFFICE_TIME), directory=memory_directory(directory)
    )
    await app.start()
    who = str(USER_ID)
    try:
        for step in (
            "/start",
            "b:consent:yes",
            "b:safety:no",
            "b:audience:self",
            "b:scene:right",
            "b:state:MV",
            "b:district:skip",
            "b:prison:no",
            "b:language:de",
            TEXTS[0],
        ):
            if step.startswith("b:"):
                await transport.push(who, button=step[2:])
            else:
                await transport.push(who, step)
        await transport.push("counsellor", "/queue", chat="staff", group=True)
        code = next(
            b.data.split(":")[1]
            for m in transport.sent
            for b in m.flat_buttons
            if b.data.startswith("claim:")
        )
        await transport.push("counsellor", f"/claim {code}", chat="staff", group=True)
        await transport.push(who, TEXTS[1])
        # A plain staff room (no topics): the case is named (plain text is not relayed there).
        await transport.push("counsellor", f"/r {code} {TEXTS[2]}", chat="staff", group=True)
        delivered = [m.text for m in transport.sent]
        assert any(TEXTS[0] in t for t in delivered), "held text reached the counsellor"
        assert any(TEXTS[1] in t for t in delivered)
        assert any(TEXTS[2] in t for t in delivered)
        logging.getLogger("bot.router").debug("debug logging is on")
    finally:
        await app.stop()
        logging.getLogger().removeHandler(handler)

    files = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("ausweg.db")]
    assert files, "database files exist"
    log_text = buf.getvalue()
    assert "debug logging is on" in log_text
    for value in (USER_ID, *TEXTS):
        for path in files:
            assert find(path.read_bytes(), value) == [], f"{value!r} in {path.name}"
        assert find(log_text.encode(), value) == [], f"{value!r} in logs"
