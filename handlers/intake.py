"""The intake conversation: consent, safety, a few questions, then routing.

Pure decisions: (state, profile, message) -> Transition. Nothing is stored
before consent; a danger message gets the numbers for its category at every step,
then (without a case) one button: "should someone contact you now?". Pressing it,
or answering "yes, right now" to the safety question, opens an urgent case at once
with only what is known; the remaining questions are skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from config.directory import Directory, Programme
from config.i18n import LANGUAGE_NAMES, SUPPORTED, Translator
from config.messages import Button, InboundMessage
from config.register import addressed
from config.settings import DEMO_OPERATOR, OperatorSettings
from config.vocabulary import LANGUAGES, MV_DISTRICTS, STATES, Audience, Incident, Kind, Scene
from handlers.base import Effect, Reply, Transition
from handlers.options import Option, exact, match, options_for
from handlers.routing import Profile, Route, chat_fallback, route, without_authority
from handlers.safety import Danger, detect
from handlers.transparency import privacy_notice
from handlers.understand import FACTS, pack, state_of, understand, unpack

MAX_TEXT = 4000
#: Profile keys allowed before consent: where a deep link came from (no personal data).
REFERRAL_KEYS = ("ref", "source")
#: Button data prefix of "yes, contact me now" (the category travels in the button:
#: nothing is stored before that press, which is the consent).
CONTACT_NOW = "crisis:contact"


class State(enum.StrEnum):
    """Conversation states of a person."""

    NEW = "new"
    CONSENT = "consent"
    SAFETY = "safety"
    AUDIENCE = "audience"
    INCIDENT = "incident"
    SCENE = "scene"
    STATE = "state"
    DISTRICT = "district"
    PRISON = "prison"
    LANGUAGE = "language"
    MESSAGE = "message"
    CONFIRM = "confirm"
    AUTHORITY = "authority"
    CASE = "case"
    REFERRED = "referred"
    DELETE = "delete"


#: Question states in order; ``back`` walks the recorded history instead.
QUESTIONS = (
    State.CONSENT,
    State.SAFETY,
    State.AUDIENCE,
    State.INCIDENT,
    State.SCENE,
    State.STATE,
    State.DISTRICT,
    State.PRISON,
    State.LANGUAGE,
    State.MESSAGE,
)
INTAKE_STATES = frozenset({State.NEW, State.CONFIRM, *QUESTIONS, State.AUTHORITY})
#: Questions whose answer free text may already give (see handlers.understand).
_FACT_STATES = frozenset(State(k) for k in FACTS)
#: Choices before a hand-over to a programme run by a state authority.
AUTHORITY_CHOICES = ("continue", "alternative", "contacts")
_COLUMNS = {State.STATE: 2, State.DISTRICT: 2, State.LANGUAGE: 2}
_COMMANDS = {
    "start": "start",
    "help": "help",
    "hilfe": "help",
    "delete": "delete",
    "loeschen": "delete",
    "löschen": "delete",
    "language": "language",
    "sprache": "language",
    "back": "back",
    "zurueck": "back",
    "zurück": "back",
    "vanish": "vanish",
    "verschwinden": "vanish",
    "pause": "pause",
    "pausieren": "pause",
    "resume": "resume",
    "fortsetzen": "resume",
    "who": "who",
    "wer": "who",
}
_BACK_WORDS = frozenset({"zurück", "zurueck", "back"})
#: Whole messages that work as a command without ``/`` or ``!``: Element intercepts
#: unknown /commands and owns /help, and a plain word is what most people try first.
#: Not "vanish" (it acts at once, no confirmation): that one needs its prefix.
_PLAIN_WORDS = {
    "hilfe": "help",
    "help": "help",
    "befehle": "help",
    "commands": "help",
    "löschen": "delete",
    "loeschen": "delete",
    "delete": "delete",
    "alles löschen": "delete",
    "delete everything": "delete",
    "sprache": "language",
    "language": "language",
    "pause": "pause",
    "pausieren": "pause",
    "fortsetzen": "resume",
    "resume": "resume",
    "start": "start",
    "neustart": "start",
    "neu starten": "start",
    "restart": "start",
    # The other catalog languages: help, delete, language, who, back.
    "помощь": "help",
    "удалить": "delete",
    "язык": "language",
    "кто": "who",
    "назад": "back",
    "допомога": "help",
    "видалити": "delete",
    "мова": "language",
    "хто": "who",
    "مساعدة": "help",
    "حذف": "delete",
    "اللغة": "language",
    "رجوع": "back",
    "yardım": "help",
    "sil": "delete",
    "dil": "language",
    "kim": "who",
    "geri": "back",
}
#: In a case (or as the message for one) a lone "Hilfe" is a plea: it is passed on, not answered
#: with the command list.
_PLEAS = frozenset({"help"})
#: "back" in the other four languages (the texts tell people to type it).
_BACK_WORDS_MORE = frozenset({"назад", "رجوع", "geri"})
#: Plain words that ask who reads along (Element intercepts unknown /commands).
_WHO_WORDS = frozenset(
    {"wer", "who", "wer bist du", "wer liest mit", "wer ist da", "who are you", "who is reading"}
)
#: Language names a person may type (own names, and the German and English ones).
_LANGUAGE_WORDS = {
    **{name.casefold(): code for code, name in LANGUAGE_NAMES.items()},
    "german": "de",
    "englisch": "en",
    "russian": "ru",
    "russisch": "ru",
    "ukrainian": "uk",
    "ukrainisch": "uk",
    "arabic": "ar",
    "arabisch": "ar",
    "turkish": "tr",
    "türkisch": "tr",
    "turkce": "tr",
}
#: Plain words that ask to erase everything: a person who panics should not need to know
#: a command (and Element intercepts /delete). Matched as the whole message, after
#: dropping "bitte"/"please", so "die Bilder löschen ..." in a longer message is no request.
_DELETE_WORDS = frozenset(
    {
        "löschen",
        "loeschen",
        "alles löschen",
        "alles loeschen",
        "lösch alles",
        "lösche alles",
        "loesch alles",
        "loesche alles",
        "daten löschen",
        "meine daten löschen",
        "alle daten löschen",
        "delete",
        "delete all",
        "delete everything",
        "delete my data",
        "erase everything",
    }
)
_POLITE = frozenset({"bitte", "please", "jetzt", "now", "sofort"})
_WHOLE_ANSWER = frozenset({State.CONSENT, State.MESSAGE, State.DELETE})
#: What a person may choose for check-ins (buttons ``followup:<action>``).
_FOLLOWUP_ACTIONS = frozenset({"less", "pause", "resume", "stop"})
#: Labels of understood facts in the echo ("Ich habe verstanden: ...").
_ECHO_KEYS = {"audience": "reason.audience", "scene": "reason.scene", "incident": "reason.incident"}


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What intake decisions may read besides the message."""

    directory: Directory
    retention: dict[str, Any]
    relay_attachments: bool = False
    #: Who runs the bot, told before consent (the app passes the checked settings).
    controller: OperatorSettings = DEMO_OPERATOR


