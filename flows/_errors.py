"""The one error tree of Kestrel; every error a user can see derives from `KestrelError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class KestrelError(Exception):
    """Root of every error Kestrel raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One precise complaint about a flow file.

    Attributes:
        message: What is wrong and what was expected.
        path: The key path inside the document, e.g. ``tasks[0].then[1].type``.
        file: The file name, or ``<string>`` for text that came from elsewhere.
        line: 1-based line, 0 when unknown.
        column: 1-based column, 0 when unknown.
    """

    message: str
    path: str = ""
    file: str = "<string>"
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FlowError(KestrelError):
    """A flow that cannot be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class InputError(KestrelError):
    """One or more execution inputs are invalid; each entry names the input."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"input '{k}': {v}" for k, v in self.errors.items())


class ExpressionError(KestrelError):
    """A template failed to render, or tried to escape the sandbox."""

    def __init__(
        self, message: str, *, expression: str = "", task: str = "", prop: str = ""
    ) -> None:
        self.expression = expression
        self.task = task
        self.prop = prop
        where = ".".join(p for p in (task, prop) if p)
        prefix = f"{where}: " if where else ""
        shown = f" in {expression!r}" if expression else ""
        super().__init__(f"{prefix}{message}{shown}")
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the fields (errors cross the Ray boundary)."""
        fields = {"expression": self.expression, "task": self.task, "prop": self.prop}
        return (_rebuild, (type(self), (self.message,), fields))


class TaskError(KestrelError):
    """A task attempt failed.

    Attributes:
        retriable: False when another attempt cannot help (bad configuration, Fail task).
    """

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        self.retriable = retriable
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the retriable flag (errors cross the Ray boundary)."""
        return (_rebuild, (type(self), self.args, {"retriable": self.retriable}))


class ConnectorError(KestrelError):
    """An external system (broker, database, HTTP endpoint) refused or failed."""


class SerdeError(ConnectorError):
    """A payload does not fit its (de)serializer: bad UTF-8, bad JSON, bad base64, wrong size.

    One class for every connector, so a listener tells a poison message from a broken
    connection the same way whatever the source.
    """


class StoreError(KestrelError):
    """The state store could not perform an operation."""


class NotFoundError(KestrelError):
    """A flow, execution, task run, trigger or key that does not exist (HTTP 404)."""


class ConflictError(KestrelError):
    """A request that does not fit the current state, e.g. killing an ended execution (409)."""


class NotStartedError(KestrelError):
    """A long-lived service was used before its `start()` (or after its `stop()`)."""


class UnavailableError(KestrelError):
    """A part of the runtime (a Ray actor, a worker) died or is restarting (HTTP 503).

    Attributes:
        retry_after_s: A hint, in seconds, for when to try again (Ray restarts a runtime
            actor in about a second, longer when its node is gone).
    """

    def __init__(self, message: str = "", *, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class StoreUnavailable(StoreError, UnavailableError):
    """The store cannot be reached right now (connection refused or lost, server restarting).

    An infrastructure fault, not a fault of the data being written: callers wait and try
    again (a listener stops acknowledging its source, an API answers 503), and never
    treat the message or request as bad.

    Attributes:
        retry_after_s: A hint, in seconds, for when to try again.
    """

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message, retry_after_s=retry_after_s)


class _LeaseLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def epoch(self) -> int: ...


class StaleLeaseError(StoreError):
    """A write was fenced: the writer's lease epoch is no longer current.

    Args:
        lease: The stale lease the writer held (kind, key, owner, epoch).
        holder: Who holds it now, or None when nobody does.
        holder_epoch: The current epoch, or None when nobody holds it.
        action: What was refused, e.g. ``"write refused"``.

    Attributes:
        lease: As given.
        holder: As given.
        holder_epoch: As given.
    """

    def __init__(
        self,
        lease: _LeaseLike,
        holder: str | None = None,
        holder_epoch: int | None = None,
        action: str = "write refused",
    ) -> None:
        self.lease = lease
        self.holder = holder
        self.holder_epoch = holder_epoch
        self.action = action
        now = f"held by {holder!r} at epoch {holder_epoch}" if holder else "not held"
        super().__init__(
            f"lease {lease.kind}/{lease.key} epoch {lease.epoch} of {lease.owner!r} is stale "
            f"(now {now}); {action}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the fields (errors cross the Ray boundary)."""
        return (type(self), (self.lease, self.holder, self.holder_epoch, self.action))


class RegistryError(KestrelError):
    """A type name is unknown or registered twice."""


def _rebuild(cls: type[KestrelError], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Unpickle an error whose constructor takes keyword fields."""
    return cls(*args, **kwargs)
