"""Fake platform servers used by the test-suite (no real network access)."""
