"""The command line as a user runs it: scripted demo journeys and check-config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUSWEG_")}
    if args[:1] != ["demo"]:  # the demo keeps to its own folder (and refuses a data dir)
        env["AUSWEG_DATA_DIR"] = str(tmp_path / "data")
    # This checkout's code, not whichever one is installed (the cwd is tmp_path).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def demo_script(*answers: str, message: str, reply: str, choice: str | None = None) -> str:
    lines = [
        "/start",
        "1",
        "Nein",
        *answers,
        message,
        *([choice] if choice else []),
        "#c",
        "/queue",
        "1",
        reply,
        "#p",
        "Danke",
        "#q",
    ]
    return "\n".join(lines) + "\n"


JOURNEYS = {
    "right-wing-mv-jump": (
        ("1", "rechts", "Mecklenburg", "überspringen", "nein", "Deutsch"),
        "JUMP!",
    ),
    # a typed answer that is read rather than matched is echoed: "stimmt" confirms it
    "left-wing-nrw-left": (("ich will raus", "stimmt", "links", "NRW", "2", "1"), "LEFT"),
    "mother-bavaria-fallback": (
        ("Ich mache mir Sorgen", "stimmt", "rechts", "Bayern", "deutsch"),
        "Clearingstelle",
    ),
}
#: Programmes run by a state authority: the person is told and chooses (1 = go on).
CHOICES = {"left-wing-nrw-left": "1"}


@pytest.mark.parametrize("name", list(JOURNEYS))
def test_demo_journey_to_counsellor_reply(name: str, tmp_path: Path) -> None:
    answers, programme = JOURNEYS[name]
    script = demo_script(
        *answers, message="Ich brauche Hilfe.", reply="Hallo, ich bin da.", choice=CHOICES.get(name)
    )
    proc = run(["demo"], tmp_path, script)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    # the programme is named in the takeover message, not in the routing result
    assert re.search(rf"Das ist \w+ von [^\n]*{re.escape(programme)}", out), out[-3000:]
    code = re.search(r"(?:Dein|Ihr) Fallcode: (K-\w{4})", out)  # "Ihr" for relatives
    assert code is not None
    topic = f"[Bot → Team-Raum › {code.group(1)}] [{code.group(1)}]"  # the case's own topic
    held = f"{topic} (wartende Nachricht)\n    > Ich brauche Hilfe."
    assert held in out
    reply = re.search(r"\[Bot → Person\] (\w+):\n    Hallo, ich bin da\.", out)
    assert reply is not None, out[-2000:]  # alias only on the lock screen
    assert f"{topic}\n    > Danke" in out
    assert "counsellor" not in out.split("#q")[0].replace("COUNSELLOR", "")
    keys = tmp_path / "ausweg-demo" / "demo-keys.json"  # the demo's own folder (issue 15)
    assert oct(keys.stat().st_mode & 0o777) == "0o600"


def test_check_config_prints_routing_table(tmp_path: Path) -> None:
    proc = run(["check-config"], tmp_path)
    # The example is not fit for production: check-config says what `run` would refuse
    # (exit 1) after the routing table (issue 10, obs 7).
    assert proc.returncode == 1, proc.stderr
    assert "jump" in proc.stdout
    assert "self/right->jump(match)" in proc.stdout
    assert "verify before going live" in proc.stdout
    assert "would refuse to start" in proc.stdout


def test_check_config_reports_the_line_of_a_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "dir.yaml"
    bad.write_text(
        "fallback: [x]\nprogrammes:\n  - id: x\n    name: X\n    kind: exit\n"
        "    audiences: [self]\n    states: [XX]\n"
        "    description: {de: a, en: b}\n"
    )
    proc = run(["check-config", str(bad)], tmp_path)
    assert proc.returncode == 2
    assert f"{bad}:7:" in proc.stderr
    assert "XX" in proc.stderr


def test_run_without_platform_explains_what_to_do(tmp_path: Path) -> None:
    proc = run(["run"], tmp_path)
    assert proc.returncode == 2
    assert "AUSWEG_" in proc.stderr


def test_link_prints_a_deep_link_and_writes_a_qr_code(tmp_path: Path) -> None:
    qr = tmp_path / "poster.png"
    proc = run(
        [
            "link",
            "--programme",
            "jump",
            "--source",
            "poster-schwerin",
            "--bot",
            "ausweg_test_bot",
            "--qr",
            str(qr),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"https://t\.me/ausweg_test_bot\?start=[A-Za-z0-9]{10}", proc.stdout)
    assert qr.read_bytes().startswith(b"\x89PNG")
    bad = run(
        ["link", "--programme", "nope", "--source", "x", "--bot", "ausweg_test_bot"], tmp_path
    )
    assert bad.returncode == 2
    assert "unknown programme" in bad.stderr
