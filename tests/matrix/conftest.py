"""Fixtures for the Matrix tests: one real Synapse per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.synapse import SynapseServer, synapse_available
from tests.telegram.conftest import api  # noqa: F401 - the fake Bot API, for mixed journeys


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseServer]:
    """A fresh Synapse on loopback for the whole session (fresh one-time keys each run)."""
    if not synapse_available():
        pytest.skip("matrix-synapse is not installed (pip install matrix-synapse)")
    server = SynapseServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
