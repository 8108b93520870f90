"""The bot's Matrix account: the encrypted store, login, device, cross-signing, profile.

The session (device id, access token, cross-signing seeds, created staff rooms, the
avatar's upload) lives in the encrypted session file (``session.py``); nio's crypto
store is SQLCipher (``crypto_store.py``), keyed from the master keys and re-keyed to
the current one at start. A stored device is restored when its token still works; a
rejected token (401/403) means a new login with the same device id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import mimetypes
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
    UploadResponse,
    WhoamiResponse,
)

from bot.transports.matrix.common import MatrixError, MatrixState, unavailable
from bot.transports.matrix.crosssign import CrossSigningSeeds, ensure_cross_signing, http_status
from bot.transports.matrix.crypto_store import DEFAULT_STORE_NAME, make_encrypted_store
from bot.transports.matrix.session import (
    SESSION_FILE,
    StoredSession,
    load_session,
    open_store_version,
    rekey_store,
    save_session,
    store_key,
)
from config.settings import ConfigError, decode_key

__all__ = ["Connection"]

log = logging.getLogger(__name__)


class Connection:
    """Opens, logs in and closes the account's client; keeps the session file."""

    def __init__(
        self, state: MatrixState, *, device_name: str = "Ausweg", request_retries: int = 6
    ) -> None:
        self._state = state
        self._device_name = device_name
        self._request_retries = request_retries
        self._keys: dict[int, bytes] = {}
        self.session: StoredSession | None = None

    def load_keys(self) -> None:
        """The master keys the store and session file are keyed from."""
        self._keys = {
            v: decode_key(k.get_secret_value(), f"crypto.master_keys[{v}]")
            for v, k in self._state.settings.crypto.master_keys.items()
        }
        if not self._keys:
            raise ConfigError("crypto.master_keys is missing (the Matrix store is keyed from it)")

    async def reachable(self, client: AsyncClient) -> bool:
        """One quick look at the homeserver (no retries), so a dead one costs no time."""
        try:
            response = await client.send("GET", "/_matrix/client/versions", timeout=10)
            status = int(response.status)
            response.release()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status < 500

    async def close_client(self) -> None:
        client, self._state.client = self._state.client, None
        if client is None:
            return
        await client.close()
        store = client.store
        if store is not None and hasattr(store, "close"):
            store.close()

    def open_client(self) -> AsyncClient:
        """Rotate the store key if needed and build the client (blocking file work)."""
        st = self._state
        st.store_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        loaded = load_session(st.store_path / SESSION_FILE, self._keys)
        session = loaded[0] if loaded else None
        if session is not None and (
            session.user_id != st.user_id or session.homeserver != st.homeserver
        ):
            session = None  # another account: its device and seeds do not apply
        db = st.store_path / DEFAULT_STORE_NAME
        current = max(self._keys)
        found = open_store_version(db, self._keys, session.store_version if session else None)
        if found is not None and found != current:
            rekey_store(db, self._keys[found], self._keys[current])
            log.info("matrix store re-keyed to the current master key")
        if session is not None and found is None:
            # The crypto store is gone: its device cannot be used again.
            session = session.with_(device_id="", access_token="")
        if session is not None and (loaded is None or loaded[1] != current or found != current):
            session = session.with_(store_version=current)
            save_session(st.store_path / SESSION_FILE, session, self._keys)
        self.session = session
        ms = st.settings.matrix
        pickle_key = ms.store_pickle_key.get_secret_value() if ms.store_pickle_key else ""
        config = AsyncClientConfig(
            store=make_encrypted_store(store_key(self._keys[current])),
            store_name=DEFAULT_STORE_NAME,
            pickle_key=pickle_key,
            store_sync_tokens=False,  # the receiver saves the token after handling
            encryption_enabled=True,
            max_timeouts=self._request_retries,
            backoff_factor=0.25,
            request_timeout=30,
        )
        return AsyncClient(st.homeserver, st.user_id, store_path=str(st.store_path), config=config)

    def save(self, **changes: Any) -> None:
        """Write ``changes`` into the encrypted session file (keyed with the newest key)."""
        st = self._state
        base = self.session or StoredSession(st.homeserver, st.user_id, "")
        self.session = base.with_(store_version=max(self._keys), **changes)
        save_session(st.store_path / SESSION_FILE, self.session, self._keys)

    async def login(self, client: AsyncClient) -> None:
        st = self._state
        ms = st.settings.matrix
        password = ms.password.get_secret_value() if ms.password else None
        token = ms.access_token.get_secret_value() if ms.access_token else None
        stored = self.session
        if stored is not None and stored.device_id and stored.access_token:
            client.restore_login(st.user_id, stored.device_id, stored.access_token)
            who = await client.whoami()
            if isinstance(who, WhoamiResponse):
                st.since = client.store.load_sync_token()
                return
            if http_status(who) not in (401, 403):  # not a verdict on the token: keep the device
                raise MatrixError("matrix whoami failed", status=http_status(who))
            log.warning("stored matrix access token rejected; logging in again")
        device_id = (stored.device_id if stored else "") or ms.device_id or ""
        if password:
            client.device_id = device_id
            response = await client.login(password, device_name=self._device_name)
            if not isinstance(response, LoginResponse):
                raise MatrixError(
                    f"matrix login failed: {response.status_code}", status=http_status(response)
                )
        elif token:
            client.access_token = token
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse) or who.user_id != st.user_id:
                raise MatrixError("matrix access token rejected (or for another user)")
            device = device_id or who.device_id
            if not device:
                raise MatrixError("matrix.device_id is needed with this access token")
            client.restore_login(st.user_id, device, token)
        else:
            raise ConfigError("matrix needs matrix.password or matrix.access_token")
        self.save(device_id=client.device_id, access_token=client.access_token)
        st.since = client.store.load_sync_token()

    async def relogin_if_needed(self) -> None:
        client = self._state.client
        ms = self._state.settings.matrix
        if client is None or client.access_token or not ms.password:
            return
        with contextlib.suppress(Exception):
            response = await client.login(ms.password.get_secret_value(), self._device_name)
            if isinstance(response, LoginResponse):
                self.save(device_id=client.device_id, access_token=client.access_token)

    async def cross_sign(self, client: AsyncClient) -> None:
        ms = self._state.settings.matrix
        password = ms.password.get_secret_value() if ms.password else None
        stored: CrossSigningSeeds | None = self.session.seeds if self.session else None
        seeds = await ensure_cross_signing(client, stored, password)
        if seeds != stored:
            self.save(seeds=seeds)

    async def set_profile(self, client: AsyncClient) -> None:
        """Display name and avatar from the settings (chat lists show them, not "ausweg").

        Changed only when they differ: every change is a new member event in every room
        the bot is in. The avatar is uploaded once (again only when the file changes);
        the stored "<sha256> <mxc>" tells. A refusal is logged, never fatal: the chats
        work without a profile.
        """
        ms = self._state.settings.matrix
        if not ms.display_name and ms.avatar_path is None:
            return
        current = await client.get_profile(self._state.user_id)
        if not isinstance(current, ProfileGetResponse):
            if unavailable(http_status(current)):
                raise MatrixError("matrix profile unavailable", status=http_status(current))
            current = ProfileGetResponse()  # no profile yet (404): set everything
        if ms.display_name and current.displayname != ms.display_name:
            done = await client.set_displayname(ms.display_name)
            if not isinstance(done, ProfileSetDisplayNameResponse):
                log.error("matrix: display name not set: %s", http_status(done))
        if ms.avatar_path is not None:
            mxc = await self._avatar(client, ms.avatar_path)
            if mxc and current.avatar_url != mxc:
                done_avatar = await client.set_avatar(mxc)
                if not isinstance(done_avatar, ProfileSetAvatarResponse):
                    log.error("matrix: avatar not set: %s", http_status(done_avatar))

    async def _avatar(self, client: AsyncClient, path: Path) -> str | None:
        """The mxc URI of the avatar file: the stored one if the file is unchanged."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            log.error("matrix: avatar file not readable: %s", type(exc).__name__)
            return None
        digest = hashlib.sha256(data).hexdigest()
        stored_digest, _, stored_mxc = (self.session.avatar if self.session else "").partition(" ")
        if stored_digest == digest and stored_mxc:
            return stored_mxc
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response, _ = await client.upload(
            io.BytesIO(data), content_type, filename=path.name, filesize=len(data)
        )
        if not isinstance(response, UploadResponse):
            log.error("matrix: avatar upload refused: %s", http_status(response))
            return None
        self.save(avatar=f"{digest} {response.content_uri}")
        return str(response.content_uri)
