"""What crosses between the interpreter and a worker: one attempt in, one outcome out.

Plain dataclasses with no Ray import, so the interpreter (and anything else that only
needs these shapes) does not load Ray at import time; `actors/_worker.py` runs them on Ray.
"""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import dataclass, field
from typing import Any

from flows import RunnableTask, State

from ._failure import TaskFailure
from ._storage import StorageConfig
from ._store._records import utcnow

INLINE_WORKER = "inline"
"""`TaskOutcome.worker` of trivial tasks (Log, Return) run in the execution's process."""


@dataclass(frozen=True)
class TaskInvocation:
    """One attempt of a runnable task, as sent to a worker.

    Attributes:
        task: The task with its properties already rendered.
        execution_id: The execution's id.
        task_run_id: The task run's id.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        namespace: The flow's namespace.
        flow_id: The flow's id.
        variables: The expression context the task was rendered with.
        dsn: The store's DSN, for KV tasks.
        storage: The internal storage (the default local folder when None).
        timeout_s: Seconds the attempt may run; None for no limit.
    """

    task: RunnableTask
    execution_id: str
    task_run_id: str
    attempt: int
    namespace: str
    flow_id: str
    variables: dict[str, Any] = field(default_factory=dict)
    dsn: str | None = None
    timeout_s: float | None = None
    storage: StorageConfig | None = None


Packed = bytes
"""A `TaskInvocation` pickled once by `pack`, as it crosses to a worker."""


def pack(invocation: TaskInvocation) -> Packed:
    """The invocation as bytes, for a worker to `unpack`.

    Ray pickles call arguments with cloudpickle, whose per-object hook runs in Python for
    every object of the invocation's graph (the task model, the rendered context): bytes
    cross as they are. The C pickler does the same work several times faster; what it
    cannot pickle (a class defined in a function, a lambda) goes through cloudpickle as
    Ray would have sent it.
    """
    return _dumps(invocation)


def pack_batch(items: list[tuple[int, TaskInvocation]]) -> Packed:
    """Keyed invocations as one `pack`-style pickle, for a worker to `unpack_batch`.

    One pickle for the batch shares what its attempts share (the task when its
    properties have no template, the flow's variables): per attempt it costs a third to a
    half of packing each alone.
    """
    return _dumps(items)


def _dumps(value: Any) -> Packed:
    """`value` by the C pickler; through cloudpickle what it refuses (as Ray would send it)."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        from ray import cloudpickle  # imports Ray: not at the interpreter's import

        packed: bytes = cloudpickle.dumps(  # type: ignore[no-untyped-call]
            value, protocol=pickle.HIGHEST_PROTOCOL
        )
        return packed


def unpack_batch(
    items: list[tuple[int, TaskInvocation | Packed]] | Packed,
) -> list[tuple[int, TaskInvocation]]:
    """The keyed invocations `pack_batch` made (a list of keyed ones or `pack` bytes passes)."""
    if isinstance(items, bytes):
        loaded = pickle.loads(items)  # noqa: S301 - our own caller's bytes, as Ray's pickles
        if not isinstance(loaded, list):
            raise TypeError(f"expected a packed batch, got {type(loaded).__name__}")
        items = loaded
    return [(key, unpack(invocation)) for key, invocation in items]


def unpack(invocation: TaskInvocation | Packed) -> TaskInvocation:
    """The invocation `pack` made (a `TaskInvocation` passes through as it is)."""
    if isinstance(invocation, TaskInvocation):
        return invocation
    loaded = pickle.loads(invocation)  # noqa: S301 - our own caller's bytes, as Ray's pickles
    if not isinstance(loaded, TaskInvocation):
        raise TypeError(f"expected a packed TaskInvocation, got {type(loaded).__name__}")
    return loaded


@dataclass(frozen=True)
class TaskOutcome:
    """How an attempt ended.

    Attributes:
        state: SUCCESS or FAILED.
        outputs: The task's outputs (empty when it failed).
        logs: ``(time, level, message)`` lines, in order, unmasked.
        error: For FAILED, why (`TaskFailure`); None for SUCCESS.
        worker: The Ray actor or worker id that ran it (``pid:N`` outside Ray).
        node: The Ray node id (the host name outside Ray).
        started_at: When the worker started the attempt (aware UTC).
        ended_at: When it ended (aware UTC).
    """

    state: State
    outputs: dict[str, Any]
    logs: list[tuple[dt.datetime, str, str]]
    error: TaskFailure | None
    worker: str | None
    node: str | None
    started_at: dt.datetime
    ended_at: dt.datetime


def failed_outcome(
    message: str, kind: str, *, retriable: bool = True, started_at: dt.datetime | None = None
) -> TaskOutcome:
    """A FAILED outcome for an attempt that did not run to its end on a worker.

    Args:
        message: Why, in one sentence.
        kind: The failure's type name.
        retriable: Whether the task's retry policy may run it again.
        started_at: When the attempt started (now if not given).
    """
    now = utcnow()
    return TaskOutcome(
        state=State.FAILED,
        outputs={},
        logs=[],
        error=TaskFailure(message, kind, retriable),
        worker=None,
        node=None,
        started_at=started_at or now,
        ended_at=now,
    )
