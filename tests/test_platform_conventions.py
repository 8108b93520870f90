"""Issue 12 part 10: each platform's conventions.

* Element (Matrix) reads "/..." as its own command (``/help`` never reaches the bot, any
  other opens a "send as message?" dialog): texts bound for Matrix name ``!delete``,
  people may type ``!cmd`` or the plain word; Telegram keeps its /commands.
* A name that ends in a mark ("JUMP!", "API e.V.") is not followed by a second one.
* The bot's Matrix display name must not give the topic away (preflight).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.commands import COMMANDS, PERSON_COMMANDS, for_platform
from bot.transports.matrix.render import notice_content
from bot.transports.memory import MemoryTransport
from config.clock import FakeClock
from config.directory import Directory, parse_directory
from config.i18n import SUPPORTED, after_name, catalog, fill, translator
from config.messages import Address, InboundMessage, Platform
from config.preflight import profile_refusals
from config.settings import MatrixSettings, Settings
from handlers import intake
from tests.conftest import make_settings
from tests.world import DIRECTORY, World, texts

#: A command named with a slash, as a word of its own (not in a path or an address).
SLASH_COMMAND = re.compile(r"(?<![\w/.:@-])/[a-z_]+\b")
NAMES = ("JUMP!", "API e.V.")


# ---------------------------------------------------------------- punctuation after names
@pytest.mark.parametrize(
    ("name", "following", "expected"),
    [
        ("JUMP!", ".", "JUMP!"),
        ("JUMP!", ".\nDein Fallcode", "JUMP!\nDein Fallcode"),
        ("API e.V.", ".", "API e.V."),
        ("API e.V.", ", dort", "API e.V., dort"),
        ("API e.V.", "?", "API e.V.?"),
        ("JUMP!", "!", "JUMP!"),
        ("JUMP!", ":", "JUMP!:"),
        ("Exit", ".", "Exit."),
        ("Exit", "", "Exit"),
    ],
)
def test_after_name_drops_only_a_doubled_mark(name: str, following: str, expected: str) -> None:
    assert name + after_name(name, following) == expected


def test_fill_applies_the_rule_after_every_placeholder_and_keeps_format() -> None:
    text = "bei {programme}. {alias} von {other}, Seite {page:>2}{{x}}"
    got = fill(text, {"programme": "JUMP!", "alias": "Jo", "other": "API e.V.", "page": 3})
    assert got == "bei JUMP! Jo von API e.V., Seite  3{x}"


@pytest.mark.parametrize("locale", SUPPORTED)
@pytest.mark.parametrize("name", NAMES)
def test_no_catalog_text_doubles_a_mark_after_a_name(locale: str, name: str) -> None:
    t = translator(locale)
    field = re.compile(r"\{(\w+)(:[^}]*)?\}")
    checked = 0
    for key, text in catalog(locale).items():
        # a count (``{x:#n.days}``) gets a number; every other value the name
        params = {f: (2 if spec.startswith(":#") else name) for f, spec in field.findall(text)}
        if not params:
            continue
        rendered = t(key, **params)
        checked += 1
        assert f"{name}." not in rendered, (key, rendered)
    assert checked > (20 if locale in ("de", "en") else 0)


# ---------------------------------------------------------------- commands per platform
def test_every_command_a_catalog_names_is_known_to_the_renderer() -> None:
    named = {
        m.group()[1:]
        for locale in SUPPORTED
        for text in catalog(locale).values()
        for m in SLASH_COMMAND.finditer(text)
    }
    assert named, "the catalogs name no command at all?"
    assert named <= COMMANDS, named - COMMANDS


@pytest.mark.parametrize("locale", SUPPORTED)
def test_matrix_texts_name_no_slash_command_and_never_help(locale: str) -> None:
    for key, text in catalog(locale).items():
        body = notice_content(text)["body"]
        assert not SLASH_COMMAND.search(body), (key, body)
        assert "/help" not in body, key


def test_telegram_and_console_keep_their_slash_commands() -> None:
    text = translator("de")("help.person")
    assert "/delete" in text
    for platform in (Platform.TELEGRAM, Platform.CONSOLE, Platform.MEMORY):
        assert for_platform(text, platform) == text
    matrix = for_platform(text, Platform.MATRIX)
    assert "!delete" in matrix
    assert "!language" in matrix
    assert for_platform("Deutsch / English", Platform.MATRIX) == "Deutsch / English"


def test_matrix_rendering_leaves_addresses_and_quoted_person_text_alone() -> None:
    text = (
        "Mehr: https://example.org/start und mail@x.org/delete\n"
        "> /start hab ich getippt\n"
        "So geht es: /r K-ABCD Text (oder /who)."
    )
    got = for_platform(text, Platform.MATRIX).split("\n")
    assert got[0] == "Mehr: https://example.org/start und mail@x.org/delete"
    assert got[1] == "> /start hab ich getippt"
    assert got[2] == "So geht es: !r K-ABCD Text (oder !who)."
    content = notice_content(text)
    assert "!who" in content["formatted_body"]
    assert "/who" not in content["formatted_body"]


def _msg(text: str, platform: Platform = Platform.MATRIX) -> InboundMessage:
    return InboundMessage(platform, "@p:x", Address(platform, "!room:x"), text=text)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("!delete", "delete"),
        ("!löschen", "delete"),
        ("löschen", "delete"),
        ("Löschen!", "delete"),
        ("alles  löschen", "delete"),
        ("!sprache", "language"),
        ("Sprache", "language"),
        ("hilfe", "help"),
        ("!hilfe", "help"),
        ("help?", "help"),
        ("wer", "who"),
        ("zurück", "back"),
        ("pause", "pause"),
        ("fortsetzen", "resume"),
        ("!vanish", "vanish"),
        ("/delete", "delete"),
        ("удалить", "delete"),
        ("!удалить", "delete"),
        ("Yardım", "help"),
        ("حذف", "delete"),
    ],
)
def test_people_may_type_bang_commands_and_plain_words(text: str, command: str) -> None:
    assert intake.command_of(_msg(text)) == command


@pytest.mark.parametrize(
    "text", ["verschwinden", "ich will löschen", "Hilfe bitte", "Start-up", "!!!", "! ja", "!1"]
)
def test_other_text_is_no_command(text: str) -> None:
    assert intake.command_of(_msg(text)) is None


def test_an_unknown_bang_word_is_text_in_a_case_and_an_unknown_command_before() -> None:
    assert intake.command_of(_msg("!wichtig"), in_case=True) is None
    assert intake.command_of(_msg("!wichtig")) == "wichtig"  # answered: "!help shows ..."
    assert intake.command_of(_msg("/wichtig"), in_case=True) == "wichtig"


def test_a_lone_help_in_a_case_is_a_plea_not_the_command_list() -> None:
    assert intake.command_of(_msg("Hilfe"), in_case=True) is None
    assert intake.command_of(_msg("!hilfe"), in_case=True) == "help"
    assert intake.command_of(_msg("löschen"), in_case=True) == "delete"


# ---------------------------------------------------------------- through the core
def _named_directory() -> Directory:
    text = DIRECTORY.replace("name: Alpha MV", 'name: "JUMP!"').replace(
        "name: Beta NRW", 'name: "API e.V."'
    )
    return parse_directory("discretion: {name_programme: true}\n" + text)


@pytest.fixture
async def named(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The casework world with programmes called "JUMP!" and "API e.V."."""
    transport = MemoryTransport()
    app = App(settings, [transport], clock=clock, directory=_named_directory())
    await app.start()
    try:
        yield World(app, transport, clock)
    finally:
        await app.stop()


