"""Built-in runnable tasks that belong to no external system: scripts, functions, KV.

They run on the Ray cluster with their ``resources``; the runtime lives in `actors`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AliasChoices, Field

from ._durations import Duration
from ._model import RunnableTask
from ._registry import register_type


@register_type("scripts.Python", aliases=("io.kestra.plugin.scripts.python.Script",))
class PythonScript(RunnableTask):
    """Run an inline Python script in a Ray worker.

    The script sees ``inputs``/``vars``; it sets outputs with ``Kestrel.outputs({...})``
    (Kestra's name) and logs with ``print`` or ``logging``.
    """

    script: str
    env: dict[str, str] = Field(default_factory=dict)
    before_commands: list[str] = Field(default_factory=list)


@register_type("python.Function")
class PythonFunction(RunnableTask):
    """Call ``package.module:function`` with rendered ``kwargs``: the Ray-native task.

    A dict return value becomes the outputs, any other value ``outputs.value``.
    """

    function: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")]
    # AliasChoices, not a plain alias: the pydantic mypy plugin would clash with **kwargs.
    call_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("kwargs"),
        serialization_alias="kwargs",
    )


@register_type("scripts.Shell", aliases=("io.kestra.plugin.scripts.shell.Commands",))
class ShellCommands(RunnableTask):
    """Run shell commands; stdout and stderr go to the logs, the exit code to outputs."""

    commands: Annotated[list[str], Field(min_length=1)]
    env: dict[str, str] = Field(default_factory=dict)
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    fail_fast: bool = True


class KVType(StrEnum):
    """Types a KV value can be stored as."""

    STRING = "STRING"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    DATETIME = "DATETIME"
    DATE = "DATE"
    DURATION = "DURATION"
    JSON = "JSON"


@register_type("kv.Set", aliases=("io.kestra.plugin.core.kv.Set",))
class KVSet(RunnableTask):
    """Store a value in the namespace's key-value store."""

    key: str
    value: Any
    namespace: str | None = None
    overwrite: bool = True
    ttl: Duration | None = None
    kv_type: KVType | None = None


@register_type("kv.Get", aliases=("io.kestra.plugin.core.kv.Get",))
class KVGet(RunnableTask):
    """Read a value from the key-value store into ``outputs.<id>.value``."""

    key: str
    namespace: str | None = None
    error_on_missing: bool = False


@register_type("kv.Delete", aliases=("io.kestra.plugin.core.kv.Delete",))
class KVDelete(RunnableTask):
    """Delete a key; ``outputs.<id>.deleted`` says whether it existed."""

    key: str
    namespace: str | None = None
    error_on_missing: bool = False
