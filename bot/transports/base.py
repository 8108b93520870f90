"""The contract every transport fulfils."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from config.messages import InboundMessage, OutboundMessage, Platform, SendResult

#: What a transport calls for every inbound event. It returns once the event's effects
#: and its replies are committed (with a redelivering platform: the replies are in the
#: outbox), so the transport may then acknowledge the event to its platform. The replies
#: go out apart, from the app's per-destination send queues (commit, then confirm, then
#: send), through :meth:`Transport.send`; an app that waits for its sends (tests, the
#: console demo) returns only after them. A transport relies on neither: only on "when
#: it returned, the event is durable".
InboundHandler = Callable[[InboundMessage], Awaitable[None]]


class SendLater(Exception):
    """The platform cannot take the message now (unreachable, not yet connected).

    The core keeps the reply in its outbox and sends it again later; any other
    exception from ``send`` is a permanent refusal.
    """


class Withheld(Exception):
    """A reply to a person was not sent because someone else can read their chat
    (a third account joined it). Not retried: a held reply would block every later
    reply of the platform; the core tells the case's staff that it was not delivered.
    """


async def first_of(*events: asyncio.Event) -> None:
    """Return as soon as one of ``events`` is set (e.g. "ready" or "offline")."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@runtime_checkable
class Transport(Protocol):
    """A connection to one platform. Transports never decide anything."""

    platform: Platform

    async def start(self, on_message: InboundHandler) -> None:
        """Connect and begin delivering inbound events to ``on_message``."""

    async def stop(self) -> None:
        """Stop receiving, finish in-flight sends, release resources."""

    async def send(self, message: OutboundMessage) -> SendResult | None:
        """Deliver one outbound message (copy, never forward).

        Called by the send queues, one call at a time per destination (platform and
        chat), many destinations at once: a wait for one destination's limit must not
        hold up the others. A transport may also offer ``held(message) -> bool``: True
        while a send to that destination would wait for the platform's limit (the
        queues then merge pending staff relays of one case into one message).

        Raises:
            SendLater: the platform is unreachable now; the core tries again later.
            Exception: any other one is permanent (after the transport's own
                retries; rate limits are waited out inside); the core logs it.
        """
