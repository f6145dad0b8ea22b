"""Built-in trivial and flowable tasks (Kestra's ``core`` and ``flow`` types).

Their runtime behaviour lives in `actors`; here they parse and validate.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from ._durations import Duration, parse_duration
from ._model import (
    FlowableTask,
    Input,
    KestrelModel,
    Path,
    Task,
    TaskId,
    TaskRef,
    branch,
)
from ._registry import register_type

_K = "io.kestra.plugin.core"


class LogLevel(StrEnum):
    """Log levels with Kestra's names."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


@register_type("core.Log", aliases=(f"{_K}.log.Log", "io.kestra.core.tasks.log.Log"))
class Log(Task):
    """Write a message (or several) to the execution's logs; runs inline."""

    message: str | list[str]
    level: LogLevel = LogLevel.INFO

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


@register_type("core.Return", aliases=(f"{_K}.debug.Return", "io.kestra.core.tasks.debugs.Return"))
class Return(Task):
    """Render a value into ``outputs.<id>.value``; runs inline. Kestra's ``format`` is accepted."""

    value: Any = None
    format: Any = None

    @model_validator(mode="after")
    def _one_of(self) -> Return:
        if self.value is None and self.format is None:
            raise ValueError("core.Return needs a 'value' (or Kestra's 'format')")
        if self.value is None:
            self.value = self.format
        return self


class _Container(FlowableTask):
    """A flowable task with one ``tasks`` list."""

    tasks: Annotated[list[TaskRef], Field(min_length=1)]

    def children(self) -> Iterator[tuple[Path, Task]]:
        """The nested ``tasks``."""
        return branch(("tasks",), self.tasks)


@register_type("flow.Sequential", aliases=(f"{_K}.flow.Sequential",))
class Sequential(_Container):
    """Run tasks one after another."""


@register_type("flow.Parallel", aliases=(f"{_K}.flow.Parallel",))
class Parallel(_Container):
    """Run tasks at the same time; ``concurrent`` caps how many (0 = no cap)."""

    concurrent: Annotated[int, Field(ge=0)] = 0


@register_type("flow.AllowFailure", aliases=(f"{_K}.flow.AllowFailure",))
class AllowFailure(_Container):
    """Run tasks; a failure among them ends this task in WARNING, not FAILED."""


@register_type("flow.If", aliases=(f"{_K}.flow.If",))
class If(FlowableTask):
    """Run ``then`` when ``condition`` is truthy (Kestra's truthiness), else ``else``."""

    condition: str | bool
    then: Annotated[list[TaskRef], Field(min_length=1)]
    else_: list[TaskRef] = Field(default_factory=list, alias="else")

    def children(self) -> Iterator[tuple[Path, Task]]:
        """The ``then`` and ``else`` branches."""
        yield from branch(("then",), self.then)
        yield from branch(("else",), self.else_)


