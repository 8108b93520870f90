"""A throw-away Synapse homeserver on loopback, for end-to-end Matrix tests.

The server runs as a subprocess (``python -m synapse.app.homeserver``) with SQLite in a
temporary directory, one plain-HTTP listener on 127.0.0.1 with the client resource only
(which also carries ``/_synapse/admin``), no federation, no presence, no URL previews
and every rate limit raised out of the way. Users are created through the shared-secret
admin registration API, so no registration flow has to be enabled.

Everything here is synchronous on purpose (subprocess, ``http.client``): a session-scoped
pytest fixture can start it without an event loop. Async tests use
:meth:`SynapseServer.register_async`, which runs the blocking call in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

SERVER_NAME = "localhost"

# Every rc_* setting Synapse 1.16x reads, raised so that tests never meet a 429.
_FAST = {"per_second": 10_000, "burst_count": 100_000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _FAST,
    "rc_registration": _FAST,
    "rc_registration_token_validity": _FAST,
    "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
    "rc_admin_redaction": _FAST,
    "rc_joins": {"local": _FAST, "remote": _FAST},
    "rc_joins_per_room": _FAST,
    "rc_key_requests": _FAST,
    "rc_3pid_validation": _FAST,
    "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
    "rc_third_party_invite": _FAST,
    "rc_media_create": _FAST,
    "rc_presence": {"per_user": _FAST},
    "rc_delayed_event_mgmt": _FAST,
    "rc_room_creation": _FAST,
    "rc_reports": _FAST,
    "rc_user_directory": _FAST,
    "rc_profile": _FAST,
}


class SynapseError(RuntimeError):
    """The homeserver failed to start or answered a request with an error."""


@dataclass(frozen=True)
class RegisteredUser:
    """A user created through the admin API, logged in on one device."""

    user_id: str
    access_token: str
    device_id: str
    password: str

    def __iter__(self) -> Iterator[str]:
        """Unpack as ``(user_id, access_token, device_id)``."""
        return iter((self.user_id, self.access_token, self.device_id))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SynapseServer:
    """One Synapse process with its own temporary directory.

    Example:
        >>> server = SynapseServer()
        >>> server.start()
        >>> user_id, token, device_id = server.register("alice", "secret")
        >>> server.stop()
    """

    def __init__(self, *, startup_timeout: float = 30.0, keep_dir: bool = False) -> None:
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir
        self.directory = Path(tempfile.mkdtemp(prefix="ausweg-synapse-"))
        self.port = 0
        self.shared_secret = secrets.token_hex(32)
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, what a Matrix client takes as homeserver."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (WARNING and above)."""
        return self.directory / "homeserver.log"

    @property
    def output_path(self) -> Path:
        """The subprocess's stdout and stderr."""
        return self.directory / "stdout.log"

    def write_config(self) -> Path:
        """Write homeserver.yaml, the log config and the signing key; return the config."""
        self.port = _free_port()
        key_seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        signing_key = self.directory / "signing.key"
        signing_key.write_text(f"ed25519 a_test {key_seed}\n")
        log_config = self.directory / "log.yaml"
        # JSON is valid YAML: no YAML emitter needed.
        log_config.write_text(
            json.dumps(
                {
                    "version": 1,
                    "disable_existing_loggers": False,
                    "formatters": {
                        "plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}
                    },
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "formatter": "plain",
                            "filename": str(self.log_path),
                            "encoding": "utf8",
                        }
                    },
                    "root": {"level": "WARNING", "handlers": ["file"]},
                },
                indent=2,
            )
        )
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(self.directory / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.directory / "homeserver.db")},
            },
            "log_config": str(log_config),
            "media_store_path": str(self.directory / "media"),
            "signing_key_path": str(signing_key),
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "enable_metrics": False,
            **_RATE_LIMITS,
        }
        path = self.directory / "homeserver.yaml"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self) -> None:
        """Start the process and block until ``/_matrix/client/versions`` answers.

        Raises:
            SynapseError: the process exited or did not answer within ``startup_timeout``.
        """
        config = self.write_config()
        started = time.monotonic()
        with self.output_path.open("wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
                cwd=self.directory,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SynapseError(
                    f"Synapse exited with {self._process.returncode}: {self._tail()}"
                )
            if self._ready():
                self.startup_seconds = time.monotonic() - started
                return
            time.sleep(0.05)
        self.stop()
        raise SynapseError(f"Synapse not ready after {self.startup_timeout} s: {self._tail()}")

    def stop(self) -> None:
        """Terminate the process, wait for it, and remove the directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if not self.keep_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _ready(self) -> bool:
        try:
            status, _ = self.request("GET", "/_matrix/client/versions", timeout=1.0)
        except OSError:
            return False
        return status == 200

    def _tail(self, limit: int = 4000) -> str:
        parts = []
        for path in (self.output_path, self.log_path):
            if path.exists():
                parts.append(path.read_text(errors="replace")[-limit:])
        return "\n".join(parts) or "(no output)"

    # ------------------------------------------------------------------ HTTP
    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, Any]]:
        """One JSON request; returns ``(status, decoded body)``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            payload = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        return response.status, (json.loads(raw) if raw else {})

    def register(
        self,
        username: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> RegisteredUser:
        """Create a user through the shared-secret admin API and log it in.

        Returns:
            A :class:`RegisteredUser`; it unpacks as ``(user_id, access_token, device_id)``.
        """
        status, reply = self.request("GET", "/_synapse/admin/v1/register")
        if status != 200:
            raise SynapseError(f"nonce request failed: {status} {reply}")
        nonce = reply["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                (
                    nonce.encode(),
                    username.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                )
            )
        )
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname
        status, reply = self.request("POST", "/_synapse/admin/v1/register", body)
        if status != 200:
            raise SynapseError(f"registration of {username!r} failed: {status} {reply}")
        return RegisteredUser(reply["user_id"], reply["access_token"], reply["device_id"], password)

    async def register_async(
        self,
        username: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> RegisteredUser:
        """:meth:`register` without blocking the event loop."""
        return await asyncio.to_thread(
            self.register, username, password, admin=admin, displayname=displayname
        )

    def login(self, user_id: str, password: str) -> RegisteredUser:
        """A fresh password login: a new device with its own access token."""
        status, reply = self.request(
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
            },
        )
        if status != 200:
            raise SynapseError(f"login failed: {status} {reply}")
        return RegisteredUser(reply["user_id"], reply["access_token"], reply["device_id"], password)

    async def login_async(self, user_id: str, password: str) -> RegisteredUser:
        """:meth:`login` without blocking the event loop."""
        return await asyncio.to_thread(self.login, user_id, password)


def synapse_available() -> bool:
    """Whether ``matrix-synapse`` is importable in this interpreter."""
    try:
        import synapse  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":  # pragma: no cover - manual timing aid
    with SynapseServer() as server:
        print(f"ready in {server.startup_seconds:.2f} s at {server.base_url}")
        print(server.register("probe", "probe-password"))
