"""Who is in a staff group: outsiders are removed (or reported), departures followed.

The directory names each programme's staff group and its staff accounts
(:mod:`.staff_groups`). An account that joins a staff group without being listed is
removed at once (ban and unban: out now, not barred for good) or only reported, and
the coordinators are told in the group. A counsellor taken off the directory is
removed the same way. A group Telegram moved to a supergroup needs its new id in the
directory: that is logged loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from bot.transports.base import SendLater
from bot.transports.telegram.calls import BotCalls, SendFailed
from bot.transports.telegram.staff_groups import StaffGroup, group_problem, staff_groups
from bot.transports.telegram.updates import MemberChange
from config.directory import Directory
from config.i18n import translator

log = logging.getLogger(__name__)


class Membership:
    """Polices the staff groups named in the directory."""

    def __init__(self, calls: BotCalls) -> None:
        self._calls = calls
        #: Staff groups (chat id -> who may be there), from the directory.
        self.groups: dict[int, StaffGroup] = {}
        #: Programmes whose staff group the bot cannot police (no admin rights), and why.
        self.unchecked_groups: dict[str, str] = {}
        self._chores: set[asyncio.Task[None]] = set()

    def use_directory(self, directory: Directory, *, online: bool) -> None:
        """A (reloaded) directory: the staff groups and who belongs there.

        Staff no longer listed for a group (a counsellor left) are removed from it at
        once (in the background; or only reported, like unknown joiners).
        """
        before, self.groups = self.groups, staff_groups(directory)
        if not online:
            return  # at start, nothing to compare with
        for chat, group in self.groups.items():
            gone = sorted(before[chat].staff - group.staff) if chat in before else []
            for user_id in gone:
                change = MemberChange(chat, user_id)
                task = asyncio.get_running_loop().create_task(
                    self.on_member(change, left_staff=True)
                )
                self._chores.add(task)
                task.add_done_callback(self._chores.discard)

    async def stop(self) -> None:
        """Cancel the removals still running."""
        chores, self._chores = list(self._chores), set()
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)

    async def check_staff_groups(self) -> dict[str, str]:
        """Ask Telegram whether the bot can police each staff group; log those it cannot.

        Returns programme id -> problem (also kept in ``unchecked_groups``).
        """
        problems: dict[str, str] = {}
        for group in self.groups.values():
            try:
                problem = await group_problem(self._calls.bot, group.chat_id)
            except Exception as exc:  # a check, not a reason to fail the start
                problem = f"not checked ({type(exc).__name__})"
            if problem is None:
                continue
            for programme in group.programmes:
                problems[programme] = problem
            log.warning(
                "telegram: the staff group of %s cannot be checked for unknown members: %s",
                ", ".join(group.programmes),
                problem,
            )
        self.unchecked_groups = problems
        return problems

    def on_migrated(self, old: int, new: int) -> None:
        """Telegram moved a group to a supergroup (Topics turned on, made public, grown):
        a staff group keeps working only once the directory names its new id."""
        self._calls.stats.ignored += 1
        if old not in self.groups:
            log.info("telegram: a group that is not a staff room was moved to a supergroup")
            return
        # Staff room ids are configuration (the directory holds them), not personal data.
        log.error(
            "telegram: Telegram moved the staff group %s to a supergroup with the new id %s."
            " Put %s into staff_rooms.telegram of the programme directory and reload it"
            " (ausweg check-config); until then staff alerts for it cannot be delivered.",
            old,
            new,
            new,
        )

    async def on_member(self, change: MemberChange, *, left_staff: bool = False) -> None:
        """Someone joined a staff group (or left its staff list): not staff -> removed
        (or only reported), and the coordinators are told in the group. Joins elsewhere
        are not looked at."""
        calls = self._calls
        group = self.groups.get(change.chat_id)
        if group is None or change.user_id in group.staff:
            return
        if change.user_id == calls.bot.id:
            return
        if left_staff and not await self._in_group(change):
            return  # a former counsellor who was not in the group: nothing to do
        remove = calls.config.unknown_members == "remove" and not group.named
        removed = False
        if remove:
            try:
                await calls.call(
                    partial(calls.bot.ban_chat_member, change.chat_id, change.user_id),
                    what="banChatMember",
                    chat=change.chat_id,
                    urgent=True,
                )
                # Unbanned at once: out of the group now, but not barred for good (a
                # colleague added by mistake before the directory lists them can come back).
                await calls.call(
                    partial(
                        calls.bot.unban_chat_member,
                        change.chat_id,
                        change.user_id,
                        only_if_banned=True,
                    ),
                    what="unbanChatMember",
                    chat=change.chat_id,
                    urgent=True,
                )
                removed = True
            except (SendFailed, SendLater) as exc:
                log.error(
                    "telegram: a non-staff account could not be removed (%s)", type(exc).__name__
                )
        calls.stats.outsiders += 1
        log.warning(
            "telegram: a non-staff account joined a staff group (%s)",
            "removed" if removed else "reported",
        )
        t = translator(group.locale)
        key = (
            "staff.guard.group_"
            + ("left_" if left_staff else "")
            + ("removed" if removed else "reported")
        )
        with contextlib.suppress(SendFailed, SendLater):
            await calls.call(
                partial(calls.bot.send_message, change.chat_id, t(key)),
                what="sendMessage",
                chat=change.chat_id,
                urgent=True,
            )

    async def _in_group(self, change: MemberChange) -> bool:
        """Whether an account is in a group now (unknown counts as in: be safe)."""
        calls = self._calls
        try:
            member = await calls.call(
                partial(calls.bot.get_chat_member, change.chat_id, change.user_id),
                what="getChatMember",
                chat=change.chat_id,
                quiet=True,
            )
        except (SendFailed, SendLater):
            return True
        return str(member.status) not in ("left", "kicked")
