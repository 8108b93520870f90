"""``ausweg check-config``: the routing table, then what `run` would refuse and why."""

from __future__ import annotations

import asyncio

from config.directory import Directory, load_directory
from config.preflight import Findings, preflight
from config.settings import ConfigError, Settings
from config.vocabulary import STATES, Audience, Incident, Scene
from handlers.routing import Profile, route


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


def check_config(settings: Settings) -> int:
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
    groups = asyncio.run(check_staff_groups(settings, directory))
    return 1 if findings.refusals or findings.flags or groups else 0


async def check_staff_groups(settings: Settings, directory: Directory) -> int:
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