def command_of(msg: InboundMessage, *, in_case: bool = False) -> str | None:
    """The command in a message (``/start``, ``!start`` or the plain word), normalised.

    ``in_case``: the person talks to a counsellor, so a plea ("Hilfe") is text.
    """
    text = msg.text.strip()
    if msg.button and msg.button.startswith("cmd:"):
        return msg.button[4:]
    if msg.button and msg.button.startswith("lang:"):
        return "language"
    if text[:1] in "/!" and len(text) > 1:
        word = text[1:].split(maxsplit=1)[0].split("@")[0].casefold()
        known = _COMMANDS.get(word) or _PLAIN_WORDS.get(word)
        if text[0] == "!" and known is None and (in_case or not word.isalpha() or text[1] == " "):
            return None  # "!!!", "! ja" or "!wichtig" to a counsellor: text, not a command
        return known or word
    if text.casefold() in _BACK_WORDS or text.casefold() in _BACK_WORDS_MORE:
        return "back"
    words = " ".join(text.casefold().rstrip("?!. ").split())
    if words in _WHO_WORDS:
        return "who"
    plain = _PLAIN_WORDS.get(words)
    if plain is not None and not (in_case and plain in _PLEAS):
        return plain
    said = text.casefold().replace(",", " ").rstrip("?!. ").split()
    tokens = [w for w in said if w not in _POLITE]
    if " ".join(tokens) in _DELETE_WORDS:
        return "delete"
    return None


def language_choice(arg: str) -> str | None:
    """The language a ``/language`` argument names (code, own or German/English name)."""
    word = arg.strip().casefold()
    if word in SUPPORTED:
        return word
    return _LANGUAGE_WORDS.get(word)


def language_chooser(t: Translator) -> Reply:
    """The six languages as buttons, each by its own name."""
    buttons = [Button(LANGUAGE_NAMES[code], f"lang:{code}") for code in SUPPORTED]
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return Reply(t("language.choose"), rows)


def question_reply(
    state: State, t: Translator, *, with_back: bool = True, audience: object = None
) -> Reply:
    """Render a question with its buttons (worded for the audience where a catalog has
    ``<question>.question.<audience>``, e.g. the scene question for people affected)."""
    opts = options_for(state.value, t)
    per_row = _COLUMNS.get(state, 1)
    rows: list[tuple[Button, ...]] = [
        tuple(Button(o.label, f"{state.value}:{o.value}") for o in opts[i : i + per_row])
        for i in range(0, len(opts), per_row)
    ]
    if state is State.CONSENT:  # consent is informed only in a language the person reads
        other = "en" if t.locale == "de" else "de"
        rows.append(
            (
                Button(t(f"language.switch.{other}"), f"lang:{other}"),
                Button(t("language.button"), "cmd:language"),
            )
        )
    if with_back and state not in (State.CONSENT, State.SAFETY):
        rows.append((Button(t("nav.back"), "cmd:back"),))
    key = f"{state.value}.question"
    if audience and t(f"{key}.{audience}") != f"{key}.{audience}":
        key = f"{key}.{audience}"
    return Reply(t(key), tuple(rows))


def _question(state: State, profile: dict[str, Any], t: Translator) -> Reply:
    return question_reply(state, t, audience=profile.get("audience"))


def _next(state: State, profile: dict[str, Any]) -> State:
    audience = profile.get("audience")
    if state is State.CONSENT:
        return State.SAFETY
    if state is State.SAFETY:
        return State.AUDIENCE
    if state is State.AUDIENCE:
        return State.INCIDENT if audience == Audience.AFFECTED else State.SCENE
    if state is State.INCIDENT:  # which scene decides who helps after an attack, too
        return State.SCENE
    if state is State.SCENE:
        return State.STATE
    if state is State.STATE and profile.get("state") == "MV":
        return State.DISTRICT
    if state in (State.STATE, State.DISTRICT):
        return State.PRISON if audience == Audience.SELF else State.LANGUAGE
    if state is State.PRISON:
        return State.LANGUAGE
    return State.MESSAGE


def _ask(state: State, profile: dict[str, Any], t: Translator, replies: list[Reply]) -> Transition:
    return Transition(state.value, profile, [*replies, _question(state, profile, t)])


