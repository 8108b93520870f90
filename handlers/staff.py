"""Staff commands. Authorisation is by programme: a counsellor acts only on cases of
programmes the directory lists them for; a denied attempt is answered plainly and
changes nothing. In a case's topic or room the case code may be left out, and only
there does plain text (or an attachment) reach the person; elsewhere it takes
``/r K-XXXX text`` (the case is never guessed).

Commands (German aliases in brackets): queue, claim, release, r / reply, note, notes,
invite, transfer, followup, canned, pause, close, erase, away, hours, help.

``/erase K-XXXX`` erases the person behind a case on their wish, exactly like their
own /delete; it asks first and acts on ``/erase K-XXXX confirm`` or the button.
``/close`` of an urgent case asks first too (the person is told the counselling ended
and starts from scratch when they write again): ``/close K-XXXX [outcome] confirm`` or
the button.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from config.i18n import Translator, pick_locale, translator
from config.messages import Button, ChatKind, InboundMessage, OutboundMessage
from handlers.casework import OUTCOMES, CaseService, StaffRole
from handlers.followups import FollowUpService, parse_spec
from storage.models import Case

_CODE = re.compile(r"^K-[23456789A-HJ-NP-Z]{4}$", re.IGNORECASE)
_ALIASES = {
    "übernehmen": "claim",
    "uebernehmen": "claim",
    "reply": "r",
    "antwort": "r",
    "warteschlange": "queue",
    "schließen": "close",
    "schliessen": "close",
    "hilfe": "help",
    "freigeben": "release",
    "notiz": "note",
    "notizen": "notes",
    "einladen": "invite",
    "übergeben": "transfer",
    "uebergeben": "transfer",
    "nachfassen": "followup",
    "vorlage": "canned",
    "pausieren": "pause",
    "abwesend": "away",
    "zeiten": "hours",
    "löschen": "erase",
    "loeschen": "erase",
}
#: Cases per ``/queue`` page (a page stays well below one platform message).
QUEUE_PAGE = 10
#: Words that confirm ``/erase K-XXXX <word>`` typed instead of pressing the button.
CONFIRM = frozenset({"confirm", "bestätigen", "bestaetigen", "ja", "yes"})
#: Commands that act on one case, and whether they need text after the code.
CASE_COMMANDS = {
    "claim": False,
    "release": False,
    "r": True,
    "note": True,
    "notes": False,
    "invite": True,
    "transfer": True,
    "followup": True,
    "canned": False,
    "pause": False,
    "close": False,
    "erase": False,
}
#: Commands only the counsellor holding the case (or an invited one) may use.
HOLDER_ONLY = {
    "r",
    "invite",
    "transfer",
    "followup",
    "canned",
    "pause",
    "close",
    "note",
    "notes",
    "release",
    "erase",
}


def parse(msg: InboundMessage) -> tuple[str | None, str]:
    """Split a staff message into (command, rest of the text)."""
    if msg.button:
        cmd, _, arg = msg.button.partition(":")
        return cmd, arg
    text = msg.text.strip()
    if text[:1] not in "/!" or len(text) < 2:
        return None, text
    head, _, rest = text[1:].partition(" ")
    cmd = head.split("@")[0].casefold()
    return _ALIASES.get(cmd, cmd), rest.strip()


def whoami(msg: InboundMessage) -> list[OutboundMessage]:
    """``/whoami`` in a group or room: the ids the operator needs for the directory.

    Answered in groups and rooms only (configured or not, before anything is looked up
    or stored) to whoever asks: the group's id (``-100...`` on Telegram, ``!...`` on
    Matrix) and the sender's account id (numeric on Telegram). Nothing is stored or
    logged; in a private chat the command means nothing here.
    """
    if msg.chat_kind is not ChatKind.GROUP or msg.button:
        return []
    cmd, _ = parse(msg)
    if cmd not in {"whoami", "werbinich"}:
        return []
    t = translator(pick_locale(msg.locale))
    text = t(
        "staff.whoami",
        platform=msg.platform.value,
        chat=msg.address.chat_id,
        account=msg.sender_id,
    )
    return [OutboundMessage(msg.address, text, protect=False)]


async def handle(
    svc: CaseService,
    roles: list[StaffRole],
    msg: InboundMessage,
    case_hint: str | None = None,
    *,
    relay_attachments: bool = False,
) -> list[OutboundMessage]:
    """Answer one staff message.

    ``case_hint`` is the case whose own thread (topic / case room) the message was
    written in: only there does plain text (or an attachment) go to the person;
    anywhere else it gets a hint, and only ``/r K-XXXX text`` reaches a person.
    """
    if case_hint is not None:
        # In a case's thread a counsellor acts only for that case's programme.
        case = await svc.uow.cases.by_code(case_hint)
        if case is not None:
            roles = [r for r in roles if r.programme.id == case.programme_id]
            if not roles:
                return []
    st = translator(roles[0].member.locale)
    here = msg.address

    def say(key: str, **params: object) -> list[OutboundMessage]:
        return [OutboundMessage(here, st(key, **params), protect=False)]

    if msg.attachment:
        return await _attachment(svc, roles, msg, case_hint, relay_attachments, say)
    cmd, rest = parse(msg)
    if cmd is None:
        if not rest:
            return []
        if case_hint is None:  # never guess the case: the wrong person could read it
            room = f"{here.platform.value}\x00{here.chat_id}\x00{here.thread_id or ''}"
            if not svc.limits.staff_hint_due(room, svc.now.timestamp()):
                return []  # team chat: the hint is still on screen from a moment ago
            return say("staff.reply_where")
        cmd = "r"
    if cmd == "help":
        return say("help.staff")
    if cmd == "queue":
        return [OutboundMessage(here, await _queue(svc, roles, rest, st), protect=False)]
    if cmd == "hours":
        return say("staff.hours", lines=_hours(roles, st))
    if cmd == "away":
        text = None if rest.casefold() in ("off", "aus", "") else rest
        return await svc.away(roles[0], text)
    if cmd not in CASE_COMMANDS:
        return say("staff.unknown")

    code, text = _code_and_text(rest, case_hint)
    if code is None or (CASE_COMMANDS[cmd] and not text):
        return say(f"staff.usage.{cmd}")
    case = await svc.uow.cases.by_code(code)
    role = _authorise(case, roles)
    if case is None or role is None or not role.counsellor:
        return say("staff.denied")
    if case.status == "closed":
        return say("staff.not_yours", code=case.code)
    if cmd == "claim":
        result = await svc.claim(case, role)
        return result if result is not None else say("staff.already_claimed", code=case.code)
    if cmd in HOLDER_ONLY and role.key not in await svc.members(case):
        return say("staff.not_yours", code=case.code)
    if cmd == "erase":
        confirmed = bool(msg.button) or text.casefold() in CONFIRM
        return await _erase(svc, case, confirmed, st, msg)
    if cmd == "close":
        return await _close(svc, case, role, text, st, msg)
    return await _case_command(svc, cmd, case, role, text, say)


Say = Callable[..., list[OutboundMessage]]


async def _case_command(
    svc: CaseService, cmd: str, case: Case, role: StaffRole, text: str, say: Say
) -> list[OutboundMessage]:
    if cmd == "r":
        return await svc.to_person_from(case, role, text)
    if cmd == "release":
        return await svc.release(case, role)
    if cmd == "note":
        return await svc.note(case, role, text)
    if cmd == "notes":
        return await svc.notes(case, role)
    if cmd == "invite":
        return await svc.invite(case, role, text)
    if cmd == "transfer":
        return await svc.transfer(case, role, text)
    if cmd == "canned":
        return await svc.canned(case, role, text)
    if cmd == "pause":
        return await svc.pause(case, role)
    if cmd == "followup":
        spec = parse_spec(text)
        if spec is None:
            return say("staff.usage.followup")
        return await FollowUpService(svc).set(case, role, spec)
    return say("staff.unknown")


async def _close(
    svc: CaseService,
    case: Case,
    role: StaffRole,
    text: str,
    st: Translator,
    msg: InboundMessage,
) -> list[OutboundMessage]:
    """Close with an outcome; an urgent case only after a second step, as /erase: a
    hasty /close tells a threatened person that counselling here has ended."""
    words = text.split()
    confirmed = bool(msg.button)
    if words and words[-1].casefold() in CONFIRM:
        confirmed, words = True, words[:-1]
    outcome = " ".join(words) or "other"
    if outcome not in OUTCOMES:
        return [OutboundMessage(msg.address, st("staff.usage.close"), protect=False)]
    if case.urgent and not confirmed:
        button = Button(st("staff.close.button", code=case.code), f"close:{case.code} {outcome}")
        ask = st("staff.close.confirm", code=case.code, outcome=outcome)
        return [OutboundMessage(msg.address, ask, ((button,),), protect=False)]
    return await svc.close(case, role, outcome)


async def _erase(
    svc: CaseService, case: Case, confirmed: bool, st: Translator, msg: InboundMessage
) -> list[OutboundMessage]:
    """Erase the person behind a case on their wish: ask first, then as on /delete."""
    person = await svc.person_of(case)
    if person is None:
        return [OutboundMessage(msg.address, st("staff.case.gone", code=case.code), protect=False)]
    if not confirmed:
        button = Button(st("staff.erase.button"), f"erase:{case.code}")
        text = st("staff.erase.confirm", code=case.code)
        return [OutboundMessage(msg.address, text, ((button,),), protect=False)]
    pt = translator(person.contact.locale)
    return await svc.erase(person, pt, receipt=True, staff_text="staff.erase.done")


async def _attachment(
    svc: CaseService,
    roles: list[StaffRole],
    msg: InboundMessage,
    case_hint: str | None,
    enabled: bool,
    say: Say,
) -> list[OutboundMessage]:
    """A counsellor's photo / file in a case's own thread: copy it over."""
    if not enabled or not msg.message_ref:
        return say("staff.attachment.off")
    if case_hint is None:
        return say("staff.reply_where")
    case = await svc.uow.cases.by_code(case_hint)
    role = _authorise(case, roles)
    if case is None or role is None or not role.counsellor:
        return say("staff.denied")
    if case.status in ("new", "closed") or role.key not in await svc.members(case):
        return say("staff.not_yours", code=case.code)
    return await svc.attachment_to_person(case, role, msg.address, msg.message_ref)


async def _queue(svc: CaseService, roles: list[StaffRole], rest: str, st: Translator) -> str:
    """Waiting cases, one page at a time (``/queue 2``), always with the total."""
    programmes = [r.programme.id for r in roles]
    total = await svc.uow.cases.queue_size(programmes)
    if not total:
        return st("staff.queue.empty")
    pages = -(-total // QUEUE_PAGE)
    asked = int(rest) if rest.isascii() and rest.isdigit() and len(rest) < 7 else 1
    page = min(max(asked, 1), pages)
    shown = await svc.uow.cases.queue(programmes, offset=(page - 1) * QUEUE_PAGE, limit=QUEUE_PAGE)
    text = st("staff.queue", count=total, cases="\n\n".join(svc.describe(c, st) for c in shown))
    if pages > 1:
        text += "\n\n" + st("staff.queue.page", page=page, pages=pages, next=page % pages + 1)
    return text


def _code_and_text(rest: str, hint: str | None) -> tuple[str | None, str]:
    first, _, after = rest.partition(" ")
    if _CODE.match(first):
        return first.upper(), after.strip()
    return hint, rest.strip()


def _authorise(case: Case | None, roles: list[StaffRole]) -> StaffRole | None:
    """The role under which an account may act on a case, if any."""
    if case is None:
        return None
    return next((r for r in roles if r.programme.id == case.programme_id), None)


def _hours(roles: list[StaffRole], st: Translator) -> str:
    lines = []
    for role in roles:
        oh = role.programme.office_hours
        if oh is None:
            lines.append(f"{role.programme.name}: -")
            continue
        spans = ", ".join(f"{d} {' '.join(s)}" for d, s in oh.weekly.items())
        lines.append(f"{role.programme.name}: {spans}")
    return "\n".join(dict.fromkeys(lines))
