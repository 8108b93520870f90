"""Crisis detection: danger to life or violence gets emergency numbers at once.

The detector lives in :mod:`handlers.crisis` (lexicon data files per language);
this module is the stable interface the router, intake and protocol use.
"""

from __future__ import annotations

from handlers.crisis import URGENCY, Danger, detect, is_crisis, normalise

__all__ = ["URGENCY", "Danger", "detect", "is_crisis", "normalise"]
