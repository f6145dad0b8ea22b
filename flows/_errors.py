"""The one error tree of Kestrel; every error a user can see derives from `KestrelError`."""

from __future__ import annotations

from dataclasses import dataclass, field


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


class TaskError(KestrelError):
    """A task attempt failed.

    Attributes:
        retriable: False when another attempt cannot help (bad configuration, Fail task).
    """

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        self.retriable = retriable
        super().__init__(message)


class ConnectorError(KestrelError):
    """An external system (broker, database, HTTP endpoint) refused or failed."""


class StoreError(KestrelError):
    """The state store could not perform an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now (connection refused or lost, server restarting).

    An infrastructure fault, not a fault of the data being written: callers wait and try
    again (a listener stops acknowledging its source, an API answers 503), and never
    treat the message or request as bad.

    Attributes:
        retry_after_s: A hint, in seconds, for when to try again.
    """

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class StaleLeaseError(StoreError):
    """A write was fenced: the writer's lease epoch is no longer current."""


class RegistryError(KestrelError):
    """A type name is unknown or registered twice."""
