"""The ``ausweg`` command: demo, run, check-config, migrate, keys, purge, privacy-report."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.links import LinkError
from config.directory import Directory, DirectoryError, load_directory
from config.preflight import Findings, directory_refusals, enabled_platforms, preflight
from config.settings import EXAMPLE_DIRECTORY, ConfigError, Settings, ensure_demo_keys, new_key
from config.vocabulary import STATES, Audience, Incident, Scene
from handlers.routing import Profile, route
from storage.backup import BackupError

if TYPE_CHECKING:
    from storage.db import Database
    from storage.keystore import KeyStore

log = logging.getLogger(__name__)


def stores_used(settings: Settings) -> list[str]:
    """Which database, key store and data folder the settings point at (no passwords)."""
    from storage.db import display_url

    return [
        f"database:    {display_url(settings.database_url)}",
        f"key store:   {display_url(settings.keystore_url)}",
        f"data folder: {settings.data_dir.resolve()}",
    ]


def _say_stores(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Tell the operator which stores a command works on (stderr: stdout stays parseable)."""
    print("\n".join(stores_used(settings)), file=stream or sys.stderr)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "directory", None):
        settings.directory_path = Path(args.directory)
    return settings


#: The demo's own folder (database, key store, demo keys), never the configured one.
DEMO_DIR = Path("ausweg-demo")


def demo_refusals(settings: Settings, folder: Path) -> list[str]:
    """Settings that point at a real installation: the demo must not run next to them.

    The demo writes keys, a key store and a demo contact; in a folder with a production
    ``.env`` (or ``AUSWEG_*`` variables) it would write them into the real data.
    """
    found = []
    if settings.database.url:
        found.append(f"a database ({settings.database.url.split('://', 1)[0]}://...)")
    if settings.crypto.keystore_url:
        found.append("a key store URL")
    if settings.crypto.key_file or settings.crypto.master_keys:
        found.append("real keys")
    if "data_dir" in settings.model_fields_set and (
        settings.data_dir.resolve() != folder.resolve()
    ):
        found.append(f"a data folder ({settings.data_dir})")
    if settings.telegram.enabled or settings.matrix.enabled:
        found.append("an enabled platform")
    return found


def _prepare_demo(settings: Settings, folder: Path) -> Settings:
    """Point the settings at the demo folder, or refuse (see :func:`demo_refusals`)."""
    refusals = demo_refusals(settings, folder)
    if refusals:
        raise ConfigError(
            "the demo does not run next to a real installation: the settings (.env or"
            f" AUSWEG_* variables) name {', '.join(refusals)}. Run `ausweg demo` in another"
            " folder, without those settings."
        )
    settings.mode = "demo"
    settings.data_dir = folder
    settings.directory_path = EXAMPLE_DIRECTORY  # its staff sit in the console's staff room
    print(f"Demo data in {folder.resolve()} (delete the folder to start over).")
    ensure_demo_keys(settings)
    return settings


async def _demo(settings: Settings) -> int:
    from bot.app import App
    from bot.transports.console import ConsoleTransport

    console = ConsoleTransport(locale=settings.default_locale)
    # The demo waits for its sends (unlike `run`): the console has no outbox, so a reply
    # still queued when input ends would be lost, and a reply printed after the next
    # prompt would make the transcript hard to follow. The queues are the same.
    app = App(settings, [console], wait_for_sends=True)
    await app.start()
    try:
        await console.run()
    finally:
        await app.stop()
    return 0


async def _run(settings: Settings) -> int:
    from bot.app import App
    from bot.runner import run_until_stopped
    from bot.transports.factory import build_transports

    if not (settings.telegram.enabled or settings.matrix.enabled):
        raise ConfigError(
            "no platform enabled: set AUSWEG_TELEGRAM__ENABLED=true "
            "or AUSWEG_MATRIX__ENABLED=true (try `ausweg demo` first)"
        )
    # Every refusal before the first byte is written (database, key store, ready file).
    findings = preflight_settings(settings, load_directory(settings.directory_path))
    findings.raise_if_refused()
    for line in stores_used(settings):
        log.info("%s", " ".join(line.split()))
    app = App(settings, build_transports(settings), wait_for_sends=False)

    def reload() -> None:
        """SIGHUP: a directory `run` would refuse does not replace the one in force."""
        directory = load_directory(settings.directory_path)
        refusals = directory_refusals(
            directory,
            settings.directory_path,
            enabled_platforms(settings),
            demo=settings.mode != "production",
        )
        if refusals:
            for line in refusals:
                log.error("directory not reloaded: %s", line)
            raise ConfigError("the new directory is refused")
        app.reload_directory(directory)

    from bot.health import HealthServer, Readiness

    verdict = Readiness()
    server = None
    if settings.health.enabled:
        server = HealthServer(app, verdict, settings.health.listen, settings.health.port)
        await server.start()  # alive (/healthz) during the start already
    try:
        await run_until_stopped(
            app, ready_file=settings.data_dir / "ready", reload=reload, verdict=verdict
        )
    finally:
        if server is not None:
            await server.stop()
    # Interpreter shutdown collects the whole heap (python-telegram-bot, nio, SQLAlchemy,
    # matplotlib ...): 1-2 s of CPU after the work is done, which is what made SIGTERM
    # slow. Everything is flushed and closed by now, so nothing is left to collect.
    gc.freeze()
    return 0


