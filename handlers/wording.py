"""Small text helpers shared by the handlers (no platform, no storage)."""

from __future__ import annotations

#: Marks a name can end in ("JUMP!", "Verein e.V.") that a following full stop would double.
NAME_END_MARKS = "!?."


def one_stop(text: str, name: str) -> str:
    """No doubled mark after a name that ends in one ("bei JUMP!." -> "bei JUMP!",
    "betreibt Verein e.V.." -> "betreibt Verein e.V.")."""
    if not name or name[-1] not in NAME_END_MARKS:
        return text
    return text.replace(f"{name}.", name)
