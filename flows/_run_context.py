"""What a runnable task sees while it runs: the contract between tasks and the runtime.

Runnable task models implement ``async def run(self, ctx: RunContext) -> dict[str, Any]``;
the runtime (``actors``) provides the context inside a Ray worker. Connectors depend on
this protocol only, never on the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from ._storage import Storage


@runtime_checkable
class RunContext(Protocol):
    """The running attempt of a task, as the task sees it."""

    @property
    def execution_id(self) -> str:
        """The execution's id."""

    @property
    def task_run_id(self) -> str:
        """The task run's id."""

    @property
    def task_id(self) -> str:
        """The task's id in the flow."""

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""

    @property
    def namespace(self) -> str:
        """The flow's namespace (the default KV namespace)."""

    @property
    def flow_id(self) -> str:
        """The flow's id."""

    @property
    def variables(self) -> Mapping[str, Any]:
        """The expression context the task's properties were rendered with."""

    @property
    def storage(self) -> Storage:
        """The internal storage (files in and out of the task)."""

    def log(self, level: str, message: str) -> None:
        """Record a log line (TRACE, DEBUG, INFO, WARN, ERROR) for this attempt."""

    async def kv_get(self, key: str, namespace: str | None = None) -> tuple[bool, Any]:
        """``(found, value)`` for a KV key; expired keys are not found."""

    async def kv_set(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        ttl: timedelta | None = None,
        kv_type: str | None = None,
        overwrite: bool = True,
    ) -> None:
        """Store a KV value; refuses to replace an existing key when not `overwrite`."""

    async def kv_delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete a KV key; True when it existed."""
