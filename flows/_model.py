"""Pydantic models of the flow YAML shape (Kestra's), common to every task and trigger."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from ._conditions import Condition
from ._durations import Duration
from ._errors import ConnectorError, TaskError
from ._listener import Listener, ListenerContext
from ._registry import REGISTRY, Kind
from ._run_context import RunContext

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
TASK_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"

_T = TypeVar("_T")

Path = tuple[str | int, ...]
"""A key path inside a flow document, e.g. ``('tasks', 0, 'then', 1)``."""

FlowId = Annotated[str, Field(pattern=FLOW_ID_PATTERN, max_length=100)]
Namespace = Annotated[str, Field(pattern=NAMESPACE_PATTERN, max_length=150)]
TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN, max_length=100)]


def yaml_key(name: str, field: FieldInfo) -> str:
    """The key a model field has in YAML (its validation alias)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    return field.alias or name


class KestrelModel(BaseModel):
    """Base of every flow-language model: camelCase keys in YAML, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        defer_build=True,
        use_enum_values=False,
    )


class _TypedRef:
    """Annotation marker: a mapping whose ``type`` picks the registered model class."""

    kind: ClassVar[Kind]

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        kind = cls.kind
        choices: dict[Any, CoreSchema] = {
            info.name: handler.generate_schema(info.cls) for info in REGISTRY.types(kind)
        }

        def discriminate(value: Any) -> str | None:
            name = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
            if not isinstance(name, str):
                return None
            info = REGISTRY.get(name)
            return info.name if info is not None and info.kind == kind else name

        return core_schema.tagged_union_schema(
            choices=choices,
            discriminator=discriminate,
            custom_error_type=f"unknown_{kind}_type",
            custom_error_message=f"unknown {kind} type",
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(schema)


class _TaskRef(_TypedRef):
    kind = "task"


class _TriggerRef(_TypedRef):
    kind = "trigger"


def _typed_json_schema(
    cls: type[BaseModel], schema: CoreSchema, handler: GetJsonSchemaHandler
) -> JsonSchemaValue:
    """JSON Schema of a registered type, its ``type`` pinned to its names for editors."""
    json_schema = handler(schema)
    target = handler.resolve_ref_schema(json_schema)
    names = [getattr(cls, "type_name", ""), *getattr(cls, "type_aliases", ())]
    if names[0]:
        target.setdefault("properties", {})["type"] = {"enum": names, "title": "Type"}
        target["description"] = (cls.__doc__ or "").strip().split("\n\n")[0]
    return json_schema


class RetryType(StrEnum):
    """How the delay between attempts grows."""

    CONSTANT = "constant"
    EXPONENTIAL = "exponential"
    RANDOM = "random"


def _kestra_retry_spelling(schema: dict[str, Any]) -> None:
    schema.setdefault("properties", {})["maxAttempt"] = {
        "type": "integer",
        "minimum": 1,
        "description": "Kestra's spelling of maxAttempts",
    }


class Retry(KestrelModel):
    """Kestra's retry policy: ``constant``, ``exponential`` or ``random``."""

    model_config = ConfigDict(**KestrelModel.model_config, json_schema_extra=_kestra_retry_spelling)

    type: RetryType
    max_attempts: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        validation_alias=AliasChoices("maxAttempts", "maxAttempt"),
        description="how many attempts in all (Kestra spells it maxAttempt)",
    )
    max_duration: Duration | None = None
    interval: Duration | None = None
    max_interval: Duration | None = None
    min_interval: Duration | None = None
    delay_factor: Annotated[float, Field(gt=1)] | None = None
    warning_on_retry: bool = False
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Retry:
        if self.max_attempts is None and self.max_duration is None:
            raise ValueError("a retry needs maxAttempts or maxDuration")
        if self.type is RetryType.RANDOM:
            if self.min_interval is None or self.max_interval is None:
                raise ValueError("a random retry needs minInterval and maxInterval")
        elif self.interval is None:
            raise ValueError(f"a {self.type.value} retry needs an interval")
        return self


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|KB|MB|GB|TB|B)?$", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
    "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024, "mi": 1024**2, "gi": 1024**3,
    "ti": 1024**4,
}  # fmt: skip


