"""Fixtures for the store tests: a started `Store` on a brand-new database per test.

The servers come from the shared fixtures in ``tests/conftest.py`` (``fresh_database``,
``ray_cluster``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actors._store import Store


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[Store]:
    """A started store (migrations applied) on its own empty database."""
    async with Store(fresh_database, min_connections=1, max_connections=6) as started:
        yield started
