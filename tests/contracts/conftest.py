"""Store contracts (issue 13): one module per store, each test run on every backend.

The ``backend`` and ``settings`` fixtures of tests/conftest.py give SQLite (a file in the
test's folder) and PostgreSQL (a private schema at 127.0.0.1:5432/test, dropped after the
test; skipped with the reason when unreachable, a failure under
``AUSWEG_REQUIRE_SERVICES=1``). A behaviour that differs between backends is a broken
contract, whichever backend is "right".

The unit-of-work repositories have their contract in tests/test_repositories.py (already
run on both backends through the same fixtures).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from storage.db import Database
from storage.migrate import upgrade


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The main database on the backend, migrated to head."""
    database = Database(settings.database_url, connect_args=settings.database.connect_args)
    await upgrade(database.engine)
    try:
        yield database
    finally:
        await database.dispose()