async def test_names_ending_in_a_mark_are_not_followed_by_a_second_one(named: World) -> None:
    w = named
    code = await w.open("p1")
    shown = texts(w.t.sent)
    assert "bei JUMP!\n" in shown
    await w.staff("a1", f"/claim {code}")
    got = texts(await w.person("p1", "wer"))
    assert "von JUMP!\n" in got
    await w.staff("a1", f"/transfer {code} beta")
    got = texts(await w.person("p1", "b:transfer:yes"))
    assert "jetzt bei API e.V.\n" in got
    everything = texts(w.t.sent)
    for doubled in ("JUMP!.", "e.V..", "JUMP!!"):
        assert doubled not in everything


async def test_plain_words_work_through_the_core_on_matrix_and_help_names_them(
    harness_matrix: MemoryTransport,
) -> None:
    t = harness_matrix
    await t.push("p", "hallo")
    t.pop("p")
    await t.push("p", "hilfe")
    got = texts(t.pop("p"))
    assert translator("de")("help.person.matrix") in got
    await t.push("p", "sprache")
    got = texts(t.pop("p"))
    assert translator("de")("language.choose") in got  # the six languages to choose from
    await t.push("p", "löschen")
    got = texts(t.pop("p"))
    assert translator("de")("delete.nothing") in got


