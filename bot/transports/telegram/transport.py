"""The Telegram transport: python-telegram-bot 22 for sending, our own loop for receiving.

Receiving: long polling with ``getUpdates`` (or a webhook server) driven here, not
by PTB's Updater, because the Updater confirms a batch as soon as it is queued and
its webhook answers 200 before the update is handled. Here an update is
acknowledged only after the core's ``on_message`` returned for it (its transaction
committed, its replies sent): the next ``getUpdates`` carries the new offset, the
webhook answers 200 only then. A crash before that makes Telegram deliver the update
again; the core drops it by ``update_id``. Updates of one chat are handled in order,
different chats concurrently (bounded).

Sending: PTB's bot behind :class:`FloodLimiter`; 429 answers pause all ordinary
sends and are retried, network errors are retried with bounded back-off, permanent
refusals (blocked, chat not found) are logged without ids and not raised. Urgent
messages skip the queue. Texts are plain (no ``parse_mode``), split at 4096.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from telegram import (
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder, ExtBot
from telegram.request import BaseRequest, HTTPXRequest

from bot.bounded import BoundedDict
from bot.transports.base import InboundHandler, SendLater, first_of
from bot.transports.telegram.aiohttp_request import AiohttpRequest
from bot.transports.telegram.limiter import FloodLimiter
from bot.transports.telegram.render import (
    DEFAULT_LANGUAGE,
    PERSON_COMMANDS,
    STAFF_COMMANDS,
    bot_commands,
    chat_id,
    chunks,
    keyboard,
    message_ids,
    split_text,
    thread_id,
    topic_name,
)
from bot.transports.telegram.staff_groups import StaffGroup, group_problem, staff_groups
from bot.transports.telegram.updates import (
    ALLOWED_UPDATES,
    Incoming,
    Malformed,
    MemberChange,
    parse_update,
    update_id_of,
)
from config.directory import Directory
from config.i18n import translator
from config.messages import Address, OutboundMessage, OutKind, Platform, SendResult
from config.settings import ConfigError, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
#: Largest webhook body accepted (updates are a few KiB).
MAX_BODY = 1024 * 1024
#: How many handled update ids are remembered for :meth:`TelegramTransport.wait_handled`.
DONE_MEMORY = 10_000
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """Everything the transport needs (built from :class:`config.settings.TelegramSettings`).

    Attributes:
        token: the bot token.
        base_url: Bot API root (``https://api.telegram.org`` or a self-hosted server).
        mode: ``polling`` or ``webhook``.
        webhook_url: public URL Telegram posts to; its path is served.
        webhook_listen / webhook_port: where the webhook server listens.
        webhook_secret: expected ``X-Telegram-Bot-Api-Secret-Token``.
        connect_timeout / read_timeout / write_timeout / pool_timeout: HTTP timeouts (s).
        poll_timeout: long-poll timeout of ``getUpdates`` (s).
        rate_limit: throttle within Telegram's limits (off only for tests/benchmarks).
        overall_per_second / group_per_minute: the throttle's limits.
        concurrency: updates handled at the same time (one chat is always sequential).
        network_retries: attempts after a network error before a send is given up.
        flood_retries: 429 answers tolerated per call before it is given up.
        handler_retries: attempts for an update whose handler raised.
        backoff_base / backoff_max: exponential back-off bounds (s).
        set_commands: publish the command menus at start.
        connection_pool_size: HTTP connections for sending.
        stop_timeout: how long stop waits for in-flight updates (s).
        http_backend: PTB's request class: ``httpx`` (PTB's default) or ``aiohttp``
            (2-5x less CPU per Bot API call; see docs/PERFORMANCE.md).
        unknown_members: what happens when an account that is not staff joins a staff
            group: ``remove`` it (ban and unban) or only ``report`` it; the
            coordinators are told either way.
    """

    token: str = field(repr=False)
    base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    poll_timeout: int = 30
    rate_limit: bool = True
    overall_per_second: float = 30.0
    group_per_minute: float = 20.0
    concurrency: int = 8
    network_retries: int = 6
    flood_retries: int = 30
    handler_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    set_commands: bool = True
    connection_pool_size: int = 32
    stop_timeout: float = 30.0
    http_backend: Literal["aiohttp", "httpx"] = "httpx"
    unknown_members: Literal["remove", "report"] = "remove"

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramConfig:
        """Read ``settings.telegram``."""
        tg = settings.telegram
        if tg.token is None:
            raise ConfigError("telegram.token is missing")
        return cls(
            token=tg.token.get_secret_value(),
            base_url=tg.base_url,
            mode=tg.mode,
            webhook_url=tg.webhook_url,
            webhook_listen=tg.webhook_listen,
            webhook_port=tg.webhook_port,
            webhook_secret=tg.webhook_secret.get_secret_value() if tg.webhook_secret else None,
            connect_timeout=tg.connect_timeout,
            read_timeout=tg.read_timeout,
            write_timeout=tg.write_timeout,
            pool_timeout=tg.pool_timeout,
            poll_timeout=tg.poll_timeout,
            concurrency=tg.concurrency,
            http_backend=tg.http_backend,
            group_per_minute=tg.group_per_minute,
            unknown_members=tg.unknown_members,
        )


@dataclass(slots=True)
class TelegramStats:
    """Counters (no ids): what came in, what was skipped, what went out."""

    received: int = 0
    handled: int = 0
    ignored: int = 0
    malformed: int = 0
    rejected: int = 0
    failed: int = 0
    sent: int = 0
    send_failures: int = 0
    #: Sends given back to the core because the Bot API was unreachable (it retries).
    send_later: int = 0
    flood_waits: int = 0
    network_retries: int = 0
    #: Accounts that joined a staff group without being staff (removed or reported).
    outsiders: int = 0


_PARTIAL_REMEMBERED: Final = 1024


class SendFailed(Exception):
    """A Bot API call was refused for good, or retries ran out."""

    def __init__(self, error: TelegramError) -> None:
        super().__init__(type(error).__name__)
        self.error = error

    @property
    def topic_gone(self) -> bool:
        """The forum topic was deleted or closed."""
        text = self.error.message.lower()
        return isinstance(self.error, BadRequest) and (
            "thread not found" in text or "topic_closed" in text or "topic_deleted" in text
        )


class _KeyedLocks:
    """One lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(key, None)


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramTransport:
    """A Telegram bot as an Ausweg transport (see the module docstring).

    Args:
        config: connection and behaviour settings.
        sleep: how to wait for back-off and 429 pauses (tests pass a fast one).
    """

    platform = Platform.TELEGRAM
    #: Undelivered events come again after a crash: the core keeps replies until sent.
    redelivers = True

    @property
    def leader_only(self) -> bool:
        """Polling runs on the leader only (two pollers conflict); every instance can
        serve the webhook."""
        return self.config.mode == "polling"

    def __init__(
        self,
        config: TelegramConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # PTB 22: RetryAfter.retry_after as timedelta (the int form is deprecated).
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self.config = config
        self.stats = TelegramStats()
        self._sleep = sleep
        self._handler: InboundHandler | None = None
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._updates_request: BaseRequest | None = None
        self._limited = config.rate_limit
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._resume = asyncio.Event()
        self._resume.set()
        self._pauses = 0
        self._slots = asyncio.Semaphore(max(1, config.concurrency))
        self._locks = _KeyedLocks()
        self._forum: dict[int | str, bool] = {}
        self._offset = 0
        self._poll_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None
        #: Per reply key: parts / forum topic already made when an outage interrupted it.
        self._sent_parts: BoundedDict[str, tuple[int, ...]] = BoundedDict(_PARTIAL_REMEMBERED)
        self._topics: BoundedDict[str, Address] = BoundedDict(_PARTIAL_REMEMBERED)
        self._runner: web.AppRunner | None = None
        #: Set while the Bot API has not been reached since the start (retrying).
        self.offline = asyncio.Event()
        self.online = False
        self._done: dict[int, None] = {}
        self._waiters: dict[int, asyncio.Event] = {}
        #: Staff groups (chat id -> who may be there), from the directory.
        self._groups: dict[int, StaffGroup] = {}
        #: Programmes whose staff group the bot cannot police (no admin rights), and why.
        self.unchecked_groups: dict[str, str] = {}
        self._chores: set[asyncio.Task[None]] = set()
        #: Set by the App for transports that create staff rooms (this one does not).
        self.on_staff_rooms: Callable[..., None] | None = None

    def use_directory(self, directory: Directory) -> None:
        """A (reloaded) directory: the staff groups and who belongs there.

        Staff no longer listed for a group (a counsellor left) are removed from it at
        once (in the background; or only reported, like unknown joiners).
        """
        before, self._groups = self._groups, staff_groups(directory)
        if not self.online:
            return  # at start, nothing to compare with
        for chat, group in self._groups.items():
            gone = sorted(before[chat].staff - group.staff) if chat in before else []
            for user_id in gone:
                change = MemberChange(chat, user_id)
                task = asyncio.get_running_loop().create_task(
                    self._on_member(change, left_staff=True)
                )
                self._chores.add(task)
                task.add_done_callback(self._chores.discard)

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramTransport:
        """The production transport for ``settings.telegram``."""
        return cls(TelegramConfig.from_settings(settings))

    # ------------------------------------------------------------------ lifecycle

    @property
    def bot(self) -> ExtBot[Any]:
        """PTB's bot (after :meth:`start`)."""
        if self._app is None:
            raise RuntimeError("telegram transport not started")
        bot: ExtBot[Any] = self._app.bot
        return bot

    async def start(self, on_message: InboundHandler) -> None:
        """Connect (``getMe``), publish command menus, start polling or the webhook.

        A Bot API that stays unreachable through the retries does not fail the start:
        the other platforms run, a background task keeps trying, and ``send`` raises
        :class:`SendLater` meanwhile. A refused token does fail it (``ConfigError``).
        """
        self._handler = on_message
        self._stopping.clear()
        self._ready.clear()
        self.offline.clear()
        self._app = self._build()
        try:
            await self._go_online(retries=1)  # the other platforms should not wait long
        except (NetworkError, SendLater) as exc:
            if isinstance(exc, BadRequest):
                await self.stop()
                raise
            log.warning("Bot API not reachable; starting without Telegram, retrying")
            self.offline.set()
            self._connect_task = asyncio.create_task(self._connect_later(), name="telegram-connect")
        except BaseException:
            await self.stop()
            raise

    async def _go_online(self, retries: int | None = None) -> None:
        """``getMe``, command menus, then polling or the webhook (each step repeatable)."""
        if self._app is None:
            raise RuntimeError("telegram transport not built")
        await self._initialize(retries)
        if not self._app.running:
            await self._app.start()
        if self.config.set_commands:
            await self._set_commands()
        if self.config.mode == "webhook":
            await self._start_webhook()
        else:
            await self._call(
                partial(self.bot.delete_webhook, drop_pending_updates=False),
                what="deleteWebhook",
            )
            self._poll_task = asyncio.create_task(self._poll_loop(), name="telegram-poll")
        self.online = True
        self.offline.clear()
        log.info("telegram transport started (%s)", self.config.mode)
        await self.check_staff_groups()

    async def check_staff_groups(self) -> dict[str, str]:
        """Ask Telegram whether the bot can police each staff group; log those it cannot.

        Returns programme id -> problem (also kept in ``unchecked_groups``).
        """
        problems: dict[str, str] = {}
        for group in self._groups.values():
            try:
                problem = await group_problem(self.bot, group.chat_id)
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

    async def _connect_later(self) -> None:
        """Keep trying to reach the Bot API (back-off) until it answers or stop."""
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            await self._wait_or_stop(self._backoff(attempt))
            if self._stopping.is_set():
                return
            try:
                await self._go_online()
                return
            except asyncio.CancelledError:
                raise
            except (ConfigError, SendFailed) as exc:  # refused: retrying will not help
                log.error("Telegram refused the start (%s); fix the settings", type(exc).__name__)
                return
            except Exception as exc:
                log.warning("Bot API still not reachable (%s); retrying", type(exc).__name__)

    async def stop(self) -> None:
        """Stop receiving, let in-flight updates finish, confirm them, close connections.

        Sending stays possible until the updates in hand are done: their replies go out
        now, not with the next start (SIGTERM leaves no work behind).
        """
        self._stopping.set()
        chores, self._chores = list(self._chores), set()
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        if self._connect_task is not None:
            connecting, self._connect_task = self._connect_task, None
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        if self._poll_task is not None:
            task, self._poll_task = self._poll_task, None
            done, _ = await asyncio.wait({task}, timeout=self.config.stop_timeout)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if self._offset and self._app is not None:
                # Confirm what was handled, so a restart does not fetch it again.
                with contextlib.suppress(TelegramError):
                    await self._get_updates(self._offset, wait=0, limit=1)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()  # waits for the webhook requests in hand
        self.online = False  # from here on replies wait for the next start (SendLater)
        if self._app is not None:
            app, self._app = self._app, None
            if app.running:
                await app.stop()
            with contextlib.suppress(Exception):
                await app.shutdown()
            await self._close_requests(app)
        log.info("telegram transport stopped")

    def _request(self, pool: int, read_timeout: float) -> BaseRequest:
        c = self.config
        backend: type[AiohttpRequest] | type[HTTPXRequest] = (
            AiohttpRequest if c.http_backend == "aiohttp" else HTTPXRequest
        )
        return backend(
            connection_pool_size=pool,
            connect_timeout=c.connect_timeout,
            read_timeout=read_timeout,
            write_timeout=c.write_timeout,
            pool_timeout=c.pool_timeout,
        )

    def _build(self) -> Application[Any, Any, Any, Any, Any, Any]:
        c = self.config
        root = c.base_url.rstrip("/")
        self._updates_request = self._request(1, c.poll_timeout + c.read_timeout)
        builder = (
            ApplicationBuilder()
            .token(c.token)
            .base_url(f"{root}/bot")
            .base_file_url(f"{root}/file/bot")
            .request(self._request(c.connection_pool_size, c.read_timeout))
            .get_updates_request(self._updates_request)
            .job_queue(None)
            .updater(None)
        )
        if c.rate_limit:
            return builder.rate_limiter(
                FloodLimiter(c.overall_per_second, c.group_per_minute)
            ).build()
        return builder.build()

    async def _initialize(self, retries: int | None = None) -> None:
        """``Application.initialize`` (``getMe``) with bounded retries on network errors."""
        if self._app is None:
            raise RuntimeError("telegram transport not built")
        attempt = 0
        while True:
            try:
                # PTB opens its requests only once; a failed attempt closed them.
                for request in (self._app.bot.request, self._updates_request):
                    if request is not None:
                        await request.initialize()
                await self._app.initialize()
                return
            except InvalidToken as exc:
                await self._close_requests(self._app)
                raise ConfigError("telegram.token was refused by the Bot API") from exc
            except TelegramError as exc:
                # A failed initialize leaves the HTTP clients open.
                await self._close_requests(self._app)
                attempt += 1
                if attempt > (self.config.network_retries if retries is None else retries):
                    raise
                log.warning("Bot API not reachable (%s); retrying", type(exc).__name__)
                await self._sleep(self._backoff(attempt))

    async def _close_requests(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        for request in {app.bot.request, self._updates_request}:
            if request is not None:
                with contextlib.suppress(Exception):
                    await request.shutdown()

    async def _set_commands(self) -> None:
        """Command menus: person commands in private chats, staff commands in groups."""
        menus = (
            (PERSON_COMMANDS, BotCommandScopeAllPrivateChats()),
            (STAFF_COMMANDS, BotCommandScopeAllGroupChats()),
        )
        for table, scope in menus:
            for language in table:
                with contextlib.suppress(SendFailed, SendLater):  # menus are a convenience
                    await self._call(
                        partial(
                            self.bot.set_my_commands,
                            bot_commands(table, language),
                            scope=scope,
                            language_code=None if language == DEFAULT_LANGUAGE else language,
                        ),
                        what="setMyCommands",
                    )

    async def wait_ready(self) -> None:
        """Return once receiving works (the first poll round is done or the webhook is
        set), or the start went on without the Bot API (``offline``; retrying)."""
        await first_of(self._ready, self.offline)

    @property
    def connected(self) -> bool:
        """Receiving has worked since the start (the runner reports readiness on it)."""
        return self._ready.is_set()

    async def wait_connected(self) -> None:
        """Return once receiving works (perhaps long after the start: an outage)."""
        await self._ready.wait()

    # ------------------------------------------------------------------ receiving: polling

    async def _get_updates(self, offset: int, *, wait: int, limit: int = 100) -> Any:
        """Raw ``getUpdates`` (JSON, not PTB objects: one bad update must not fail a batch)."""
        if self._updates_request is None:
            raise RuntimeError("telegram transport not started")
        params = {"timeout": wait, "limit": limit, "allowed_updates": json.dumps(ALLOWED_UPDATES)}
        if offset:
            params["offset"] = offset
        return await self._updates_request.post(
            f"{self.bot.base_url}/getUpdates?{urlencode(params)}",
            read_timeout=wait + self.config.read_timeout,
        )

    async def _poll_loop(self) -> None:
        """Fetch, handle, then acknowledge (by the next call's offset); never dies quietly."""
        failures = 0
        while not self._stopping.is_set():
            # The first round is a short poll: ready as soon as the backlog's first batch
            # is handled, not after a whole long-poll timeout.
            wait = self.config.poll_timeout if self._ready.is_set() else 0
            try:
                batch = await self._poll_once(wait)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await self._sleep(_seconds(exc.retry_after))
                continue
            except InvalidToken:
                log.error("getUpdates: the token was refused; retrying in a minute")
                await self._wait_or_stop(60.0)
                continue
            except Exception as exc:  # network, 409 conflict, bad answers: back off
                failures += 1
                log.warning("getUpdates failed (%s); retrying", type(exc).__name__)
                await self._wait_or_stop(self._backoff(failures))
                continue
            failures = 0
            if batch:
                try:
                    offset = await self._handle_batch(batch)
                except Exception as exc:  # a bug must not stop polling
                    log.error("handling a batch failed: %s", type(exc).__name__)
                    offset = self._offset
                if offset == self._offset:  # nothing to confirm (no valid ids): do not spin
                    await self._wait_or_stop(self._backoff(1))
                self._offset = offset
            self._ready.set()

    async def _poll_once(self, wait: int) -> list[Any] | None:
        """One (long) poll; None when stop was requested meanwhile."""
        call = asyncio.ensure_future(self._get_updates(self._offset, wait=wait))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not call.done():
                call.cancel()  # nothing is confirmed by an abandoned long poll
            await asyncio.gather(call, stop, return_exceptions=True)
        if call.cancelled():
            return None
        result = call.result()
        if not isinstance(result, list):
            raise TelegramError("getUpdates did not answer a list")
        return result

    async def _wait_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _handle_batch(self, batch: Iterable[Any]) -> int:
        """Handle a batch (per chat in order, chats concurrently); return the next offset."""
        offset = self._offset
        groups: dict[str, list[Incoming]] = {}
        for raw in batch:
            self.stats.received += 1
            update_id = update_id_of(raw)
            if update_id is not None:
                offset = max(offset, update_id + 1)
            incoming = self._parse(raw, update_id)
            if incoming is not None:
                groups.setdefault(incoming.key or f"#{incoming.update_id}", []).append(incoming)
        skipped: list[int] = []
        await asyncio.gather(*(self._run_in_order(items, skipped) for items in groups.values()))
        if skipped:
            # Stopping: confirm nothing from the first update not taken on; Telegram hands
            # it (and any later one already handled: the core skips those) to the next
            # poller - this process after a restart, or the other instance.
            offset = max(self._offset, min(skipped))
        return offset

    async def _run_in_order(self, items: list[Incoming], skipped: list[int]) -> None:
        for incoming in items:
            if self._stopping.is_set():
                skipped.append(incoming.update_id)  # and the rest of this chat, in order
                continue
            async with self._slots:
                if self._stopping.is_set():  # stop came while waiting for a slot
                    skipped.append(incoming.update_id)
                    continue
                await self._process(incoming)

    def _parse(self, raw: object, update_id: int | None) -> Incoming | None:
        try:
            return parse_update(raw)
        except Malformed as exc:
            self.stats.malformed += 1
            log.warning("skipped a malformed update: %s", exc)
            if update_id is not None:
                self._mark_done(update_id)
            return None

    # ------------------------------------------------------------------ receiving: webhook

    async def _start_webhook(self) -> None:
        c = self.config
        if not c.webhook_url or not c.webhook_secret:
            raise ConfigError("webhook mode needs telegram.webhook_url and telegram.webhook_secret")
        path = urlsplit(c.webhook_url).path or "/"
        if self._runner is None:  # a retried start keeps the listening server
            app = web.Application(client_max_size=MAX_BODY)
            app.router.add_post(path, self._on_webhook)
            runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=c.stop_timeout
            )
            await runner.setup()
            await web.TCPSite(runner, c.webhook_listen, c.webhook_port).start()
            self._runner = runner
        # The server listens before Telegram is told about it.
        await self._call(
            partial(
                self.bot.set_webhook,
                url=c.webhook_url,
                secret_token=c.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=False,
            ),
            what="setWebhook",
        )
        self._ready.set()

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        """Check the secret, handle the update, answer 200 only after the core returned."""
        secret = (self.config.webhook_secret or "").encode()
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not secret or not hmac.compare_digest(given, secret):
            self.stats.rejected += 1
            log.warning("webhook request without the right secret refused")
            return web.Response(status=403)
        if self._stopping.is_set():
            return web.Response(status=503)  # Telegram delivers it again later
        try:
            raw = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            self.stats.malformed += 1
            log.warning("skipped a webhook body that is not JSON")
            return web.Response(status=200)
        self.stats.received += 1
        incoming = self._parse(raw, update_id_of(raw))
        if incoming is not None:
            async with self._locks.hold(incoming.key or "#"), self._slots:
                await self._process(incoming)
        return web.Response(status=200)

    # ------------------------------------------------------------------ one update

    async def _process(self, incoming: Incoming) -> None:
        """Answer a button press at once, hand the message to the core, tidy up; never raises."""
        answer = None
        if incoming.callback_id is not None:
            answer = asyncio.create_task(self._answer_callback(incoming.callback_id))
        try:
            if incoming.member is not None:
                await self._on_member(incoming.member)
            elif incoming.migrated is not None:
                self._on_migrated(*incoming.migrated)
            elif incoming.message is None:
                self.stats.ignored += 1
            else:
                await self._deliver(incoming)
            if incoming.keyboard_at is not None:
                await self._remove_keyboard(*incoming.keyboard_at)
        except Exception as exc:
            log.error("an update could not be processed: %s", type(exc).__name__)
        finally:
            if answer is not None:
                await asyncio.gather(answer, return_exceptions=True)
            self._mark_done(incoming.update_id)

    async def _deliver(self, incoming: Incoming) -> None:
        if incoming.message is None or self._handler is None:
            return
        for attempt in range(1, self.config.handler_retries + 1):
            try:
                await self._handler(incoming.message)
            except Exception as exc:
                log.error("the core failed on an update (%d): %s", attempt, type(exc).__name__)
                if attempt < self.config.handler_retries:
                    await self._sleep(self._backoff(attempt))
            else:
                self.stats.handled += 1
                return
        self.stats.failed += 1

    def _on_migrated(self, old: int, new: int) -> None:
        """Telegram moved a group to a supergroup (Topics turned on, made public, grown):
        a staff group keeps working only once the directory names its new id."""
        self.stats.ignored += 1
        if old not in self._groups:
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

    async def _on_member(self, change: MemberChange, *, left_staff: bool = False) -> None:
        """Someone joined a staff group (or left its staff list): not staff -> removed
        (or only reported), and the coordinators are told in the group. Joins elsewhere
        are not looked at."""
        group = self._groups.get(change.chat_id)
        if group is None or change.user_id in group.staff:
            return
        if self._app is not None and change.user_id == self.bot.id:
            return
        if left_staff and not await self._in_group(change):
            return  # a former counsellor who was not in the group: nothing to do
        remove = self.config.unknown_members == "remove" and not group.named
        removed = False
        if remove:
            try:
                await self._call(
                    partial(self.bot.ban_chat_member, change.chat_id, change.user_id),
                    what="banChatMember",
                    urgent=True,
                )
                # Unbanned at once: out of the group now, but not barred for good (a
                # colleague added by mistake before the directory lists them can come back).
                await self._call(
                    partial(
                        self.bot.unban_chat_member,
                        change.chat_id,
                        change.user_id,
                        only_if_banned=True,
                    ),
                    what="unbanChatMember",
                    urgent=True,
                )
                removed = True
            except (SendFailed, SendLater) as exc:
                log.error(
                    "telegram: a non-staff account could not be removed (%s)", type(exc).__name__
                )
        self.stats.outsiders += 1
        log.warning(
            "telegram: a non-staff account joined a staff group (%s)",
            "removed" if removed else "reported",
        )
        t = translator(group.locale)
        key = "staff.guard.group_" + ("left_" if left_staff else "") + (
            "removed" if removed else "reported"
        )
        text = t(key)
        with contextlib.suppress(SendFailed, SendLater):
            await self._call(
                partial(self.bot.send_message, change.chat_id, text),
                what="sendMessage",
                urgent=True,
            )

    async def _in_group(self, change: MemberChange) -> bool:
        """Whether an account is in a group now (unknown counts as in: be safe)."""
        try:
            member = await self._call(
                partial(self.bot.get_chat_member, change.chat_id, change.user_id),
                what="getChatMember",
                quiet=True,
            )
        except (SendFailed, SendLater):
            return True
        return str(member.status) not in ("left", "kicked")

    async def _answer_callback(self, query_id: str) -> None:
        with contextlib.suppress(SendFailed):
            await self._call(
                partial(self.bot.answer_callback_query, query_id),
                what="answerCallbackQuery",
                urgent=True,
                quiet=True,
            )

    async def _remove_keyboard(self, chat: int, message_id: int) -> None:
        """The question was answered: take its buttons away (the answer is not shown,
        so someone reading the phone later does not see what was chosen)."""
        with contextlib.suppress(SendFailed):
            await self._call(
                partial(self.bot.edit_message_reply_markup, chat_id=chat, message_id=message_id),
                what="editMessageReplyMarkup",
                quiet=True,
            )

    def _mark_done(self, update_id: int) -> None:
        self._done[update_id] = None
        if len(self._done) > DONE_MEMORY:
            for old in list(self._done)[: len(self._done) - DONE_MEMORY]:
                del self._done[old]
        waiter = self._waiters.pop(update_id, None)
        if waiter is not None:
            waiter.set()

    async def wait_handled(self, update_id: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until an update was handled (for tests and benchmarks)."""
        if update_id in self._done:
            return
        waiter = self._waiters.setdefault(update_id, asyncio.Event())
        async with asyncio.timeout(timeout):
            await waiter.wait()

    # ------------------------------------------------------------------ sending

    def held(self, message: OutboundMessage) -> bool:
        """True while a send to the message's chat would wait for the flood limit (a
        hint for the send queues: they merge pending staff relays then)."""
        limiter = self._app.bot.rate_limiter if self._app is not None else None
        return isinstance(limiter, FloodLimiter) and limiter.held(message.address.chat_id)

    async def send(self, message: OutboundMessage) -> SendResult | None:
        """Render and send one message; permanent failures are logged, not raised.

        Raises:
            SendLater: the Bot API stayed unreachable through the retries.
        """
        if self._app is None or not self.online:  # stopped, or the API not reached yet
            raise SendLater("the Bot API is not connected")
        try:
            if message.kind is OutKind.VANISH:
                await self._vanish(message)
                return None
            if message.kind is OutKind.FORGET:
                await self._forget(message)
                return None
            if message.kind is OutKind.LEAVE:
                await self._leave(message)
                return None
            if message.kind is OutKind.CLOSE:
                await self._close_topic(message)
                return None
            if message.kind is OutKind.COPY:
                return await self._copy(message)
            if (
                message.kind is OutKind.CASE_OPENED
                and message.case_code
                and message.address.thread_id is None
            ):
                return await self._open_case(message)
            return await self._send_text(message, message.address)
        except SendFailed:
            self.stats.send_failures += 1
            return None

    async def _send_text(self, message: OutboundMessage, address: Address) -> SendResult | None:
        parts = split_text(message.text)
        if not parts:
            log.warning("an empty message was not sent")
            return None
        markup = keyboard(message.buttons)
        chat = chat_id(address.chat_id)
        thread = thread_id(address.thread_id)
        # Parts that went out before an outage are not sent again (kept per reply key).
        ids: list[int] = list(self._sent_parts.get(message.send_key or "", ()))
        for i, part in enumerate(parts):
            if i < len(ids):
                continue
            sent, chat, thread = await self._send_part(
                chat,
                thread,
                part,
                markup if i == len(parts) - 1 else None,
                protect=message.protect,
                urgent=message.urgent,
            )
            ids.append(sent.message_id)
            if message.send_key and i < len(parts) - 1:
                self._sent_parts[message.send_key] = tuple(ids)
        if message.send_key:
            self._sent_parts.pop(message.send_key, None)
        return SendResult(ref=",".join(str(i) for i in ids))

    async def _send_part(
        self,
        chat: int | str,
        thread: int | None,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        protect: bool,
        urgent: bool,
    ) -> tuple[Message, int | str, int | None]:
        """sendMessage; follows a group's migration and falls back from a deleted topic."""
        for _ in range(3):
            try:
                sent: Message = await self._call(
                    partial(
                        self.bot.send_message,
                        chat_id=chat,
                        text=text,
                        reply_markup=markup,
                        protect_content=protect,
                        message_thread_id=thread,
                        link_preview_options=NO_PREVIEW,
                        rate_limit_args=True if urgent and self._limited else None,
                    ),
                    what="sendMessage",
                    urgent=urgent,
                    migrate=True,
                )
            except ChatMigrated as exc:
                log.warning("a staff group became a supergroup: update its id in the directory")
                chat = exc.new_chat_id
            except SendFailed as exc:
                if thread is None or not exc.topic_gone:
                    raise
                log.warning("a case topic is gone; posting in the group instead")
                thread = None
            else:
                self.stats.sent += 1
                return sent, chat, thread
        raise SendFailed(TelegramError("sendMessage: no usable chat or topic"))

    async def _open_case(self, message: OutboundMessage) -> SendResult | None:
        """In a forum supergroup: a topic named after the case, the announcement in it."""
        address = message.address
        chat = chat_id(address.chat_id)
        known = self._topics.get(message.send_key or "")
        if known is not None:  # made before an outage interrupted the announcement
            result = await self._send_text(message, known)
            self._topics.pop(message.send_key or "", None)
            return SendResult(result.ref if result else None, thread=known)
        if await self._is_forum(chat):
            try:
                topic = await self._call(
                    partial(
                        self.bot.create_forum_topic,
                        chat_id=chat,
                        name=topic_name(message.case_code or ""),
                        rate_limit_args=True if message.urgent and self._limited else None,
                    ),
                    what="createForumTopic",
                    urgent=message.urgent,
                )
            except SendFailed:
                log.warning("no forum topic for a new case; announcing in the group")
            else:
                thread = Address(Platform.TELEGRAM, address.chat_id, str(topic.message_thread_id))
                if message.send_key:
                    self._topics[message.send_key] = thread
                result = await self._send_text(message, thread)
                self._topics.pop(message.send_key or "", None)
                return SendResult(result.ref if result else None, thread=thread)
        return await self._send_text(message, address)

    async def _is_forum(self, chat: int | str) -> bool:
        known = self._forum.get(chat)
        if known is not None:
            return known
        try:
            info = await self._call(partial(self.bot.get_chat, chat), what="getChat")
        except SendFailed:
            return False
        self._forum[chat] = bool(info.is_forum)
        return self._forum[chat]

    async def _vanish(self, message: OutboundMessage) -> None:
        """Delete the listed messages; what Telegram refuses (too old) is skipped."""
        chat = chat_id(message.address.chat_id)
        for chunk in chunks(message_ids(message.refs)):
            try:
                await self._call(
                    partial(self.bot.delete_messages, chat, chunk),
                    what="deleteMessages",
                    quiet=True,
                )
            except SendFailed:
                for one in chunk:  # one undeletable message fails the whole call
                    with contextlib.suppress(SendFailed):
                        await self._call(
                            partial(self.bot.delete_message, chat, one),
                            what="deleteMessage",
                            quiet=True,
                        )

    async def _copy(self, message: OutboundMessage) -> SendResult | None:
        """copyMessage with the label as caption (a copy, not a forward: no "forwarded from").

        From another platform only the label can be sent.
        """
        source = message.copy_from
        if source is None or source.platform is not Platform.TELEGRAM or not message.refs:
            return await self._send_text(message, message.address)
        sent = await self._call(
            partial(
                self.bot.copy_message,
                chat_id=chat_id(message.address.chat_id),
                from_chat_id=chat_id(source.chat_id),
                message_id=int(message.refs[0].split(",")[0]),
                caption=message.text[:1024] or None,
                message_thread_id=thread_id(message.address.thread_id),
                protect_content=message.protect,
            ),
            what="copyMessage",
        )
        self.stats.sent += 1
        return SendResult(ref=str(sent.message_id))

    async def _forget(self, message: OutboundMessage) -> None:
        """Delete a case's forum topic once its retention passed (plain groups: nothing)."""
        if message.address.thread_id is None:
            return
        with contextlib.suppress(SendFailed):
            await self._call(
                partial(
                    self.bot.delete_forum_topic,
                    chat_id(message.address.chat_id),
                    int(message.address.thread_id),
                ),
                what="deleteForumTopic",
                quiet=True,
            )

    async def _leave(self, message: OutboundMessage) -> None:
        """Leave a group the bot was added to but is not configured for."""
        chat = chat_id(message.address.chat_id)
        with contextlib.suppress(SendFailed):
            await self._call(partial(self.bot.leave_chat, chat), what="leaveChat", quiet=True)
        self._forum.pop(chat, None)

    async def _close_topic(self, message: OutboundMessage) -> None:
        """Close a case's forum topic of a programme the case left (plain groups: nothing).

        Closed, not deleted: the old programme keeps its own record until retention,
        but nobody (the bot included) writes there again.
        """
        if message.address.thread_id is None:
            return
        with contextlib.suppress(SendFailed):
            await self._call(
                partial(
                    self.bot.close_forum_topic,
                    chat_id(message.address.chat_id),
                    int(message.address.thread_id),
                ),
                what="closeForumTopic",
                quiet=True,
            )

    # ------------------------------------------------------------------ retries

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1)))

    async def _call(
        self,
        op: Callable[[], Awaitable[T]],
        *,
        what: str,
        urgent: bool = False,
        quiet: bool = False,
        migrate: bool = False,
    ) -> T:
        """Run one Bot API call with Telegram's retry rules.

        Raises:
            SendFailed: refused for good, or still rate limited after the retries.
            SendLater: still unreachable (network errors, 5xx) after the retries.
            ChatMigrated: with ``migrate``, the group has a new id (the caller re-addresses).
        """
        floods = failures = 0
        while True:
            if not urgent:
                await self._resume.wait()
            try:
                return await op()
            except RetryAfter as exc:
                floods += 1
                self.stats.flood_waits += 1
                if floods > self.config.flood_retries:
                    log.error("%s: still rate limited after %d waits; given up", what, floods - 1)
                    raise SendFailed(exc) from None
                await self._flood_pause(_seconds(exc.retry_after))
            except ChatMigrated as exc:
                if migrate:
                    raise
                self._refused(what, exc, quiet)
                raise SendFailed(exc) from None
            except BadRequest as exc:  # a NetworkError subclass, but permanent
                self._refused(what, exc, quiet)
                raise SendFailed(exc) from None
            except NetworkError:  # incl. TimedOut and 5xx answers
                failures += 1
                self.stats.network_retries += 1
                if failures > self.config.network_retries:
                    log.error("%s failed after %d network errors", what, failures)
                    self.stats.send_later += 1
                    raise SendLater(what) from None  # the core keeps it and tries later
                await self._sleep(self._backoff(failures))
            except TelegramError as exc:  # Forbidden (blocked), InvalidToken, Conflict, ...
                self._refused(what, exc, quiet)
                raise SendFailed(exc) from None

    @staticmethod
    def _refused(what: str, exc: TelegramError, quiet: bool) -> None:
        # Telegram's descriptions carry no ids; the log filter removes numbers anyway.
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "%s refused: %s (%s)",
            what,
            type(exc).__name__,
            exc.message[:120],
        )

    async def _flood_pause(self, seconds: float) -> None:
        """Wait out a 429; ordinary calls wait too (urgent ones go on)."""
        self._pauses += 1
        self._resume.clear()
        try:
            await self._sleep(seconds)
        finally:
            self._pauses -= 1
            if self._pauses == 0:
                self._resume.set()
