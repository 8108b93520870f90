"""Staff commands: queue, claim, reply, close, help. Authorisation is by programme.

A staff account acts only on cases of programmes it is listed for in the
directory; a denied attempt is answered plainly and changes nothing.
"""

from __future__ import annotations

import re

from bot.messages import InboundMessage, OutboundMessage
from config.i18n import translator
from handlers.cases import CaseService, StaffRole
from storage.models import Case

_CODE = re.compile(r"^K-[23456789A-HJ-NP-Z]{4}$", re.IGNORECASE)
OUTCOMES = ("exit", "referred", "no_contact", "declined", "other")
_ALIASES = {
    "übernehmen": "claim",
    "uebernehmen": "claim",
    "reply": "r",
    "antwort": "r",
    "warteschlange": "queue",
    "schließen": "close",
    "schliessen": "close",
    "hilfe": "help",
    "abschließen": "close",
}


def parse(msg: InboundMessage) -> tuple[str | None, list[str], str]:
    """Split a staff message into (command, arguments, rest text)."""
    if msg.button:
        cmd, _, arg = msg.button.partition(":")
        return cmd, [arg] if arg else [], ""
    text = msg.text.strip()
    if text[:1] not in "/!" or len(text) < 2:
        return None, [], text
    head, _, rest = text[1:].partition(" ")
    cmd = head.split("@")[0].casefold()
    return _ALIASES.get(cmd, cmd), rest.split(), rest


async def handle(
    svc: CaseService,
    roles: list[StaffRole],
    msg: InboundMessage,
) -> list[OutboundMessage]:
    """Answer one staff message."""
    st = translator(roles[0].member.locale)
    here = msg.address

    def say(key: str, **params: object) -> list[OutboundMessage]:
        return [OutboundMessage(here, st(key, **params), protect=False)]

    cmd, args, rest = parse(msg)
    if cmd in (None, "r"):
        case: Case | None
        text = rest
        if cmd == "r":
            if not args or not _CODE.match(args[0]):
                return say("staff.usage.reply")
            case = await svc.uow.cases.by_code(args[0])
            text = rest.partition(" ")[2]
        else:
            case = await svc.uow.cases.latest_claimed_by([r.key for r in roles])
            if case is None:
                return say("staff.no_current")
        if not text.strip():
            return say("staff.usage.reply")
        role = await _authorise(case, roles)
        if case is None or role is None:
            return say("staff.denied")
        if case.status in ("new", "closed") or case.claimed_by != role.key:
            return say("staff.not_yours", code=case.code)
        return await svc.to_person(case, role, text)
    if cmd == "help":
        return say("help.staff")
    if cmd == "queue":
        programmes = [r.programme.id for r in roles]
        cases = await svc.uow.cases.queue(programmes)
        if not cases:
            return say("staff.queue.empty")
        lines = [svc.describe(c, st) for c in cases[:20]]
        return say("staff.queue", count=len(cases), cases="\n\n".join(lines))
    if cmd in ("claim", "close"):
        if not args or not _CODE.match(args[0]):
            return say(f"staff.usage.{cmd}")
        case = await svc.uow.cases.by_code(args[0])
        role = await _authorise(case, roles)
        if case is None or role is None:
            return say("staff.denied")
        if cmd == "claim":
            result = await svc.claim(case, role)
            return result if result is not None else say("staff.already_claimed", code=case.code)
        outcome = args[1] if len(args) > 1 else "other"
        if outcome not in OUTCOMES:
            return say("staff.usage.close")
        if case.status == "closed":
            return say("staff.not_yours", code=case.code)
        return await svc.close(case, role, outcome)
    return say("staff.unknown")


async def _authorise(case: Case | None, roles: list[StaffRole]) -> StaffRole | None:
    """The role under which an account may act on a case, if any."""
    if case is None:
        return None
    return next((r for r in roles if r.programme.id == case.programme_id), None)
