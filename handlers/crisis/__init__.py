"""Crisis detection over lemmas and stems, six languages, lexicon in data files.

``detect(text)`` returns the most urgent :class:`Danger` a message signals, or None.
The lexicon (``lexicon/<language>.yaml``) is loaded and compiled once, on first use.
"""

from __future__ import annotations

from handlers.crisis.analysis import normalise
from handlers.crisis.engine import URGENCY, Danger, detect, is_crisis, warm

__all__ = ["URGENCY", "Danger", "detect", "is_crisis", "normalise", "warm"]
