"""Fail-safe start: what ``ausweg run`` (and ``check-config``) refuse before anything is written.

Each check returns one plain line per problem, so an operator fixes everything in one
round instead of one error per restart. Nothing here touches the database, the key
store or a platform: the checks run before the first byte is written.

Refused (production):

* the example directory, or any directory still marked ``verify_before_going_live``
  (its contacts and staff are demo data: a person would be promised a programme whose
  staff never hears of them);
* a programme that takes chats but whose staff cannot be reached on any enabled
  platform (no staff room there, or no counsellor account there);
* placeholder-shaped secrets: anything in angle brackets, and the values of
  ``config/ausweg.env.example``;
* a key file that group or others may read or write;
* equal master and pseudonym keys (one leaked key must not open both);
* ``database.echo`` (SQLAlchemy prints bound parameters, pseudonyms and ids included,
  past the log redaction).
* a Matrix display name that names a programme or the topic (chat lists and lock
  screens show it with every message), or an avatar that is missing, too large or not
  an image.

``check-config`` also flags Telegram staff given as ``@username`` (the bot only ever
sees numeric ids, so such a counsellor can never act) and referral-only programmes
without any contact (a person would be referred to nothing).
"""

from __future__ import annotations

import base64
import binascii
import re
import stat
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pydantic import SecretStr

from config.directory import Directory, Programme
from config.lockscreen import names_of, problems
from config.settings import EXAMPLE_DIRECTORY, PACKAGE_DIR, ConfigError, Settings

ENV_EXAMPLE = PACKAGE_DIR / "ausweg.env.example"
#: Anything in angle brackets is a template slot, never a value.
_ANGLE = re.compile(r"<[^<>]*>")
#: Settings whose example values are secrets (a copied example must not pass).
_SECRET_NAMES = ("TOKEN", "SECRET", "PASSWORD", "PICKLE_KEY", "_KEYS")
_EXAMPLE_LINE = re.compile(r"^#?\s*(?:.*?:\s*)?(AUSWEG_[A-Z0-9_]+)=(.*)$")
#: Telegram user ids are numbers; anything else never matches a sender.
_TELEGRAM_ID = re.compile(r"^-?\d+$")
_EXAMPLE_HOST = re.compile(r"(^|[@/:.])example\.(org|com|net)\b", re.IGNORECASE)


@dataclass
class Findings:
    """What the checks found: ``refusals`` stop ``run``; ``flags`` are for ``check-config``."""

    refusals: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def raise_if_refused(self) -> None:
        """Raise one :class:`ConfigError` naming every refusal, one per line."""
        if self.refusals:
            raise ConfigError("refusing to start:\n  " + "\n  ".join(self.refusals))


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


@cache
def example_values(path: Path = ENV_EXAMPLE) -> frozenset[str]:
    """Secret values written in the env example (also inside JSON such as ``{"1": "<x>"}``)."""
    values: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _EXAMPLE_LINE.match(line.strip())
        if match is None or not any(s in match.group(1) for s in _SECRET_NAMES):
            continue
        value = match.group(2).split("  #")[0].strip().strip("'\"")
        if value:
            values.add(value)
        for slot in _ANGLE.findall(value):
            values.add(slot)
            values.add(slot[1:-1].strip())  # the slot's text with the brackets taken off
    return frozenset(v for v in values if v)


def placeholder_problem(name: str, value: str) -> str | None:
    """Why ``value`` of setting ``name`` looks like a placeholder (None: it does not)."""
    if not value:
        return None
    if _ANGLE.search(value):
        return f"{name} is a placeholder (a value in angle brackets); set the real secret"
    if value.strip() in example_values():
        return f"{name} is the value from ausweg.env.example; set the real secret"
    return None


def secret_refusals(settings: Settings) -> list[str]:
    """Placeholder-shaped secrets and equal master / pseudonym keys."""
    out: list[str] = []
    named: list[tuple[str, str]] = [
        ("telegram.token", _secret(settings.telegram.token)),
        ("telegram.webhook_secret", _secret(settings.telegram.webhook_secret)),
        ("matrix.password", _secret(settings.matrix.password)),
        ("matrix.access_token", _secret(settings.matrix.access_token)),
        ("matrix.store_pickle_key", _secret(settings.matrix.store_pickle_key)),
    ]
    for kind in ("master_keys", "pseudonym_keys"):
        keys: dict[int, SecretStr] = getattr(settings.crypto, kind)
        named += [(f"crypto.{kind}[{v}]", k.get_secret_value()) for v, k in sorted(keys.items())]
    for name, value in named:
        problem = placeholder_problem(name, value)
        if problem:
            out.append(problem)
    out += equal_key_refusals(settings)
    out += template_refusals(settings)
    return out


