"""A terminal transport for the demo: one person and one counsellor share a keyboard.

Lines go to the person's chat by default. ``#c`` switches to the counsellor (in
the staff room), ``#p`` back to the person; ``c> text`` / ``p> text`` send one
line as the other role. A number picks a button of the last question shown.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys
from typing import TextIO

from bot.transports.base import InboundHandler
from config.messages import (
    Address,
    Button,
    ChatKind,
    InboundMessage,
    OutboundMessage,
    OutKind,
    Platform,
    SendResult,
)

PERSON_ACCOUNT = "person"
PERSON_CHAT = "person"
COUNSELLOR_ACCOUNT = "counsellor"
STAFF_ROOM = "staff"

INTRO = """Ausweg demo - you play both sides.
  You start as the PERSON who writes to the bot (just type; numbers pick a button).
  #c  switch to the COUNSELLOR in the staff room (try /queue, /claim K-XXXX, /help);
      each case has its own topic: after claiming you write in it, and what you type
      there reaches the person (#c K-XXXX enters a topic, #c alone the staff room)
  #p  switch back to the person      c> text / p> text  send one line as the other role
  #q  quit
"""


class ConsoleTransport:
    """Reads stdin, prints to stdout."""

    platform = Platform.CONSOLE

    def __init__(
        self, stdin: TextIO | None = None, stdout: TextIO | None = None, locale: str = "de"
    ) -> None:
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._locale = locale
        self._handler: InboundHandler | None = None
        self._buttons: dict[str, list[Button]] = {}
        self._role = "p"
        #: The case topic the counsellor writes in (None: the staff room itself).
        self._topic: str | None = None
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(4)

    async def start(self, on_message: InboundHandler) -> None:
        """Remember the core's handler and greet."""
        self._handler = on_message
        self._print(INTRO)

    async def stop(self) -> None:
        """Nothing to release."""
        self._handler = None

    async def send(self, message: OutboundMessage) -> SendResult | None:
        """Print a message for the person or the staff room (a new case gets a topic, as
        in a Telegram forum: ``Team-Raum › K-XXXX``)."""
        if message.kind in (OutKind.LEAVE, OutKind.FORGET):  # nothing to leave in a terminal
            return None
        result = None
        thread = message.address.thread_id
        if message.kind is OutKind.CASE_OPENED and message.case_code and thread is None:
            thread = message.case_code
            result = SendResult(thread=Address(self.platform, STAFF_ROOM, thread))
        who = "Team-Raum" if message.address.chat_id == STAFF_ROOM else "Person"
        if who == "Team-Raum" and thread:
            who += f" › {thread}"
        lines = [f"[Bot → {who}] " + message.text.replace("\n", "\n    ")]
        buttons = message.flat_buttons
        if buttons:
            self._buttons[message.address.chat_id] = buttons
            lines.append("    " + "  ".join(f"[{i}] {b.label}" for i, b in enumerate(buttons, 1)))
        self._print("\n".join(lines))
        return result

    async def run(self) -> None:
        """Read lines until end of input or ``#q``."""
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, self._in.readline)
            if not line:
                return
            line = line.rstrip("\n")
            if line.strip() in ("#q", "#quit"):
                return
            await self.feed(line)

    async def feed(self, line: str) -> None:
        """Handle one typed line."""
        stripped = line.strip()
        head, _, code = stripped.partition(" ")
        if head in ("#c", "#counsellor"):
            self._role, self._topic = "c", code.strip().upper() or None
            where = f"im Thema {self._topic}" if self._topic else "im Team-Raum"
            self._print(f"(Du bist jetzt die Beraterin / der Berater {where}.)")
            return
        if stripped in ("#p", "#person"):
            self._role = "p"
            self._print("(Du bist jetzt die Person.)")
            return
        role = self._role
        if stripped[:2] in ("c>", "p>"):
            role, stripped = stripped[0], stripped[2:].strip()
        if not stripped or self._handler is None:
            return
        chat = STAFF_ROOM if role == "c" else PERSON_CHAT
        sender = COUNSELLOR_ACCOUNT if role == "c" else PERSON_ACCOUNT
        button = None
        shown = self._buttons.get(chat, [])
        if stripped.isdigit() and 0 < int(stripped) <= len(shown):
            button = shown[int(stripped) - 1].data
        topic = self._topic if role == "c" else None
        if role == "c" and button and button.startswith("claim:"):
            topic = self._topic = button.split(":", 1)[1]  # write in the case's topic now
            self._print(f"(Du schreibst jetzt im Thema {topic}; #c allein: zurück.)")
        msg = InboundMessage(
            platform=self.platform,
            sender_id=sender,
            address=Address(self.platform, chat, topic),
            text="" if button else stripped,
            button=button,
            locale=self._locale,
            update_id=f"console-{self._run}-{next(self._ids)}",
            chat_kind=ChatKind.GROUP if role == "c" else ChatKind.PRIVATE,
        )
        await self._handler(msg)

    def _print(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()