class Resources(BaseModel):
    """Ray options for a runnable task: our task runner. Keys are Ray's own names."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    num_cpus: Annotated[float, Field(ge=0)] | None = None
    num_gpus: Annotated[float, Field(ge=0)] | None = None
    memory: (
        Annotated[
            int,
            WithJsonSchema(
                {
                    "anyOf": [
                        {"type": "integer", "minimum": 0},
                        {"type": "string", "pattern": r"^\d+(\.\d+)?\s*([KMGT]i?|[KMGT]B|B)?$"},
                    ],
                    "description": "bytes, or a string like 512Mi or 2GB",
                }
            ),
        ]
        | None
    ) = None
    custom: dict[str, float] = Field(default_factory=dict, description="custom Ray resources")
    runtime_env: dict[str, Any] | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _MEMORY.match(value.strip())
            if match is None:
                raise ValueError(f"'{value}' is not a memory size (e.g. 512Mi, 2Gi, 1GB)")
            unit = (match.group(2) or "").lower()
            return int(float(match.group(1)) * _MEMORY_UNITS[unit])
        return value

    def ray_options(self) -> dict[str, Any]:
        """These resources as keyword arguments of Ray's ``.options()``."""
        opts: dict[str, Any] = {}
        if self.num_cpus is not None:
            opts["num_cpus"] = self.num_cpus
        if self.num_gpus is not None:
            opts["num_gpus"] = self.num_gpus
        if self.memory is not None:
            opts["memory"] = self.memory
        if self.custom:
            opts["resources"] = dict(self.custom)
        if self.runtime_env:
            opts["runtime_env"] = dict(self.runtime_env)
        return opts


class Task(KestrelModel):
    """Properties every task has, whatever its type."""

    kind: ClassVar[Kind] = "task"
    type_name: ClassVar[str] = ""
    type_aliases: ClassVar[tuple[str, ...]] = ()

    id: TaskId
    type: str
    description: str | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    run_if: str | None = None
    allow_failure: bool = False
    allow_warning: bool = False
    disabled: bool = False
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] | None = Field(
        default=None, description="the lowest level of this task's logs that is kept"
    )
    log_to_file: bool = Field(default=False, description="accepted for Kestra; logs stay logs")

    @field_validator("type")
    @classmethod
    def _canonical_type(cls, value: str) -> str:
        return cls.type_name or value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return _typed_json_schema(cls, schema, handler)

    def children(self) -> Iterator[tuple[Path, Task]]:
        """Directly nested tasks, each with its key path relative to this task."""
        return iter(())