@pytest.fixture
async def harness_matrix(
    settings: Settings, clock: FakeClock, directory: Directory
) -> AsyncIterator[MemoryTransport]:
    """The core behind a memory transport that reports its messages as Matrix ones."""
    transport = MemoryTransport()
    transport.platform = Platform.MATRIX  # type: ignore[misc]
    app = App(settings, [transport], clock=clock, directory=directory)
    await app.start()
    try:
        yield transport
    finally:
        await app.stop()


def test_telegram_help_has_no_matrix_line() -> None:
    ctx = intake.IntakeContext(_named_directory(), {})
    tr = intake.step(ctx, "consent", {}, "de", _msg("/help", Platform.TELEGRAM))
    assert translator("de")("help.person.matrix") not in texts_of(tr)
    tr = intake.step(ctx, "consent", {}, "de", _msg("!help"))
    assert translator("de")("help.person.matrix") in texts_of(tr)


def texts_of(tr: intake.Transition) -> str:
    return "\n".join(r.text for r in tr.replies)


# ---------------------------------------------------------------- the bot's profile
def _matrix(tmp_path: Path, **kw: object) -> Settings:
    settings = make_settings(tmp_path)
    settings.matrix = MatrixSettings(enabled=True, **kw)  # type: ignore[arg-type]
    return settings


@pytest.mark.parametrize("name", ["Ausstieg Rechts", "JUMP! Hilfe", "Exit help"])
def test_a_display_name_that_gives_the_topic_away_is_refused(tmp_path: Path, name: str) -> None:
    found = profile_refusals(_matrix(tmp_path, display_name=name), _named_directory())
    assert any("matrix.display_name" in f for f in found), found


def test_a_neutral_display_name_and_a_small_png_pass(tmp_path: Path) -> None:
    avatar = tmp_path / "a.png"
    avatar.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    directory = _named_directory()
    ok = _matrix(tmp_path, display_name="Ausweg", avatar_path=avatar)
    assert profile_refusals(ok, directory) == []
    missing = profile_refusals(_matrix(tmp_path, avatar_path=tmp_path / "no.png"), directory)
    assert any("does not exist" in f for f in missing)
    wrong = profile_refusals(_matrix(tmp_path, avatar_path=tmp_path / "a.gif"), directory)
    assert any("not a PNG" in f for f in wrong)
    assert PERSON_COMMANDS <= COMMANDS


async def test_in_a_case_bang_text_and_a_lone_plea_reach_the_counsellor(named: World) -> None:
    w = named
    code = await w.open("p1")
    await w.staff("a1", f"/claim {code}")
    w.t.pop("alpha-room")
    for text in ("!!! danke", "!wichtig: morgen geht nicht", "Hilfe"):
        mine = await w.person("p1", text)
        assert not any("Befehl" in m.text for m in mine), text
        room = texts(w.t.pop("alpha-room"))
        assert f"> {text}" in room, (text, room)
