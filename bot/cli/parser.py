"""The arguments of every ``ausweg`` command."""

from __future__ import annotations

import argparse

from bot.cli.demo import DEMO_DIR


def build_parser() -> argparse.ArgumentParser:
    """The ``ausweg`` parser: one sub-command per line of ``ausweg --help``."""
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
    return parser