@register_type("flow.Switch", aliases=(f"{_K}.flow.Switch",))
class Switch(FlowableTask):
    """Run the case whose key equals the rendered ``value``, else ``defaults``."""

    value: Any
    cases: dict[str, list[TaskRef]] = Field(default_factory=dict)
    defaults: list[TaskRef] = Field(default_factory=list)

    @field_validator("cases", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        """YAML reads ``1:`` as an integer key; Kestra compares case keys as text."""
        if isinstance(value, dict):
            return {
                (("true" if k else "false") if isinstance(k, bool) else str(k)): v
                for k, v in value.items()
            }
        return value

    @field_validator("defaults", mode="before")
    @classmethod
    def _null_defaults(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _some_branch(self) -> Switch:
        if not self.cases and not self.defaults:
            raise ValueError("flow.Switch needs 'cases' or 'defaults'")
        return self

    def children(self) -> Iterator[tuple[Path, Task]]:
        """Each case, then the defaults."""
        for key, tasks in self.cases.items():
            yield from branch(("cases", key), tasks)
        yield from branch(("defaults",), self.defaults)


@register_type("flow.ForEach", aliases=(f"{_K}.flow.ForEach",))
class ForEach(_Container):
    """Run tasks once per value (``taskrun.value``, ``taskrun.iteration``).

    ``concurrencyLimit`` 1 runs the values one after another, 0 all at once.
    """

    values: str | list[Any]
    concurrency_limit: Annotated[int, Field(ge=0)] = 1


class DagTask(KestrelModel):
    """One node of a `Dag`: a task and the ids of the nodes it waits for."""

    task: TaskRef
    depends_on: list[TaskId] = Field(default_factory=list)


@register_type("flow.Dag", aliases=(f"{_K}.flow.Dag",))
class Dag(FlowableTask):
    """Run tasks as soon as their ``dependsOn`` tasks succeeded."""

    tasks: Annotated[list[DagTask], Field(min_length=1)]
    concurrent: Annotated[int, Field(ge=0)] = 0

    def children(self) -> Iterator[tuple[Path, Task]]:
        """Each node's task, addressed as ``tasks[i].task``."""
        for index, node in enumerate(self.tasks):
            yield ("tasks", index, "task"), node.task


@register_type("flow.Subflow", aliases=(f"{_K}.flow.Subflow",))
class Subflow(FlowableTask):
    """Start another flow's execution; wait for it and take its outputs when ``wait``."""

    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    outputs: dict[str, Any] = Field(
        default_factory=dict,
        description="values rendered in the child execution's context when it ends",
    )


class PauseBehavior(StrEnum):
    """What a `Pause` does when its ``pauseDuration`` passes without a resume (Kestra's)."""

    RESUME = "RESUME"
    """The pause succeeds and the execution goes on."""
    WARN = "WARN"
    """The pause ends WARNING and the execution goes on."""
    FAIL = "FAIL"
    """The pause fails."""
    CANCEL = "CANCEL"
    """The execution is cancelled."""


@register_type("flow.Pause", aliases=(f"{_K}.flow.Pause", "io.kestra.core.tasks.flows.Pause"))
class Pause(FlowableTask):
    """Pause the execution until it is resumed (API/CLI) or ``pauseDuration`` has passed.

    A resume before the duration always succeeds, with the ``onResume`` inputs given to it
    (validated like flow inputs, then ``outputs.<id>.onResume.<input>``). When the
    duration passes, ``behavior`` decides (RESUME, WARN, FAIL, CANCEL). ``timeout``
    without a duration: the pause fails when no resume came in time. ``delay`` is
    Kestra's deprecated name of ``pauseDuration``.
    """

    pause_duration: Duration | str | None = Field(
        default=None, description="an ISO-8601 duration, or a template rendered when it starts"
    )
    delay: Duration | str | None = Field(default=None, description="deprecated: use pauseDuration")
    behavior: PauseBehavior = PauseBehavior.RESUME
    on_resume: list[Input] = Field(default_factory=list)
    tasks: list[TaskRef] = Field(
        default_factory=list, description="Kestra's deprecated tasks, run once the pause ends"
    )

    @field_validator("behavior", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("pause_duration", "delay", mode="before")
    @classmethod
    def _templated_duration(cls, value: Any) -> Any:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return value  # rendered when the pause starts
        return parse_duration(value) if isinstance(value, str) else value

    @property
    def duration(self) -> Duration | str | None:
        """How long the pause lasts without a resume (``pauseDuration``, else ``delay``)."""
        return self.pause_duration if self.pause_duration is not None else self.delay

    def children(self) -> Iterator[tuple[Path, Task]]:
        """The tasks run after the pause."""
        return branch(("tasks",), self.tasks)


@register_type("flow.Sleep", aliases=(f"{_K}.flow.Sleep",))
class Sleep(FlowableTask):
    """Wait for ``duration`` without holding a worker."""

    duration: Duration


class CheckFrequency(KestrelModel):
    """How often `LoopUntil` runs its tasks, and when it gives up."""

    interval: Duration | None = None
    max_iterations: Annotated[int, Field(ge=1)] | None = None
    max_duration: Duration | None = None


@register_type("flow.LoopUntil", aliases=(f"{_K}.flow.LoopUntil",))
class LoopUntil(_Container):
    """Run tasks repeatedly until ``condition`` is truthy."""

    condition: str
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency)
    fail_on_max_reached: bool = False


@register_type(
    "flow.Fail", aliases=(f"{_K}.execution.Fail", "io.kestra.core.tasks.executions.Fail")
)
class Fail(FlowableTask):
    """Fail the execution, when ``condition`` is truthy (or always without one)."""

    condition: str | bool | None = None
    error_message: str = "Flow failed"


class ItemBatch(KestrelModel):
    """How `ForEachItem` cuts its file: ``rows`` lines (or JSON lines) per batch."""

    rows: Annotated[int, Field(ge=1)] = 1
    separator: str = "\n"


@register_type("flow.ForEachItem", aliases=(f"{_K}.flow.ForEachItem",))
class ForEachItem(FlowableTask):
    """Split a stored file into batches of lines and run a subflow per batch.

    Each batch is written to the internal storage as a file of its own; the subflow's
    ``inputs`` are rendered with ``taskrun.items`` (the batch file's URI) and
    ``taskrun.iteration`` (the batch number, from 0). Outputs: ``numberOfBatches``,
    ``iterations`` (subflows per final state) and ``subflowOutputs``, the URI of a JSON
    lines file with one line per batch (``batch``, ``executionId``, ``state``, ``outputs``).
    """

    items: str
    batch: ItemBatch = Field(default_factory=ItemBatch)
    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    concurrency_limit: Annotated[int, Field(ge=0)] = 0


@register_type("flow.WaitFor", aliases=(f"{_K}.flow.WaitFor",))
class WaitFor(LoopUntil):
    """Kestra's WaitFor: run tasks until ``condition`` holds (LoopUntil's newer name).

    ``outputs.<id>.iterationCount`` counts the iterations; the children's outputs are those
    of the last iteration.
    """