def crisis_reply(t: Translator, danger: Danger | None = None) -> Reply:
    """Emergency numbers for the kind of danger (all of them if unknown); never queued."""
    return Reply(t(f"crisis.{danger.value}" if danger else "crisis"), urgent=True)


def contact_now(t: Translator, danger: Danger | None) -> Reply:
    """The one-button question: should someone contact the person now?"""
    data = f"{CONTACT_NOW}:{danger.value}" if danger else CONTACT_NOW
    return Reply(t("crisis.contact.question"), ((Button(t("crisis.contact.yes"), data),),))


def danger_of_button(button: str) -> Danger | None:
    """The category carried by a contact-now button (None if absent or unknown)."""
    return _danger(button[len(CONTACT_NOW) + 1 :])


def _danger(value: str) -> Danger | None:
    """A danger category from button data or the profile (None if absent or unknown)."""
    try:
        return Danger(value) if value else None
    except ValueError:
        return None


#: Plain calls for help typed at "are you in danger?": they mean "yes, right now".
HELP_WORDS = frozenset(
    {
        "hilfe", "hilfe bitte", "bitte hilfe", "hilf mir", "helft mir", "hilfe hilfe",
        "ja hilfe", "notfall", "sos", "help", "help me", "please help", "help please",
        "emergency", "yes help",
    }
)  # fmt: skip


def asks_for_help(text: str) -> bool:
    """A bare call for help ("Hilfe!", "help me"), punctuation and case ignored."""
    words = "".join(c if c.isalnum() else " " for c in text.casefold()).split()
    return " ".join(words) in HELP_WORDS


def greeting(t: Translator, ctx: IntakeContext, platform: str = "", facts: str = "") -> list[Reply]:
    """Greeting, privacy notice (who runs the bot, what a case keeps, what the platform
    itself can see) and consent: all of it before the person agrees to anything.

    ``facts`` (see handlers.understand.pack) is what the first message told us: it rides
    in the consent button, so it is used only after a yes and never stored before.
    """
    retention = ctx.retention
    notice = privacy_notice(t, "privacy.notice", retention, ctx.controller)
    key = f"privacy.platform.{platform}"
    if platform and t(key) != key:
        notice += "\n" + t(key)
    if platform == "telegram" and retention.get("matrix"):
        notice += "\n" + t("privacy.platform.telegram.matrix", **retention)
    consent = question_reply(State.CONSENT, t)
    buttons = consent.buttons
    if facts:
        buttons = tuple(
            tuple(
                replace(b, data=f"{b.data}:{facts}") if b.data == "consent:yes" else b for b in row
            )
            for row in buttons
        )
    return [Reply(t("greeting")), Reply(f"{notice}\n\n{consent.text}", buttons)]


def step(
    ctx: IntakeContext,
    state_name: str,
    profile: dict[str, Any],
    locale: str,
    msg: InboundMessage,
    audience: str | None = None,
    previous: str | None = None,
) -> Transition:
    """Decide the next step of a person's conversation.

    ``audience`` is the open case's (the answers are dropped once a case opens): it keeps
    the register ("du" / "Sie") the person was addressed with during the intake.
    ``previous`` is the person's last message if it came moments ago: people chat in
    fragments ("ich will mich" / "umbringen"), so danger is looked for in both joined.
    """
    tr = _step(ctx, state_name, profile, locale, msg, audience, previous)
    if tr.state == State.MESSAGE.value:
        t = addressed(locale, tr.profile.get("audience") or audience)
        tr.replies = [_referral_warned(ctx, r, tr.profile, t) for r in tr.replies]
    offer = [r for r in tr.replies if _offers_contact(r)]
    if offer:
        # The "contact me now" question goes last: it is what a lock screen and the chat
        # list show, and where options are typed as numbers (Matrix), "1" picks it.
        tr.replies = [r for r in tr.replies if not _offers_contact(r)] + offer[:1]
    return tr


def _referral_warned(
    ctx: IntakeContext, reply: Reply, profile: dict[str, Any], t: Translator
) -> Reply:
    """The message question, warned first when the answers lead to a programme that takes
    no chats: what the person writes next would not be passed on (route.unsent), and
    they should know that before they write it, not after."""
    if not any(b.data == "message:skip" for row in reply.buttons for b in row):
        return reply
    if route(ctx.directory, to_profile(profile)).opens_case:
        return reply
    return replace(reply, text=f"{t('message.referral_only')}\n{reply.text}")


def _offers_contact(reply: Reply) -> bool:
    return any(b.data.startswith(CONTACT_NOW) for row in reply.buttons for b in row)