def _key_bytes(secret: SecretStr) -> bytes:
    """The key's bytes (so two spellings of one key compare equal), else its text."""
    value = secret.get_secret_value().strip()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


def equal_key_refusals(settings: Settings) -> list[str]:
    """A master key that is also a pseudonym key (any versions)."""
    master = {_key_bytes(k): v for v, k in settings.crypto.master_keys.items()}
    return [
        f"crypto.master_keys[{master[_key_bytes(k)]}] equals"
        f" crypto.pseudonym_keys[{v}]; every purpose needs its own key"
        for v, k in sorted(settings.crypto.pseudonym_keys.items())
        if _key_bytes(k) in master
    ]


def template_refusals(settings: Settings) -> list[str]:
    """Other settings still holding a template: a slot in angle brackets, or an
    ``example.org`` address (reserved, never a real server: RFC 2606)."""
    values = {
        "telegram.bot_username": settings.telegram.bot_username,
        "telegram.webhook_url": settings.telegram.webhook_url,
        "matrix.homeserver": settings.matrix.homeserver if settings.matrix.enabled else None,
        "matrix.user_id": settings.matrix.user_id if settings.matrix.enabled else None,
        "matrix.device_id": settings.matrix.device_id,
        "database.url": settings.database.url,
        "crypto.keystore_url": settings.crypto.keystore_url,
    }
    out = []
    for name, value in values.items():
        if value and _ANGLE.search(value):
            out.append(f"{name} is a placeholder (a value in angle brackets)")
        elif value and _EXAMPLE_HOST.search(value):
            out.append(f"{name} is the example address ({value}); set the real one")
    return out


def key_file_refusal(path: Path | None) -> str | None:
    """A key file that group or others may read or write (``chmod 600`` fixes it)."""
    if path is None:
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # reading it reports the missing file
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"key file {path} has mode {stat.S_IMODE(mode):04o}: group or others may read it;"
            f" run `chmod 600 {path}`"
        )
    return None


def enabled_platforms(settings: Settings) -> list[str]:
    """The platforms ``run`` connects to, in start order."""
    return [
        name
        for name, on in (
            ("telegram", settings.telegram.enabled),
            ("matrix", settings.matrix.enabled),
        )
        if on
    ]


def _usable(platform: str, account: str) -> bool:
    """Whether the bot can recognise this account or room (Telegram: numeric ids only)."""
    if not account.strip():
        return False
    return platform != "telegram" or bool(_TELEGRAM_ID.match(account.strip()))


def _why_unreachable(programme: Programme, platform: str) -> str | None:
    """Why the programme's staff cannot take a chat on ``platform`` (None: they can)."""
    counsellors = [
        m
        for m in programme.staff
        if m.role == "counsellor" and _usable(platform, m.accounts.get(platform, ""))
    ]
    room = programme.staff_rooms.get(platform)
    has_room = bool(room and _usable(platform, room))
    # On Matrix the bot creates a staff room for programmes with staff accounts there.
    has_room = has_room or (platform == "matrix" and bool(counsellors))
    if not has_room and not counsellors:
        return f"{platform}: no staff room and no counsellor account"
    if not has_room:
        return f"{platform}: no staff room"
    if not counsellors:
        return f"{platform}: no counsellor account"
    return None


def directory_refusals(
    directory: Directory, path: Path | None, platforms: list[str], *, demo: bool = False
) -> list[str]:
    """The example / unverified directory (not in ``demo``) and programmes nobody on
    duty can answer."""
    out: list[str] = []
    if demo:
        pass  # the demo's whole point is the example directory
    elif path is not None and _same_file(path, EXAMPLE_DIRECTORY):
        out.append(
            f"directory {path} is the shipped example (demo staff, unverified contacts);"
            " copy it, enter the real programmes and set AUSWEG_DIRECTORY_PATH"
        )
    elif directory.verify_before_going_live:
        out.append(
            f"directory {path or ''} is marked verify_before_going_live: check every entry"
            " with the programme, then set it to false"
        )
    if not platforms:
        return out
    for programme in directory.programmes:
        if not programme.chat_enabled:
            continue
        reasons = [_why_unreachable(programme, p) for p in platforms]
        if all(reasons):
            out.append(
                f"programme '{programme.id}' takes chats but its staff cannot be reached on any"
                f" enabled platform ({'; '.join(r for r in reasons if r)})"
            )
    return out