class RunnableTask(Task):
    """A task that does real work; it runs on the Ray cluster with its `resources`.

    Subclasses implement `run`. Its properties arrive already rendered.
    """

    resources: Resources | None = None

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Do the work of one attempt and return the task's outputs.

        Raises:
            TaskError: When the attempt failed; ``retriable=False`` stops retries.
        """
        raise TaskError(f"'{self.type}' has no runtime in this installation", retriable=False)


class FlowableTask(Task):
    """A task that orchestrates other tasks; it runs inside the execution actor.

    Its ``errors`` run when its own tasks failed; the task stays FAILED (Kestra's rule).
    """

    errors: list[TaskRef] = Field(default_factory=list)

    def error_children(self) -> Iterator[tuple[Path, Task]]:
        """The ``errors`` branch."""
        return branch(("errors",), self.errors)


TaskRef = Annotated[Task, _TaskRef]
"""A field type: any registered task, chosen by its ``type``."""


_CONDITIONED = frozenset({"trigger.Flow", "trigger.Webhook", "trigger.Schedule"})


class Trigger(KestrelModel):
    """Properties every trigger has."""

    kind: ClassVar[Kind] = "trigger"
    type_name: ClassVar[str] = ""
    type_aliases: ClassVar[tuple[str, ...]] = ()

    id: TaskId
    type: str
    description: str | None = None
    disabled: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list)

    @field_validator("type")
    @classmethod
    def _canonical_type(cls, value: str) -> str:
        return cls.type_name or value

    @model_validator(mode="after")
    def _conditions_apply(self) -> Trigger:
        if self.conditions and self.type_name not in _CONDITIONED:
            raise ValueError(
                f"conditions are evaluated on {', '.join(sorted(_CONDITIONED))} triggers only"
            )
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return _typed_json_schema(cls, schema, handler)


class RealtimeTrigger(Trigger):
    """An always-on listener: one execution per event.

    Connector subclasses implement `create_listener`. Every realtime trigger bounds the
    events it has in flight (``maxInFlight``: the listener stops fetching beyond it) and
    sends a message whose execution cannot be created to the dead letters after
    ``deadLetterAfter`` attempts.
    """

    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 1000
    dead_letter_after: Annotated[int, Field(ge=1, le=100)] = 3

    def create_listener(self, ctx: ListenerContext) -> Listener:
        """A new listener for this trigger.

        Raises:
            ConnectorError: This trigger type has no listener in this installation.
        """
        raise ConnectorError(f"'{self.type}' has no listener in this installation")


TriggerRef = Annotated[Trigger, _TriggerRef]
"""A field type: any registered trigger, chosen by its ``type``."""


class InputType(StrEnum):
    """Kestra's input types."""

    STRING = "STRING"
    INT = "INT"
    FLOAT = "FLOAT"
    BOOLEAN = "BOOLEAN"
    BOOL = "BOOL"
    DATETIME = "DATETIME"
    DATE = "DATE"
    TIME = "TIME"
    DURATION = "DURATION"
    JSON = "JSON"
    ENUM = "ENUM"
    SELECT = "SELECT"
    MULTISELECT = "MULTISELECT"
    ARRAY = "ARRAY"
    URI = "URI"
    SECRET = "SECRET"  # noqa: S105 - an input type name, not a password
    FILE = "FILE"
    EMAIL = "EMAIL"
    YAML = "YAML"


_DATED = {InputType.DATETIME, InputType.DATE, InputType.TIME}
_NEEDS_VALUES = {InputType.ENUM, InputType.SELECT, InputType.MULTISELECT}


class Input(KestrelModel):
    """One declared flow input."""

    id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$")] = Field(
        validation_alias=AliasChoices("id", "name"), description="Kestra's old spelling: name"
    )
    type: InputType = InputType.STRING
    description: str | None = None
    display_name: str | None = None
    required: bool = True
    defaults: Any = None
    validator: str | None = Field(default=None, description="a regex a STRING input must match")
    min: Any = None
    max: Any = None
    values: list[Any] | None = None
    item_type: InputType | None = None
    allow_custom_value: bool = False
    allow_file_extensions: list[str] | None = None
    after: Any = Field(default=None, description="DATETIME/DATE/TIME: the earliest (min)")
    before: Any = Field(default=None, description="DATETIME/DATE/TIME: the latest (max)")

    @field_validator("type", "item_type", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("validator")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"validator is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Input:
        if self.type in _NEEDS_VALUES and not self.values:
            raise ValueError(f"a {self.type.value} input needs a non-empty 'values' list")
        if self.type is InputType.ARRAY and self.item_type is None:
            raise ValueError("an ARRAY input needs an 'itemType'")
        if self.after is not None or self.before is not None:
            if self.type not in _DATED:
                raise ValueError("after/before apply to DATETIME, DATE and TIME inputs only")
            self.min = self.min if self.min is not None else self.after
            self.max = self.max if self.max is not None else self.before
        return self


class ConcurrencyBehavior(StrEnum):
    """What happens to an execution over the concurrency limit."""

    QUEUE = "QUEUE"
    CANCEL = "CANCEL"
    FAIL = "FAIL"


class Concurrency(KestrelModel):
    """At most `limit` running executions of the flow."""

    limit: Annotated[int, Field(ge=1)]
    behavior: ConcurrencyBehavior = ConcurrencyBehavior.QUEUE


class PluginDefault(KestrelModel):
    """Default property values applied to every task or trigger of a type."""

    type: str
    values: dict[str, Any] = Field(default_factory=dict)
    forced: bool = False


class FlowOutput(KestrelModel):
    """A flow-level output, rendered when the execution ends."""

    id: TaskId
    type: InputType = InputType.STRING
    value: Any
    description: str | None = None
    display_name: str | None = None
    required: bool = True


class Sla(KestrelModel):
    """Kestra's flow SLA: ``MAX_DURATION`` fails (or cancels) an execution running too long.

    ``EXECUTION_ASSERTION`` is accepted and its expression checked when the execution ends.
    """

    id: str
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    behavior: Literal["FAIL", "CANCEL", "NONE"] = "FAIL"
    duration: Duration | None = None
    assert_: str | None = Field(default=None, alias="assert")
    labels: dict[str, Any] | list[Any] = Field(default_factory=dict)


class Label(KestrelModel):
    """Kestra's list form of a label."""

    key: str
    value: str


class Flow(KestrelModel):
    """A flow: what runs (tasks), with what (inputs, variables) and when (triggers)."""

    id: FlowId
    namespace: Namespace
    revision: int | None = None
    description: str | None = None
    labels: dict[str, str] | list[Label] = Field(default_factory=dict)
    inputs: list[Input] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: Annotated[list[TaskRef], Field(min_length=1)]
    errors: list[TaskRef] = Field(default_factory=list)
    finally_: list[TaskRef] = Field(default_factory=list, alias="finally")
    after_execution: list[TaskRef] = Field(default_factory=list)
    outputs: list[FlowOutput] = Field(default_factory=list)
    triggers: list[TriggerRef] = Field(default_factory=list)
    concurrency: Concurrency | None = None
    retry: Retry | None = None
    plugin_defaults: list[PluginDefault] = Field(
        default_factory=list, validation_alias=AliasChoices("pluginDefaults", "taskDefaults")
    )
    sla: list[Sla] = Field(default_factory=list)
    disabled: bool = False

    @field_validator("labels", mode="after")
    @classmethod
    def _labels_as_dict(cls, value: dict[str, str] | list[Label]) -> dict[str, str]:
        if isinstance(value, list):
            return {label.key: label.value for label in value}
        return value

    _derived: dict[str, Any] = PrivateAttr(default_factory=dict)

    def derived(self, key: str, compute: Callable[[Flow], _T]) -> _T:
        """``compute(self)``, computed once per flow object and kept under `key`.

        For facts the runtime needs for every execution of a flow (which tasks are loops,
        which namespaces its ``kv()`` calls read): a flow is not changed after loading.
        """
        if key not in self._derived:
            self._derived[key] = compute(self)
        value: _T = self._derived[key]
        return value

    @property
    def uid(self) -> str:
        """``namespace.id``, unique among flows."""
        return f"{self.namespace}.{self.id}"

    def label_dict(self) -> dict[str, str]:
        """The labels as a plain dict."""
        return dict(self.labels) if isinstance(self.labels, dict) else {}

    def top_branches(self) -> Iterator[tuple[Path, list[Task]]]:
        """The flow's own task lists with their keys: tasks, errors, finally, afterExecution."""
        yield ("tasks",), self.tasks
        yield ("errors",), self.errors
        yield ("finally",), self.finally_
        yield ("afterExecution",), self.after_execution


def branch(key: Path, tasks: list[Task]) -> Iterator[tuple[Path, Task]]:
    """``(key + (i,), task)`` for each task of a nested list: a helper for `Task.children`."""
    for index, task in enumerate(tasks):
        yield (*key, index), task


def walk_tasks(flow: Flow) -> Iterator[tuple[Path, Task]]:
    """Every task of the flow, nested ones included, with its key path, depth first."""
    for key, tasks in flow.top_branches():
        for path, task in branch(key, tasks):
            yield from _walk(path, task)


def _walk(path: Path, task: Task) -> Iterator[tuple[Path, Task]]:
    yield path, task
    for sub, child in task.children():
        yield from _walk((*path, *sub), child)
    if isinstance(task, FlowableTask):
        for sub, child in task.error_children():
            yield from _walk((*path, *sub), child)


def find_task(flow: Flow, task_id: str) -> Task | None:
    """The task with `task_id` anywhere in the flow, or None."""
    return next((t for _, t in walk_tasks(flow) if t.id == task_id), None)


def format_path(path: Path) -> str:
    """``('tasks', 0, 'then', 1)`` → ``tasks[0].then[1]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
