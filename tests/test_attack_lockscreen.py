"""Red-team review of privacy check 19: a lock screen shows more than the first line.

iOS shows up to four lines of a notification's body on the lock screen, Android's
expanded notification more; Telegram puts the message text there with its line breaks.
The check (config/lockscreen.py ``first_line``) looks at the first line only, and the
second line of several ordinary texts names the programme or the topic:

* case.claimed: "Alex hat deine Anfrage übernommen ...\\nDas ist Alex von <programme>."
* route.case: "Danke. Deine Anfrage ist angekommen.\\nPassend zu: Ausstieg, ..."
* transfer.accepted: "... weitergegeben.\\nSie ist jetzt bei <programme>."

What should happen: the preview a phone shows (say the first 4 lines / 160 characters)
names no programme and no topic word; the programme name moves behind /who or further
down, after a neutral paragraph.
"""

from __future__ import annotations

import pytest

import tests.conftest  # noqa: F401  (import order: tests.phone needs it first)
from config import lockscreen
from tests.test_lockscreen import EXAMPLE, NAMES, render

PREVIEW_LINES, PREVIEW_CHARS = 4, 160


def preview(text: str) -> str:
    return " / ".join(text.strip().split("\n")[:PREVIEW_LINES])[:PREVIEW_CHARS]


@pytest.mark.parametrize("key", ["case.claimed", "route.case", "transfer.accepted"])
@pytest.mark.parametrize("locale", ["de", "en"])
@pytest.mark.xfail(
    strict=False,
    reason="open (issue 12): preview lines 2-4 may still name the programme",
)
def test_attack_lock_screen_preview_names_no_programme_or_topic(key: str, locale: str) -> None:
    programme = EXAMPLE.programmes[0]
    shown = preview(render(key, locale, programme))
    assert lockscreen.problems(shown, locale, NAMES) == [], shown
