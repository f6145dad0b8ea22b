"""Fixtures shared by the runtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from actors._dispatch import InProcessDispatcher
from actors._service import ExecutionService
from actors._store._store import Store


@pytest.fixture
async def service(fresh_database: str) -> AsyncIterator[ExecutionService]:
    """An execution service (in-process dispatch) on a fresh database."""
    async with (
        Store(fresh_database) as store,
        ExecutionService(store, InProcessDispatcher()) as svc,
    ):
        yield svc