def shared_rooms(directory: Directory) -> list[str]:
    """Staff rooms that two or more programmes name: each one's staff would read the
    other's cases, and a transfer between them would stay in the same room (threat 4,
    privacy check 17). The local console is left out (the demo's one room)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for programme in directory.programmes:
        for platform, room in programme.staff_rooms.items():
            if platform != "console" and room.strip():
                seen.setdefault((platform, room.strip()), []).append(programme.id)
    return [
        f"{platform} staff room '{room}' is shared by programmes {', '.join(ids)}: each"
        " programme's counsellors would read the other's cases; give each its own room"
        for (platform, room), ids in seen.items()
        if len(ids) > 1
    ]


def directory_flags(directory: Directory) -> list[str]:
    """Mistakes ``check-config`` points out besides the refusals."""
    out: list[str] = shared_rooms(directory)
    for programme in directory.programmes:
        for member in programme.staff:
            account = member.accounts.get("telegram")
            if account is not None and not _TELEGRAM_ID.match(account.strip()):
                out.append(
                    f"programme '{programme.id}', staff '{member.id}': Telegram account"
                    f" '{account}' is not a numeric user id (usernames change and are never"
                    " seen by the bot); use the numeric id"
                )
        room = programme.staff_rooms.get("telegram")
        if room is not None and not _TELEGRAM_ID.match(room.strip()):
            out.append(
                f"programme '{programme.id}': Telegram staff room '{room}' is not a numeric chat id"
            )
        elif room is not None and not room.strip().startswith("-100"):
            # Basic groups (and private chats) have other ids; when Topics are turned on
            # (needed for a topic per case) Telegram moves a group to a new -100... id,
            # and the bot would then treat its own staff group as unknown and leave it.
            out.append(
                f"programme '{programme.id}': Telegram staff room '{room}' is not a"
                " supergroup id (-100...): turn on Topics in the group (Telegram then gives"
                " it a new id) and put the new id here"
            )
        contact = programme.contact
        if not programme.chat_enabled and not (contact.phone or contact.email or contact.web):
            out.append(
                f"programme '{programme.id}' takes no chats (no counsellor) and has no"
                " contact (phone, email or web): people routed there get nothing to go on"
            )
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and a.samefile(b))
    except OSError:
        return False


def preflight(settings: Settings, directory: Directory) -> Findings:
    """Every refusal and flag for ``settings`` with ``directory`` (keys already loaded)."""
    findings = Findings()
    production = settings.mode == "production"
    findings.refusals += directory_refusals(
        directory, settings.directory_path, enabled_platforms(settings), demo=not production
    )
    key_file = key_file_refusal(settings.crypto.key_file)
    if key_file:
        findings.refusals.append(key_file)
    findings.refusals += secret_refusals(settings)
    if settings.database.echo and production:
        findings.refusals.append(
            "database.echo is on: SQL parameters (pseudonyms, ids) would reach the log past"
            " the redaction; set AUSWEG_DATABASE__ECHO=false"
        )
    try:
        settings.check_operator()
    except ConfigError as exc:  # people are told who runs the bot before they consent
        findings.refusals.append(str(exc))
    findings.refusals += profile_refusals(settings, directory)
    findings.flags += directory_flags(directory)
    return findings


#: Avatar images the bot uploads (by suffix), and their size limit.
AVATAR_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
AVATAR_MAX_BYTES = 1_000_000


def profile_refusals(settings: Settings, directory: Directory) -> list[str]:
    """The bot's Matrix profile: a name safe for a lock screen, an avatar that can be sent."""
    ms = settings.matrix
    if not ms.enabled:
        return []
    out = []
    if ms.display_name and (found := problems(ms.display_name, "de", names_of(directory))):
        out.append(
            f"matrix.display_name gives the topic away ({', '.join(found)}): every chat list"
            " and lock screen shows it; choose a neutral name"
        )
    path = ms.avatar_path
    if path is not None:
        if path.suffix.lower() not in AVATAR_TYPES:
            out.append(f"matrix.avatar_path {path} is not a PNG, JPEG or WebP image")
        elif not path.is_file():
            out.append(f"matrix.avatar_path {path} does not exist")
        elif path.stat().st_size > AVATAR_MAX_BYTES:
            out.append(f"matrix.avatar_path {path} is larger than 1 MB")
    return out