async def _check_staff_groups(settings: Settings, directory: Directory) -> int:
    """With Telegram enabled: can the bot police each staff group? (1: some it cannot).

    The bot needs to be an administrator with the right to ban users there; otherwise
    Telegram does not tell it who joins and it could not remove an outsider.
    """
    tg = settings.telegram
    if not tg.enabled or tg.token is None:
        return 0
    from telegram import Bot
    from telegram.error import TelegramError

    from bot.transports.telegram.staff_groups import group_problem, staff_groups

    root = tg.base_url.rstrip("/")
    bot = Bot(tg.token.get_secret_value(), base_url=f"{root}/bot", base_file_url=f"{root}/file/bot")
    problems = 0
    try:
        async with bot:
            for group in staff_groups(directory).values():
                problem = await group_problem(bot, group.chat_id)
                if problem is not None:
                    problems += 1
                    names = ", ".join(group.programmes)
                    print(f"telegram: staff group of {names} cannot be checked: {problem}")
    except TelegramError as exc:
        print(f"telegram: staff groups not checked ({type(exc).__name__})")
        return 1
    if not problems:
        print("telegram: the bot can check every staff group (administrator, may ban users)")
    return 1 if problems else 0


async def _link(settings: Settings, args: argparse.Namespace) -> int:
    from bot.links import create_link
    from config.clock import SystemClock
    from storage.db import Database
    from storage.migrate import upgrade

    directory = load_directory(settings.directory_path)
    _say_stores(settings)
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        await upgrade(db.engine)
        link = await create_link(
            db,
            directory,
            programme=args.programme,
            source=args.source,
            bot_username=args.bot or settings.telegram.bot_username or "",
            now=SystemClock().now(),
            qr_path=Path(args.qr) if args.qr else None,
        )
    finally:
        await db.dispose()
    print(link.url)
    if link.qr_path:
        print(f"QR code: {link.qr_path}")
    return 0


def preflight_settings(settings: Settings, directory: Directory, *, keys: bool = True) -> Findings:
    """Load the key file and run every start-up check; problems are collected, not raised.

    ``keys=False`` (check-config): missing keys are not a problem of the directory, but
    a readable key file, placeholders and equal keys still are.
    """
    failed: list[str] = []
    try:
        settings.load_key_file()
    except ConfigError as exc:
        failed.append(str(exc))
    if keys and not failed:
        try:
            settings.check_secrets()
        except ConfigError as exc:
            failed.append(str(exc))
    findings = preflight(settings, directory)
    findings.refusals[:0] = failed
    return findings


def _check_config(settings: Settings) -> int:
    """Print the routing table, then what `run` would refuse and what else looks wrong."""
    directory = load_directory(settings.directory_path)
    print(routing_table(directory))
    findings = preflight_settings(settings, directory, keys=False)
    if findings.refusals:
        print("\nausweg run would refuse to start:")
        print("\n".join(f"  - {line}" for line in findings.refusals))
    if findings.flags:
        print("\nPlease check:")
        print("\n".join(f"  - {line}" for line in findings.flags))
    groups = asyncio.run(_check_staff_groups(settings, directory))
    return 1 if findings.refusals or findings.flags or groups else 0


