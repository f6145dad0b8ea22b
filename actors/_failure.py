"""`TaskFailure`: why an attempt failed, as a typed value that crosses the Ray boundary.

A worker turns the exception of a failed attempt into a `TaskFailure`; it travels back in
the `TaskOutcome`, and the execution actor's retry decision reads its fields (never a dict
by key). The store keeps it as the attempt's ``error`` JSON (`TaskFailure.to_json`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from flows import TaskError

TIMEOUT_ERROR = "timeout"
"""`TaskFailure.type` of an attempt that ran out of time."""


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """Why an attempt failed.

    Attributes:
        message: What went wrong, for a person (masked before it is stored).
        type: The exception's class name, or a kind such as `TIMEOUT_ERROR` or
            ``"WorkerLost"``.
        retriable: False when another attempt cannot help (bad configuration, Fail task);
            the task's retry policy decides otherwise.
    """

    message: str
    type: str
    retriable: bool = True

    @classmethod
    def of(cls, exc: BaseException) -> TaskFailure:
        """The failure an exception stands for (a `TaskError` says whether it retries)."""
        retriable = exc.retriable if isinstance(exc, TaskError) else True
        return cls(str(exc), type(exc).__name__, retriable)

    def masked(self, mask: Callable[[str], str]) -> TaskFailure:
        """The same failure with its message passed through `mask` (secrets hidden)."""
        return replace(self, message=mask(self.message))

    def to_json(self) -> dict[str, Any]:
        """The attempt's ``error`` as stored and served: ``{"message", "type", "retriable"}``."""
        return {"message": self.message, "type": self.type, "retriable": self.retriable}
