"""Crisis detection: danger to life or violence gets emergency numbers at once.

The detector lives in :mod:`handlers.crisis` (lexicon data files per language);
this module is the stable interface the router, intake and protocol use.
"""

from __future__ import annotations

from handlers.crisis import URGENCY, Danger, detect, is_crisis, normalise, warm

__all__ = ["URGENCY", "Danger", "detect", "is_crisis", "normalise"]

# Load and compile the lexicons now (~0.3 s CPU, once per process), not inside the
# first message: that message may be the one that needs the numbers at once.
warm()