def routing_table(directory: Directory) -> str:
    """Programmes and, per state, where each kind of request goes."""
    lines = ["Programmes:"]
    for p in directory.programmes:
        chat = "chat" if p.chat_enabled else "referral"
        if p.state_authority:  # people are told and choose before a case goes there
            chat += ", state authority"
        scenes = ",".join(p.scenes) or "all"
        lines.append(
            f"  {p.id:<18} {p.kind.value:<22} {','.join(p.states):<6} "
            f"scenes={scenes:<28} audiences={','.join(p.audiences)} [{chat}]"
        )
    lines.append("")
    lines.append("Routing (audience/scene -> programme (step)) per state:")
    for state in STATES:
        cells = []
        for audience in (Audience.SELF, Audience.RELATIVE, Audience.PROFESSIONAL):
            for scene in Scene:
                r = route(directory, Profile(audience, scene, state))
                cells.append(
                    f"{audience.value[:4]}/{scene.value[:5]}->{r.programme.id}({r.step[:5]})"
                )
        for incident in Incident:
            r = route(directory, Profile(Audience.AFFECTED, state=state, incident=incident))
            cells.append(f"affe/{incident.value[:5]}->{r.programme.id}({r.step[:5]})")
        lines.append(f"  {state}: " + "  ".join(cells))
    if directory.verify_before_going_live:
        lines.append("")
        lines.append("NOTE: this directory is marked 'verify before going live'.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ausweg`` console script."""
    parser = argparse.ArgumentParser(prog="ausweg", description="Ausweg first-contact bot")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="terminal chat: play the person and the counsellor")
    demo.add_argument(
        "--dir", default=str(DEMO_DIR), help="demo data folder (default: ./ausweg-demo)"
    )
    sub.add_parser("run", help="run the bot on the configured platforms")
    check = sub.add_parser("check-config", help="validate a directory, print its routing table")
    check.add_argument("directory", nargs="?", help="directory YAML (default: settings)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    link = sub.add_parser("link", help="deep link with an opaque referral code (+ QR code)")
    link.add_argument("--programme", required=True, help="programme id from the directory")
    link.add_argument("--source", required=True, help="outreach source, e.g. poster-schwerin")
    link.add_argument("--qr", help="write a QR code PNG to this file")
    link.add_argument("--bot", help="bot @username (default: AUSWEG_TELEGRAM__BOT_USERNAME)")
    keys = sub.add_parser("keys", help="key management")
    keys.add_argument(
        "action",
        choices=["generate", "rotate", "status"],
        help="generate: print a new keyring; rotate: re-wrap data keys and re-key"
        " pseudonyms under the newest versions; status: rows that still need an old key",
    )
    keys.add_argument("--batch", type=int, default=500, help="rows per transaction")
    purge_cmd = sub.add_parser("purge", help="delete everything past its retention date, once")
    purge_cmd.add_argument("--vacuum", action="store_true", help="also VACUUM the databases")
    purge_cmd.add_argument(
        "--batch", type=int, default=None, help="rows per transaction (SQLite 500, else 5000)"
    )
    bak = sub.add_parser(
        "backup", help="consistent backup: FOLDER/main (database), FOLDER/keystore (apart)"
    )
    bak.add_argument("folder", help="where to write (two sub-folders: main/, keystore/)")
    sub.add_parser("privacy-report", help="what is stored, for how long and why (counts only)")
    rep = sub.add_parser("report", help="funder report: CSV and an HTML page with charts")
    rep.add_argument("--from", dest="start", required=True, help="first month, e.g. 2026-01")
    rep.add_argument("--to", dest="end", required=True, help="last month, e.g. 2026-06")
    rep.add_argument("--programme", help="one programme id (default: all)")
    rep.add_argument("--out", default="report", help="folder to write into (default: ./report)")
    args = parser.parse_args(argv)

    from bot.logsetup import setup_logging
    from storage.db import unavailable_reason

    settings: Settings | None = None
    try:
        settings = _settings(args)
        setup_logging(settings.log_level if args.command != "demo" else "WARNING")
        if args.command == "demo":
            return asyncio.run(_demo(_prepare_demo(settings, Path(args.dir))))
        if args.command == "run":
            return asyncio.run(_run(settings))
        if args.command == "check-config":
            return _check_config(settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "link":
            return asyncio.run(_link(settings, args))
        if args.command == "keys" and args.action == "rotate":
            return asyncio.run(_rotate(settings, args.batch))
        if args.command == "keys" and args.action == "status":
            return asyncio.run(_key_status(settings))
        if args.command == "keys":
            print(
                json.dumps(
                    {"master_keys": {"1": new_key()}, "pseudonym_keys": {"1": new_key()}}, indent=2
                )
            )
            return 0
        if args.command == "purge":
            return asyncio.run(_purge(settings, vacuum=args.vacuum, batch=args.batch))
        if args.command == "backup":
            return _backup(settings, Path(args.folder))
        if args.command == "privacy-report":
            return asyncio.run(_privacy_report(settings))
        if args.command == "report":
            return asyncio.run(_funder_report(settings, args))
    except (ConfigError, DirectoryError, LinkError, BackupError) as exc:
        print(f"ausweg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = unavailable_reason(exc)
        if reason is None or settings is None:
            raise
        # One line instead of a traceback: what failed and which stores were asked.
        from storage.db import display_url

        where = (
            f"database {display_url(settings.database_url)},"
            f" key store {display_url(settings.keystore_url)}"
        )
        print(f"ausweg: cannot open the database: {reason} ({where})", file=sys.stderr)
        return 3
    return 1


def _backup(settings: Settings, folder: Path) -> int:
    """Back up the main database and, into its own folder, the key store."""
    from storage.backup import backup

    _say_stores(settings, stream=sys.stdout)
    files = backup(
        settings.database_url,
        settings.keystore_url,
        folder,
        datetime.now(UTC),
        main_connect_args=settings.database.connect_args,
    )
    print(f"main database: {files.main}")
    print(f"key store:     {files.keystore}")
    print(
        "Keep the key-store backups apart and only briefly (e.g. 7 days): an erased person"
        " is gone from the main backups once no key-store backup older than the erasure is"
        " left (docs/DEPLOY.md section 8)."
    )
    return 0


async def _migrate(settings: Settings) -> int:
    from storage.db import Database
    from storage.migrate import current, upgrade

    _say_stores(settings, stream=sys.stdout)
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        await upgrade(db.engine)
        print(f"schema at revision {await current(db.engine)}")
    finally:
        await db.dispose()
    return 0


@asynccontextmanager
async def _stores(settings: Settings) -> AsyncIterator[tuple[Database, KeyStore]]:
    """Main database (migrated) and key store, with the configured keys."""
    from bot.app import build_vault
    from storage.db import Database
    from storage.keystore import KeyStore
    from storage.migrate import upgrade

    settings.load_key_file()
    settings.check_secrets()
    _say_stores(settings)
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    keys_db = Database(settings.keystore_url)
    try:
        await upgrade(db.engine)
        keystore = KeyStore(keys_db, build_vault(settings))
        await keystore.create_schema()
        yield db, keystore
    finally:
        await db.dispose()
        await keys_db.dispose()


async def _purge(settings: Settings, *, vacuum: bool, batch: int | None) -> int:
    """One purge by the system clock (the running bot also purges hourly)."""
    from storage.retention import purge

    async with _stores(settings) as (db, keystore):
        report = await purge(db, keystore, datetime.now(UTC), batch=batch, vacuum=vacuum)
    print("Deleted (rows per table; data_keys = keys shredded):")
    print("\n".join(report.lines()))
    return 0


async def _rotate(settings: Settings, batch: int) -> int:
    """Re-wrap data keys and re-key pseudonyms; print counts before and after."""
    from storage.rotation import rotate

    async with _stores(settings) as (db, keystore):
        report = await rotate(db, keystore, batch=batch)
    print("before:")
    print("\n".join("  " + line for line in report.before.lines()))
    p = report.pseudonyms
    print(
        f"re-wrapped {report.rewrapped} data keys; re-keyed {p.rekeyed} pseudonyms"
        f" ({p.unreadable} unreadable, {p.conflicts} conflicts)"
    )
    print("after:")
    print("\n".join("  " + line for line in report.after.lines()))
    left = report.after.keys_needing_old + report.after.contacts_needing_old
    if left == 0:
        print("Nothing needs an old key any more: remove the old versions and restart.")
    return 0 if left == 0 else 1


async def _key_status(settings: Settings) -> int:
    """How many rows still need an old key version."""
    from storage.rotation import key_status

    async with _stores(settings) as (db, keystore):
        status = await key_status(db, keystore)
    print("\n".join(status.lines()))
    return 0


async def _privacy_report(settings: Settings) -> int:
    """Print what is stored (counts only)."""
    from storage.report import privacy_report

    async with _stores(settings) as (db, keystore):
        report = await privacy_report(db, keystore, settings.retention, datetime.now(UTC))
    print("\n".join(report.lines()))
    return 0


def month_span(start: str, end: str) -> tuple[date, date]:
    """``2026-01``, ``2026-06`` -> the first day of January, the last day of June."""
    try:
        first = date.fromisoformat(f"{start}-01")
        last = date.fromisoformat(f"{end}-01")
    except ValueError:
        raise ConfigError("months are written YYYY-MM, e.g. --from 2026-01 --to 2026-06") from None
    if last < first:
        raise ConfigError("--to lies before --from")
    following = date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


async def _funder_report(settings: Settings, args: argparse.Namespace) -> int:
    """Write the funder report (counts only, small counts hidden)."""
    from bot.funders import write_report
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.stats import funder_report

    start, end = month_span(args.start, args.end)
    if args.programme and args.programme not in load_directory(settings.directory_path).by_id:
        raise ConfigError(f"no programme {args.programme!r} in the directory")
    _say_stores(settings)
    db = Database(settings.database_url, connect_args=settings.database.connect_args)
    try:
        await upgrade(db.engine)
        report = await funder_report(db, start, end, args.programme)
    finally:
        await db.dispose()
    csv_path, html_path = write_report(report, Path(args.out))
    print(f"wrote {csv_path} and {html_path}")
    return 0