def _step(
    ctx: IntakeContext,
    state_name: str,
    profile: dict[str, Any],
    locale: str,
    msg: InboundMessage,
    audience: str | None = None,
    previous: str | None = None,
) -> Transition:
    t = addressed(locale, profile.get("audience") or audience)
    state = _state(state_name, State.NEW)
    profile = dict(profile)
    if "history" in profile:  # never mutate the caller's list: it compares old and new
        profile["history"] = list(profile["history"])
    replies: list[Reply] = []
    effects: list[Effect] = []
    # After routing the answers are dropped (minimisation); a case implies consent.
    consented = bool(profile.get("consent")) or state in (State.CASE, State.REFERRED)
    # Asked "really delete?" from an open case: it still exists (and holds the danger).
    has_case = state is State.CASE or (
        state is State.DELETE and profile.get("return") == State.CASE.value
    )
    consented = consented or has_case or profile.get("return") == State.REFERRED.value

    # Crisis first: numbers even for an over-long message or a caption.
    danger = detect(msg.text) if msg.text else None
    if danger is None and previous and msg.text and not msg.button and not command_of(msg):
        danger = detect(f"{previous} {msg.text}")
    if danger is not None:
        replies.append(crisis_reply(t, danger))
        if consented:
            effects.append(Effect("mark_urgent", {"danger": danger.value}))
            if not has_case:
                profile["danger"] = danger.value  # encrypted; the case opened later keeps it
        if state is State.SAFETY and not msg.button and not command_of(msg):
            # Danger typed as the answer to "are you in danger?" is a "yes, right now".
            profile.setdefault("history", []).append(state.value)
            return urgent_case(ctx, profile, t, danger, replies, effects)
        if state not in (State.CASE, State.MESSAGE, State.DELETE):
            replies.append(contact_now(t, danger))

    if msg.button and (msg.button == CONTACT_NOW or msg.button.startswith(CONTACT_NOW + ":")):
        if state is State.NEW:  # no notice was shown to this chat yet: no informed consent
            return Transition(
                State.CONSENT.value, {}, [*replies, *greeting(t, ctx, msg.platform.value)]
            )
        if state in INTAKE_STATES or state is State.REFERRED:
            return urgent_case(ctx, profile, t, danger_of_button(msg.button), replies, effects)
        return Transition(state.value, profile, [*replies, Reply(t("start.has_case"))], effects)

    if msg.attachment:
        if state is State.CASE and ctx.relay_attachments and msg.message_ref:
            effects.append(Effect("relay_attachment", {"kind": msg.attachment}))
            return Transition(state.value, profile, replies, effects)
        return Transition(state.value, profile, [*replies, Reply(t("error.attachment"))], effects)
    if len(msg.text) > MAX_TEXT:
        too_long = Reply(t("error.too_long", max=MAX_TEXT))
        return Transition(state.value, profile, [*replies, too_long], effects)

    command = command_of(msg, in_case=state in (State.CASE, State.MESSAGE))
    arg = msg.text.strip().partition(" ")[2].strip() if msg.text else ""
    if msg.button and msg.button.startswith("lang:"):
        arg = msg.button[5:]
    elif command is None and state is State.CONSENT and language_choice(msg.text):
        command, arg = "language", msg.text  # "Русский" typed at consent: switch, ask again
    if command is not None:
        result = _command(ctx, command, state, profile, t, arg, msg.platform.value)
        result.replies[:0] = replies
        result.effects[:0] = effects
        return result

    if state is State.NEW and msg.button and msg.button.startswith("region:"):
        return _declined_region(ctx, msg, t)
    if state is State.NEW:
        # A frightened first message carries facts too ("raus aus der rechten Szene, die
        # wissen wo ich wohne"): keep them, and the kind of danger, for after the yes.
        facts = pack(understand(msg.text, t), t) if msg.text else ""
        if danger is not None:
            facts = f"{facts}:{danger.value}"
        hello = greeting(t, ctx, msg.platform.value, facts)
        return Transition(State.CONSENT.value, {}, [*replies, *hello])
    if state is State.CONFIRM:
        said = _answer(State.CONFIRM, msg, t)
        if replies and not msg.button:
            said = None  # a crisis text is no answer ("Nein, ich will nicht mehr leben")
        result = _confirm(profile, said.value if said else None, t, replies)
        result.effects[:0] = effects
        return result
    if state is State.CASE:
        if msg.button and msg.button.startswith("consent:"):
            # An old consent keyboard pressed after an (urgent) case opened: answer, kindly.
            key = "consent.after_case.no" if msg.button == "consent:no" else "start.has_case"
            return Transition(state.value, profile, [*replies, Reply(t(key))], effects)
        if msg.button and msg.button.startswith("transfer:"):
            effects.append(Effect("transfer_answer", {"yes": msg.button == "transfer:yes"}))
        elif msg.button and msg.button.startswith("followup:"):
            action = msg.button.partition(":")[2]
            if action in _FOLLOWUP_ACTIONS:
                effects.append(Effect("followups", {"action": action}))
        elif msg.text.strip():
            effects.append(Effect("relay", {"text": msg.text}))
        return Transition(state.value, profile, replies, effects)
    if state is State.REFERRED:
        fallback = chat_fallback(ctx.directory)
        if msg.button == "referred:chat" and fallback is not None and profile.get("audience"):
            prof = to_profile(profile, t.locale)
            chat = Route(fallback, "fallback", (("fallback", "directory"),))
            if fallback.state_authority:  # told first, as after the questions
                profile["via"] = "chat"
                reply = authority_reply(chat, None, t)
                return Transition(State.AUTHORITY.value, profile, [*replies, reply], effects)
            effects.append(Effect("open_case", {"route": chat, "message": None, "profile": prof}))
            return Transition(State.CASE.value, profile, replies, effects)
        return Transition(state.value, profile, [*replies, Reply(t("referred.again"))], effects)
    if state is State.AUTHORITY:
        return _authority_choice(ctx, profile, msg, t, replies, effects)
    if state is State.DELETE:
        result = _confirm_delete(ctx, profile, msg, t, replies)
        result.effects[:0] = effects  # a crisis here is still marked urgent
        return result

    answer = _answer(state, msg, t)
    town: dict[str, str] = {}
    if answer is None and not msg.button and state in (State.STATE, State.DISTRICT):
        region = state_of(msg.text, t, cue=False)  # asked where: a bare "Rostock" will do
        if region is not None and (state is State.STATE or region == ("MV", region[1])):
            town = {"state": region[0], **({"district": region[1]} if region[1] else {})}
            value = town["state"] if state is State.STATE else town.get("district")
            answer = Option(value, "") if value else None
    if replies and not msg.button and state is not State.MESSAGE:
        answer = None  # a crisis text is no answer: "Ich will mich umbringen" is not "Ich ..."
    if state is State.SAFETY and answer is None and not msg.button and asks_for_help(msg.text):
        answer = Option("yes", "")  # "hilfe" at "are you in danger?" is a yes, right now
    if state is State.MESSAGE and answer is None and msg.text.strip() and not msg.button:
        answer = Option("text", "")
    if answer is None:
        if replies:  # crisis text: numbers first, then the same question again
            return Transition(
                state.value, profile, [*replies, _question(state, profile, t)], effects
            )
        return _ask(state, profile, t, [Reply(t("error.not_understood"))])

    if state is State.CONSENT:
        result = _consent(ctx, answer.value, profile, t, replies)
        if answer.value == "yes" and msg.button and msg.button.count(":") >= 2:
            # "consent:yes:<facts>[:<danger>]" (see greeting); button data is input.
            parts = msg.button.split(":")
            pre = unpack(parts[2], t)
            if pre:
                result.profile["pre"] = pre
            kind = _danger(parts[3]) if len(parts) > 3 else None
            if kind is not None:
                result.profile["danger"] = kind.value  # encrypted, like a typed danger
        return result

    profile.setdefault("history", []).append(state.value)
    if state is State.SAFETY:
        pre = profile.pop("pre", None)
        known = _known(pre) if isinstance(pre, dict) else {}
        if answer.value == "yes":  # "yes, right now": an urgent case at once, no more questions
            # Route by what the first message already said (a region, say), if anything.
            profile = {**known, **profile}
            kind = _danger(str(profile.get("danger", "")))  # the first message's kind
            return urgent_case(ctx, profile, t, kind, [*replies, crisis_reply(t, kind)], effects)
        if known:
            return _echo(profile, known, State.AUDIENCE, t, replies, effects)
    elif state is State.MESSAGE:
        return _finish(
            ctx, profile, msg.text if answer.value == "text" else None, t, replies, effects
        )
    else:
        profile[state.value] = answer.value
        if not msg.button and state in _FACT_STATES:
            # Typed: take what else the words say, and echo all of it for a one-tap fix.
            read = {**town, state.value: answer.value, **understand(msg.text, t, profile)}
            if state is State.DISTRICT:
                read.pop("state", None)
            if exact(msg.text, options_for(state.value, t)) is None or len(read) > 1:
                profile.pop(state.value)
                profile["history"].pop()
                return _echo(profile, read, state, t, replies, effects)
    nxt = _next_open(profile)
    return Transition(nxt.value, profile, [*replies, _question(nxt, profile, t)], effects)


