"""The contract every transport fulfils."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from config.messages import InboundMessage, OutboundMessage, Platform, SendResult

#: What a transport calls for every inbound event. It returns once the event's
#: transaction has committed and its replies were sent: only then may a transport
#: acknowledge the event to its platform.
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

        Raises:
            SendLater: the platform is unreachable now; the core tries again later.
            Exception: any other one is permanent (after the transport's own
                retries; rate limits are waited out inside); the core logs it.
        """
