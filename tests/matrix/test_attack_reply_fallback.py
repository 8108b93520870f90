"""Red-team review: the Matrix reply-fallback stripping eats a person's own quote.

Since Matrix v1.13 clients (Element among them) no longer send reply fallbacks, so a
reply's body is exactly what the person typed. A person who answers the bot's
question with a reply and starts it with a Markdown quote of what the scene wrote loses
that quote: the transport strips every leading ``>`` line of a reply
(bot/transports/matrix/render.py strip_reply_fallback, called whenever
``m.in_reply_to`` is set). The threat is then neither detected nor relayed.

What should happen: strip only a real fallback - the first line is
``> <@user:server> ...`` (and, better, only when ``formatted_body`` holds ``<mx-reply>``).
"""

from __future__ import annotations

from bot.transports.matrix.render import strip_reply_fallback
from handlers.safety import detect

OWN_QUOTE = "> Wir wissen wo du wohnst. Du wirst dafür bezahlen.\n\nDas kam heute per SMS."


def test_attack_own_quote_in_a_reply_is_kept() -> None:
    assert strip_reply_fallback(OWN_QUOTE) == OWN_QUOTE


def test_attack_own_quote_in_a_reply_is_still_a_crisis() -> None:
    assert detect(OWN_QUOTE) is not None, "precondition: the full text is a threat"
    assert detect(strip_reply_fallback(OWN_QUOTE)) is not None


def test_attack_a_real_fallback_is_still_stripped() -> None:
    """(This holds today and must keep holding.)"""
    body = "> <@sam:example.org> Bist du in Gefahr?\n\nnein"
    assert strip_reply_fallback(body) == "nein"
