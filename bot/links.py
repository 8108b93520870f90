"""Deep links with opaque referral codes: preselect a programme, count the outreach source.

``ausweg link --programme jump --source poster-schwerin`` stores a random code
(no meaning inside it), prints ``https://t.me/<bot>?start=<code>`` and writes a QR
code PNG for posters and flyers. The source is kept for statistics only.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import qrcode
from qrcode.image.pure import PyPNGImage

from config.clock import hour
from config.directory import Directory
from storage.db import Database
from storage.models import Referral

_SOURCE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class LinkError(ValueError):
    """The request for a link cannot be met; the message says why."""


@dataclass(frozen=True, slots=True)
class Link:
    """A created referral link."""

    code: str
    url: str
    qr_path: Path | None


def new_code() -> str:
    """An opaque code (Telegram allows A-Z, a-z, 0-9, _ and - up to 64 characters)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(10))


async def create_link(
    db: Database,
    directory: Directory,
    *,
    programme: str,
    source: str,
    bot_username: str,
    now: datetime,
    valid_days: int = 730,
    qr_path: Path | None = None,
) -> Link:
    """Store a referral code and return its t.me link (and QR code file)."""
    if programme not in directory.by_id:
        raise LinkError(f"unknown programme '{programme}' (see `ausweg check-config`)")
    if not _SOURCE.match(source):
        raise LinkError("source: lowercase letters, digits and '-' only, e.g. poster-schwerin")
    username = bot_username.lstrip("@")
    if not re.match(r"^[A-Za-z0-9_]{5,32}$", username):
        raise LinkError("set AUSWEG_TELEGRAM__BOT_USERNAME to the bot's @username")
    code = new_code()
    async with db.transaction() as s:
        s.add(
            Referral(
                code=code,
                programme_id=programme,
                source=source,
                delete_after=hour(now) + timedelta(days=valid_days),
            )
        )
    url = f"https://t.me/{username}?start={code}"
    if qr_path is not None:
        qr_path.parent.mkdir(parents=True, exist_ok=True)
        image = qrcode.make(url, image_factory=PyPNGImage, box_size=10, border=4)
        with qr_path.open("wb") as fh:
            image.save(fh)
    return Link(code, url, qr_path)
