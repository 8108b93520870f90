"""Telegram staff groups: who belongs there, and whether the bot can keep it that way.

A staff group holds only the Telegram accounts the directory lists as staff of the
programmes using it. The bot learns about joins from ``chat_member`` updates, which
Telegram sends only to administrators; to remove an account it needs the right to
restrict members (``can_restrict_members``). :func:`group_problem` asks Telegram
(``getChatMember`` of the bot) whether that holds; start-up and ``ausweg
check-config`` report the groups where it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram.error import TelegramError

from config.directory import Directory

__all__ = ["StaffGroup", "group_problem", "staff_groups"]

_PLATFORM = "telegram"


@dataclass(frozen=True, slots=True)
class StaffGroup:
    """One staff group.

    Attributes:
        chat_id: the group's numeric id.
        programmes: ids of the programmes using it (for messages to the operator).
        staff: numeric Telegram user ids of their current staff.
        named: some staff are given by @username, not numeric id: a join cannot be
            matched for sure, so it is only reported, never removed.
        locale: the coordinators' language (alerts).
    """

    chat_id: int
    programmes: tuple[str, ...]
    staff: frozenset[int]
    named: bool
    locale: str


def staff_groups(directory: Directory) -> dict[int, StaffGroup]:
    """Every Telegram staff group of the directory (ids that are not numbers are skipped)."""
    found: dict[int, tuple[list[str], set[int], bool, str | None]] = {}
    for programme in directory.programmes:
        room = programme.staff_rooms.get(_PLATFORM, "")
        try:
            chat_id = int(room)
        except ValueError:
            continue
        ids, staff, named, locale = found.setdefault(chat_id, ([], set(), False, None))
        ids.append(programme.id)
        for member in programme.staff:
            account = member.accounts.get(_PLATFORM)
            if account is None:
                continue
            if account.lstrip("-").isdigit():
                staff.add(int(account))
            else:
                named = True
            if member.role == "coordinator" and locale is None:
                locale = member.locale
        found[chat_id] = (ids, staff, named, locale)
    return {
        chat_id: StaffGroup(chat_id, tuple(ids), frozenset(staff), named, locale or "de")
        for chat_id, (ids, staff, named, locale) in found.items()
    }


async def group_problem(bot: Any, chat_id: int) -> str | None:
    """Why the bot cannot police a staff group (None: it can).

    ``bot`` is python-telegram-bot's ``Bot`` (initialised, so ``bot.id`` is known).
    """
    try:
        member = await bot.get_chat_member(chat_id, bot.id)
    except TelegramError as exc:
        return f"the bot cannot see the group ({type(exc).__name__}: is it a member?)"
    status = str(member.status)
    if status == "creator":
        return None
    if status == "administrator":
        if getattr(member, "can_restrict_members", False):
            return None
        return "the bot is an administrator without the right to ban users"
    return "the bot is not an administrator (it needs the right to ban users)"