def _known(facts: dict[str, Any]) -> dict[str, str]:
    """Pre-filled facts that fit together (no prison answer unless about oneself, ...)."""
    out = {k: str(v) for k, v in facts.items() if k in FACTS}
    if out.get("audience") != Audience.SELF:
        out.pop("prison", None)
    if out.get("audience") != Audience.AFFECTED:
        out.pop("incident", None)
    if out.get("state") != "MV":
        out.pop("district", None)
    return out


def _echo(
    profile: dict[str, Any],
    facts: dict[str, str],
    asked: State,
    t: Translator,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """Take understood facts and ask "Stimmt das?" (yes / correct it)."""
    have = {k: profile[k] for k in FACTS if k in profile}
    facts = {k: v for k, v in _known({**have, **facts}).items() if k not in profile}
    if not facts:
        return _ask(asked, profile, t, [*replies, Reply(t("error.not_understood"))])
    history = profile.setdefault("history", [])
    for key in FACTS:  # asked order, so "zurück" walks back through them
        if key in facts:
            profile[key] = facts[key]
            history.append(key)
    profile["echo"] = [k for k in FACTS if k in facts]
    profile["echo_at"] = asked.value
    return Transition(State.CONFIRM.value, profile, [*replies, confirm_reply(facts, t)], effects)


def echo_text(facts: dict[str, str], t: Translator) -> str:
    """What was understood, in the reader's words (never the first line of a message)."""
    parts = []
    for key in FACTS:
        value = facts.get(key)
        if value is None:
            continue
        if key in _ECHO_KEYS:
            parts.append(t(f"{_ECHO_KEYS[key]}.{value}"))
        elif key == "state":
            parts.append(STATES.get(value, value))
        elif key == "district":
            parts.append(MV_DISTRICTS.get(value, value))
        elif key == "prison":
            parts.append(t(f"echo.prison.{value}"))
        else:
            parts.append(t("echo.language", language=LANGUAGES.get(value, value)))
    return ", ".join(parts)


def confirm_reply(facts: dict[str, str], t: Translator) -> Reply:
    """The echo with its two buttons."""
    buttons = tuple(
        (Button(o.label, f"confirm:{o.value}"),) for o in options_for(State.CONFIRM.value, t)
    )
    return Reply(t("confirm.question", facts=echo_text(facts, t)), buttons)


def _confirm(
    profile: dict[str, Any], answer: str | None, t: Translator, replies: list[Reply]
) -> Transition:
    """The answer to an echo: ``yes`` goes on, ``no`` drops what was read and asks again."""
    echoed = [k for k in profile.get("echo") or [] if k in FACTS]
    asked = _state(profile.get("echo_at"), State.AUDIENCE)
    if answer is None:
        again = confirm_reply({k: profile[k] for k in echoed if k in profile}, t)
        return Transition(
            State.CONFIRM.value, profile, [*replies, Reply(t("error.not_understood")), again]
        )
    profile.pop("echo", None)
    profile.pop("echo_at", None)
    if answer == "no":  # the correction: drop what was read and ask one by one
        history = profile.setdefault("history", [])
        for key in echoed:
            profile.pop(key, None)
            if key in history:
                history.remove(key)
        return _ask(asked, profile, t, [*replies, Reply(t("confirm.redo"))])
    nxt = _next_open(profile)
    return Transition(nxt.value, profile, [*replies, _question(nxt, profile, t)])


def _next_open(profile: dict[str, Any]) -> State:
    """The first question on the person's path that has no answer yet."""
    state = State.SAFETY
    while True:
        state = _next(state, profile)
        if state not in _FACT_STATES or state.value not in profile:
            return state


def _answer(state: State, msg: InboundMessage, t: Translator) -> Option | None:
    opts = options_for(state.value, t)
    if msg.button:
        prefix, _, value = msg.button.partition(":")
        if state is State.CONSENT:
            value = value.partition(":")[0]  # "consent:yes:<facts>" (see greeting)
        if prefix != state.value:
            return None
        return next((o for o in opts if o.value == value), None)
    if state is State.CONSENT and msg.text.strip().casefold() in ("english", "deutsch"):
        return None
    # Consent must be unambiguous ("I don't agree" is no yes), deleting is final and a
    # message is free text ("ich weiß nicht weiter ..."): only a whole answer counts there.
    return match(msg.text, opts, partial=state not in _WHOLE_ANSWER)


def _consent(
    ctx: IntakeContext, value: str, profile: dict[str, Any], t: Translator, replies: list[Reply]
) -> Transition:
    if value == "yes":
        kept = {k: profile[k] for k in REFERRAL_KEYS if k in profile}
        profile = {**kept, "consent": True, "history": []}
        return _ask(State.SAFETY, profile, t, [*replies, Reply(t("consent.thanks"))])
    if value == "more":
        consent = question_reply(State.CONSENT, t)
        details = privacy_notice(t, "privacy.details", ctx.retention, ctx.controller)
        return Transition(
            State.CONSENT.value,
            profile,
            [*replies, Reply(f"{details}\n\n{consent.text}", consent.buttons)],
        )
    text = t("consent.declined", contacts=national_contacts(ctx.directory, t))
    regions = question_reply(State.STATE, t, with_back=False).buttons
    buttons = tuple(tuple(replace(b, data="region:" + b.data[6:]) for b in row) for row in regions)
    return Transition(State.NEW.value, {}, [*replies, Reply(text, buttons)], [Effect("erase")])


def _declined_region(ctx: IntakeContext, msg: InboundMessage, t: Translator) -> Transition:
    """Contacts for a region picked after declining consent; nothing is stored."""
    region = (msg.button or "").partition(":")[2]
    regional = [p for p in ctx.directory.programmes if region in p.states and not p.national]
    national = [p for p in ctx.directory.programmes if p.national]
    lines = [line for line in (listed_contacts(p, t) for p in regional) if line]
    key = "declined.contacts" if lines else "declined.contacts.none"
    lines += [line for line in (listed_contacts(p, t) for p in national) if line]
    lines.append(t("crisis.short"))
    text = t(key, contacts="\n".join(lines))
    return Transition(State.NEW.value, {}, [Reply(text)], [Effect("erase")])


def national_contacts(directory: Directory, t: Translator) -> str:
    """Contact lines of the directory's fallback programmes and the crisis lines."""
    lines = [listed_contacts(directory.by_id[i], t) for i in directory.fallback]
    lines.append(t("crisis.short"))
    return "\n".join(line for line in lines if line)


def listed_contacts(programme: Programme, t: Translator) -> str:
    """A programme's contact line in a list, with the notice the directory attaches to it
    (the chat path shows it before referring; a list must not drop it). Empty if the
    programme published no contact."""
    line = contact_lines(programme, t)
    if line and programme.notice:
        line += "\n" + programme.notice[_lang(t)]
    return line


def _lang(t: Translator) -> Any:
    """The locale a directory text exists in (German and English; others read English)."""
    return t.locale if t.locale in ("de", "en") else "en"


def contact_lines(programme: Programme, t: Translator) -> str:
    """How to reach a programme without the chat, one line (empty if it published none)."""
    c = programme.contact
    parts = [
        *([t("contact.phone", phone=c.phone)] if c.phone else []),
        *(t("contact.email", email=e) for e in c.emails),
        *([t("contact.web", web=c.web)] if c.web else []),
        *([t("contact.postal", postal=c.postal)] if c.postal else []),
        *([t("contact.police")] if c.via_police else []),
    ]
    if not parts:
        return ""
    return f"{programme.name}: {', '.join(parts)}"


def _finish(
    ctx: IntakeContext,
    profile: dict[str, Any],
    text: str | None,
    t: Translator,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    prof = to_profile(profile, t.locale)
    result = route(ctx.directory, prof)
    if result.opens_case and result.programme.state_authority:
        # Told before a word goes there; the typed message waits (encrypted, intake expiry).
        if text:
            profile["pending"] = text
        reply = authority_reply(result, without_authority(ctx.directory, prof), t)
        return Transition(State.AUTHORITY.value, profile, [*replies, reply], effects)
    return _open(result, prof, profile, text, replies, effects)


def _open(
    result: Route,
    prof: Profile,
    profile: dict[str, Any],
    text: str | None,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    data = {"route": result, "message": text, "profile": prof, "danger": profile.get("danger")}
    effects.append(Effect("open_case", data))  # the kind of danger told during the intake
    nxt = State.CASE if result.opens_case else State.REFERRED
    return Transition(nxt.value, profile, replies, effects)


def urgent_case(
    ctx: IntakeContext,
    profile: dict[str, Any],
    t: Translator,
    danger: Danger | None,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """Open an urgent case at once with only what is known; skip the other questions.

    Before consent the press of "contact me now" is the consent, for this case and
    only what it carries: the urgent mark, the kind of danger, a referral link.
    """
    if not profile.get("consent"):
        profile = {k: profile[k] for k in REFERRAL_KEYS if k in profile}
        profile["consent"] = True
    known = danger.value if danger else profile.get("danger")
    prof = to_profile(profile, t.locale)
    result = urgent_route(ctx.directory, prof)
    if not any(e.kind == "mark_urgent" for e in effects):
        effects.append(Effect("mark_urgent", {"danger": known}))
    effects.append(
        Effect(
            "open_case",
            {
                "route": result,
                "message": None,
                "profile": prof,
                "danger": known,
                "audience_known": "audience" in profile,
            },
        )
    )
    replies.append(Reply(t("crisis.contact.opened")))
    nxt = State.CASE if result.opens_case else State.REFERRED
    return Transition(nxt.value, profile, replies, effects)


def urgent_route(directory: Directory, profile: Profile) -> Route:
    """Where an urgent case goes: the usual route if counsellors chat there, else the
    state's coordination office if it chats, else the first chatting fallback."""
    result = route(directory, profile)
    if result.opens_case:
        return result
    for p in directory.programmes:
        if p.kind is Kind.COORDINATION and profile.state in p.states and p.chat_enabled:
            return Route(p, "coordination", (("state", profile.state or ""),))
    for pid in directory.fallback:
        p = directory.by_id[pid]
        if p.chat_enabled:
            return Route(p, "fallback", (("fallback", "directory"),))
    return result


def authority_reply(result: Route, other: Route | None, t: Translator) -> Reply:
    """One sentence on who runs the programme, and the choice: continue, another
    programme (when routing has one that takes chats), or contact details only."""
    programme = result.programme
    text = t(
        "authority.notice",
        programme=programme.name,
        authority=programme.operator_name or programme.name,
    )
    rows = [(Button(t("authority.button.continue"), "authority:continue"),)]
    if other is not None:
        text += "\n" + t("authority.part.alternative", alternative=other.programme.name)
        rows.append((Button(t("authority.button.alternative"), "authority:alternative"),))
    rows.append((Button(t("authority.button.contacts"), "authority:contacts"),))
    rows.append((Button(t("nav.back"), "cmd:back"),))
    return Reply(f"{text}\n\n{t('authority.question')}", tuple(rows))


def _authority_choice(
    ctx: IntakeContext,
    profile: dict[str, Any],
    msg: InboundMessage,
    t: Translator,
    replies: list[Reply],
    effects: list[Effect],
) -> Transition:
    """The person's choice before a hand-over to a state authority's programme."""
    prof = to_profile(profile, t.locale)
    result, other = _authority_routes(ctx, profile, prof)
    choice = _authority_answer(msg, t, other is not None)
    if choice is None or (replies and not msg.button):  # a crisis text is no choice
        again = [] if replies else [Reply(t("error.not_understood"))]
        reply = authority_reply(result, other, t)
        return Transition(State.AUTHORITY.value, profile, [*replies, *again, reply], effects)
    text = profile.pop("pending", None)
    profile.pop("via", None)
    if choice == "contacts":
        programme = result.programme
        contacts = listed_contacts(programme, t) or t("contact.none")
        replies.append(Reply(t("authority.contacts", programme=programme.name, contacts=contacts)))
        if text:  # nothing typed is dropped silently
            replies.append(Reply(t("route.unsent")))
        return Transition(State.NEW.value, {}, replies, [*effects, Effect("erase")])
    chosen = replace(other, step="chosen") if choice == "alternative" and other else result
    return _open(chosen, prof, profile, text, replies, effects)


def _authority_routes(
    ctx: IntakeContext, profile: dict[str, Any], prof: Profile
) -> tuple[Route, Route | None]:
    """The route the choice is about and the alternative, worked out again (the directory
    may have been reloaded): the intake's route, or the chat team a referred person asked
    for (no alternative there: that team is the directory's last resort)."""
    fallback = chat_fallback(ctx.directory) if profile.get("via") == "chat" else None
    if fallback is not None:
        return Route(fallback, "fallback", (("fallback", "directory"),)), None
    return route(ctx.directory, prof), without_authority(ctx.directory, prof)


def _authority_again(ctx: IntakeContext, profile: dict[str, Any], t: Translator) -> Reply:
    """The authority notice and choice once more (after a language switch or /delete)."""
    return authority_reply(*_authority_routes(ctx, profile, to_profile(profile, t.locale)), t)


def _authority_answer(msg: InboundMessage, t: Translator, alternative: bool) -> str | None:
    offered = [c for c in AUTHORITY_CHOICES if alternative or c != "alternative"]
    if msg.button:
        prefix, _, value = msg.button.partition(":")
        return value if prefix == State.AUTHORITY.value and value in offered else None
    typed = msg.text.strip().casefold()
    labels = {t(f"authority.button.{c}").casefold(): c for c in offered}
    numbered = {str(i): c for i, c in enumerate(offered, 1)}
    return labels.get(typed) or numbered.get(typed)


def to_profile(profile: dict[str, Any], locale: str = "de") -> Profile:
    """Turn stored answers into a routing profile; without an answer about the language
    of counselling, the language the person reads here (``locale``) is theirs."""
    state = profile.get("state")
    district = profile.get("district")
    return Profile(
        audience=Audience(profile.get("audience", Audience.SELF)),
        scene=Scene(profile["scene"]) if profile.get("scene") else None,
        state=state if state and state != "none" else None,
        district=district if district and district != "skip" else None,
        in_prison={"yes": True, "no": False}.get(profile.get("prison", "")),
        language=(
            profile["language"] if profile.get("language") not in (None, "other") else locale
        ),
        incident=Incident(profile["incident"]) if profile.get("incident") else None,
        preferred=profile.get("ref"),
        source=profile.get("source"),
    )


def _command(
    ctx: IntakeContext,
    command: str,
    state: State,
    profile: dict[str, Any],
    t: Translator,
    arg: str = "",
    platform: str = "",
) -> Transition:
    if command == "start":
        if state in (State.CASE,):
            return Transition(state.value, profile, [Reply(t("start.has_case"))])
        effects = [Effect("restart")]
        if arg:
            effects.append(Effect("referral", {"code": arg[:24]}))
        return Transition(State.CONSENT.value, {}, greeting(t, ctx, platform), effects)
    if command == "vanish":
        return Transition(state.value, profile, [], [Effect("vanish")])
    if command in ("pause", "resume"):
        if state is not State.CASE:
            return Transition(state.value, profile, [Reply(t("followup.none"))])
        return Transition(state.value, profile, [], [Effect("followups", {"action": command})])
    if command == "help":
        text = t("help.person")
        if platform == "matrix":  # Element: "!" or the plain word, never "/"
            text += "\n\n" + t("help.person.matrix")
        return Transition(state.value, profile, [Reply(text)])
    if command == "who":
        if state is State.CASE:
            return Transition(state.value, profile, [], [Effect("who")])
        key = "referred.again" if state is State.REFERRED else "who.none"
        return Transition(state.value, profile, [Reply(t(key))])
    if command == "language":
        target = language_choice(arg)
        if target is None:  # no (known) language named: offer all six by their own names
            return Transition(state.value, profile, [language_chooser(t)])
        new_t = addressed(target, profile.get("audience"))
        replies = [Reply(new_t("language.switched"))]
        if state is State.CONSENT:  # consent is informed only in a language the person reads
            replies.append(greeting(new_t, ctx, platform)[-1])
        elif state in QUESTIONS:
            replies.append(_question(state, profile, new_t))
        elif state is State.CONFIRM:
            echoed = {k: profile[k] for k in profile.get("echo") or [] if k in profile}
            replies.append(confirm_reply(echoed, new_t))
        elif state is State.AUTHORITY:
            replies.append(_authority_again(ctx, profile, new_t))
        return Transition(state.value, profile, replies, [Effect("set_locale", {"locale": target})])
    if command == "delete":
        if state is State.NEW or (state is State.CONSENT and not profile.get("consent")):
            return Transition(State.NEW.value, {}, [Reply(t("delete.nothing"))], [Effect("erase")])
        confirm = question_reply(State.DELETE, t, with_back=False)
        back_to = profile.get("return", State.CONSENT.value) if state is State.DELETE else state
        return Transition(State.DELETE.value, {**profile, "return": str(back_to)}, [confirm])
    if command == "back" and state is State.CONFIRM:  # back from an echo: correct it
        return _confirm(profile, "no", t, [])
    if command == "back" and state is State.AUTHORITY and profile.pop("via", None):
        return Transition(State.REFERRED.value, profile, [Reply(t("referred.again"))])
    if command == "back" and state is State.AUTHORITY:
        profile.pop("pending", None)
        if profile.get("history"):
            profile["history"].pop()
        return _ask(State.MESSAGE, profile, t, [])
    if command == "back":
        history = profile.get("history") or []
        if state not in QUESTIONS or not history:
            if state in QUESTIONS:
                return _ask(state, profile, t, [Reply(t("nav.back.none"))])
            return Transition(state.value, profile, [Reply(t("nav.back.none"))])
        previous = _state(history.pop(), state)
        profile.pop(previous.value, None)  # asked again: no stale answer on another path
        return _ask(previous, profile, t, [])
    return Transition(state.value, profile, [Reply(t("error.unknown_command"))])


def _confirm_delete(
    ctx: IntakeContext,
    profile: dict[str, Any],
    msg: InboundMessage,
    t: Translator,
    replies: list[Reply],
) -> Transition:
    answer = _answer(State.DELETE, msg, t)
    if answer is None or (replies and not msg.button):
        # A crisis text is no wrong answer (and no "yes"): numbers, then the question again.
        confirm = question_reply(State.DELETE, t, with_back=False)
        wrong = [] if replies else [Reply(t("error.not_understood"))]
        return Transition(State.DELETE.value, profile, [*replies, *wrong, confirm])
    if answer.value == "yes":
        return Transition(State.NEW.value, {}, replies, [Effect("erase", {"receipt": True})])
    back = _state(profile.pop("return", State.CONSENT.value), State.CONSENT)
    replies.append(Reply(t("delete.cancelled")))
    if back in QUESTIONS:
        replies.append(_question(back, profile, t))
    elif back is State.CONFIRM:
        echoed = {k: profile[k] for k in profile.get("echo") or [] if k in profile}
        replies.append(confirm_reply(echoed, t))
    elif back is State.AUTHORITY:
        replies.append(_authority_again(ctx, profile, t))
    return Transition(back.value, profile, replies)


def _state(value: object, default: State) -> State:
    """A stored state name, or ``default`` if it is not one (never trust stored data blindly)."""
    try:
        return State(str(value))
    except ValueError:
        return default
