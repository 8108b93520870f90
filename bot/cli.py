"""The ``ausweg`` command: demo, run, check-config, migrate, keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.transports.base import Transport
from config.directory import Directory, DirectoryError, load_directory
from config.settings import ConfigError, Settings, ensure_demo_keys, new_key
from config.vocabulary import STATES, Audience, Incident, Scene
from handlers.routing import Profile, route

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "directory", None):
        settings.directory_path = Path(args.directory)
    return settings


async def _demo(settings: Settings) -> int:
    from bot.app import App
    from bot.transports.console import ConsoleTransport

    settings.mode = "demo"
    ensure_demo_keys(settings)
    console = ConsoleTransport(locale=settings.default_locale)
    app = App(settings, [console])
    await app.start()
    try:
        await console.run()
    finally:
        await app.stop()
    return 0


async def _run(settings: Settings) -> int:
    from bot.app import App

    transports: list[Transport] = []
    if not (settings.telegram.enabled or settings.matrix.enabled):
        raise ConfigError(
            "no platform enabled: set AUSWEG_TELEGRAM__ENABLED=true "
            "or AUSWEG_MATRIX__ENABLED=true (try `ausweg demo` first)"
        )
    if settings.telegram.enabled or settings.matrix.enabled:
        raise ConfigError("the Telegram and Matrix transports are not part of this build yet")
    app = App(settings, transports)
    await app.start()
    await app.stop()
    return 0


def routing_table(directory: Directory) -> str:
    """Programmes and, per state, where each kind of request goes."""
    lines = ["Programmes:"]
    for p in directory.programmes:
        chat = "chat" if p.chat_enabled else "referral"
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
    sub.add_parser("demo", help="terminal chat: play the person and the counsellor")
    sub.add_parser("run", help="run the bot on the configured platforms")
    check = sub.add_parser("check-config", help="validate a directory, print its routing table")
    check.add_argument("directory", nargs="?", help="directory YAML (default: settings)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    keys = sub.add_parser("keys", help="key management")
    keys.add_argument("action", choices=["generate"])
    args = parser.parse_args(argv)

    from bot.logsetup import setup_logging

    try:
        settings = _settings(args)
        setup_logging(settings.log_level if args.command != "demo" else "WARNING")
        if args.command == "demo":
            return asyncio.run(_demo(settings))
        if args.command == "run":
            return asyncio.run(_run(settings))
        if args.command == "check-config":
            print(routing_table(load_directory(settings.directory_path)))
            return 0
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "keys":
            print(
                json.dumps(
                    {"master_keys": {"1": new_key()}, "pseudonym_keys": {"1": new_key()}}, indent=2
                )
            )
            return 0
    except (ConfigError, DirectoryError) as exc:
        print(f"ausweg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


async def _migrate(settings: Settings) -> int:
    from storage.db import Database
    from storage.migrate import current, upgrade

    db = Database(settings.database_url)
    try:
        await upgrade(db.engine)
        print(f"schema at revision {await current(db.engine)}")
    finally:
        await db.dispose()
    return 0
