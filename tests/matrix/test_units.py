"""Pure parts of the Matrix transport: rendering, reactions, reply fallbacks, session file."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import pytest

from bot.transports.matrix.crosssign import CrossSigningSeeds
from bot.transports.matrix.render import (
    BUTTON_KEYCAPS,
    attachment_kind,
    is_matrix_id,
    notice_content,
    reaction_choice,
    strip_reply_fallback,
)
from bot.transports.matrix.session import (
    SessionError,
    StoredSession,
    derive_key,
    load_session,
    save_session,
)
from config.messages import Button


def test_notice_escapes_html_and_numbers_buttons() -> None:
    content = notice_content('<b>Hi</b> & "du"\nzweite Zeile', [Button("Ja <x>", "a:1")])
    assert content["msgtype"] == "m.notice"
    assert content["body"] == '<b>Hi</b> & "du"\nzweite Zeile\n\n1. Ja <x>'
    assert content["formatted_body"] == (
        "&lt;b&gt;Hi&lt;/b&gt; &amp; &quot;du&quot;<br>zweite Zeile<ol><li>Ja &lt;x&gt;</li></ol>"
    )
    assert content["m.mentions"] == {}
    assert "a:1" not in json.dumps(content)  # button data never leaves the bot


@pytest.mark.parametrize(
    ("key", "count", "expected"),
    [
        (BUTTON_KEYCAPS[0], 3, 0),
        (BUTTON_KEYCAPS[2], 3, 2),
        (BUTTON_KEYCAPS[3], 3, None),
        ("2\u20e3", 2, 1),
        ("2", 2, 1),
        ("\U0001f51f", 10, 9),
        ("\U0001f44d", 1, 0),
        ("\U0001f44d", 2, None),
        ("\u2764\ufe0f", 1, None),
        ("0", 3, None),
        ("\u0663", 5, None),  # Arabic-Indic 3: not a keycap
    ],
)
def test_reaction_choice(key: str, count: int, expected: int | None) -> None:
    assert reaction_choice(key, count) == expected


def test_reply_fallback_is_stripped() -> None:
    body = "> <@counsellor:example.org> Wer bist du?\n> zweite Zeile\n\nIch bin es"
    assert strip_reply_fallback(body) == "Ich bin es"
    assert strip_reply_fallback("kein Zitat") == "kein Zitat"
    assert strip_reply_fallback("> <@sam:example.org> nur Zitat") == ""
    # no sender in the first line: the person's own quote, kept (red-team finding 4)
    assert strip_reply_fallback("> nur Zitat") == "> nur Zitat"


def test_small_helpers() -> None:
    assert attachment_kind("m.image") == "photo"
    assert attachment_kind("m.text") is None
    assert is_matrix_id("@a.b_c=d/e+f-g:example.org:8448")
    assert not is_matrix_id("counsellor")
    assert not is_matrix_id("!room:example.org")


def _keys() -> dict[int, bytes]:
    return {1: secrets.token_bytes(32)}


def test_session_file_is_sealed_private_and_bound_to_its_key_version(tmp_path: Path) -> None:
    keys = _keys()
    path = tmp_path / "m" / "session.json"
    token = "syt_" + secrets.token_urlsafe(24)
    seeds = CrossSigningSeeds.generate()
    session = StoredSession("https://hs", "@bot:hs", "DEVICEID", token, seeds, 1)
    assert token not in repr(session)
    save_session(path, session, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for secret in (token.encode(), b"DEVICEID", seeds.master.hex().encode()):
        assert secret not in raw
    loaded = load_session(path, keys)
    assert loaded == (session, 1)
    assert [p.name for p in path.parent.iterdir()] == ["session.json"]

    # A newer key seals the next write; the old one still opens the old file.
    keys[2] = secrets.token_bytes(32)
    assert load_session(path, keys) == (session, 1)
    save_session(path, session, keys)
    assert load_session(path, {2: keys[2]}) == (session, 2)

    # The key version is bound: relabelling the envelope fails.
    envelope = json.loads(path.read_bytes())
    envelope["key_version"] = 1
    path.write_text(json.dumps(envelope))
    with pytest.raises(SessionError, match="cannot decrypt"):
        load_session(path, keys)
    with pytest.raises(SessionError, match="not configured"):
        load_session(path, {3: keys[2]})
    path.write_text("{not json")
    with pytest.raises(SessionError, match="damaged"):
        load_session(path, keys)
    assert load_session(tmp_path / "missing.json", keys) is None


def test_derived_keys_differ_by_purpose() -> None:
    master = secrets.token_bytes(32)
    assert derive_key(master, b"a") != derive_key(master, b"b")
    assert len(derive_key(master, b"a")) == 32


def test_from_settings_takes_staff_rooms_from_the_directory(tmp_path: Path) -> None:
    import yaml
    from pydantic import SecretStr

    from bot.transports.factory import build_transports
    from bot.transports.matrix import MatrixTransport
    from config.settings import EXAMPLE_DIRECTORY, MatrixSettings
    from tests.conftest import make_settings

    data = yaml.safe_load(EXAMPLE_DIRECTORY.read_text(encoding="utf-8"))
    data["programmes"][0]["staff_rooms"] = {"matrix": "!team:example.org"}
    directory = tmp_path / "directory.yaml"
    directory.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    settings.directory_path = directory
    settings.matrix = MatrixSettings(
        enabled=True,
        homeserver="https://matrix.example.org",
        user_id="@ausweg:example.org",
        password=SecretStr(secrets.token_urlsafe(16)),
        store_pickle_key=SecretStr(secrets.token_urlsafe(24)),
    )
    (transport,) = build_transports(settings)
    assert isinstance(transport, MatrixTransport)
    assert transport.staff_rooms == {"!team:example.org"}
    assert transport.store_path == settings.data_dir / "matrix"
