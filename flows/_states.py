"""Execution and task-run states, with Kestra's names."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """The state of an execution or a task run."""

    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    KILLING = "KILLING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    RETRIED = "RETRIED"
    """An execution that failed and was replaced by a new one (retry CREATE_NEW_EXECUTION)."""

    @property
    def terminal(self) -> bool:
        """True when nothing more will happen to the execution or task run."""
        return self in TERMINAL_STATES

    @property
    def successful(self) -> bool:
        """True for SUCCESS, WARNING and SKIPPED: the flow may go on."""
        return self in (State.SUCCESS, State.WARNING, State.SKIPPED)


TERMINAL_STATES: frozenset[State] = frozenset(
    {
        State.SUCCESS,
        State.WARNING,
        State.FAILED,
        State.KILLED,
        State.CANCELLED,
        State.SKIPPED,
        State.RETRIED,
    }
)
