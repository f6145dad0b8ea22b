"""Large task outputs live in the internal storage; the store keeps a small reference.

Outputs whose JSON is bigger than a threshold (256 KiB by default) are written (masked,
as JSON) to ``kestra:///.../tasks/<task>/<taskrun>/outputs.json``, and the task run's
row holds ``{"kestrelStoredOutputs": uri, "size": n}`` instead. The running execution
keeps the real outputs in memory; an execution resumed or replayed from the store reads
them back (`resolve_outputs`), so expressions never see the difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flows import StorageError, TaskError, task_file_uri

from ._runstate import ExecutionState
from ._storage import StorageConfig, open_storage

MARKER = "kestrelStoredOutputs"
_NAME = "outputs.json"


def _encoded(outputs: Mapping[str, Any]) -> bytes:
    return json.dumps(outputs, default=str, separators=(",", ":")).encode()


def is_stored(outputs: Mapping[str, Any] | None) -> bool:
    """Whether recorded outputs are a reference to stored outputs."""
    return isinstance(outputs, Mapping) and MARKER in outputs


async def store_if_large(
    config: StorageConfig,
    state: ExecutionState,
    task_id: str,
    task_run_id: str,
    outputs: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Write outputs bigger than the config's threshold to storage; the reference, or None.

    The storage is opened only for large outputs.

    Raises:
        TaskError: The storage failed (retriable).
    """
    body = _encoded(outputs)
    if len(body) <= config.inline_outputs_bytes:
        return None
    storage = open_storage(config)
    execution = state.execution
    uri = task_file_uri(
        execution.namespace, execution.flow_id, execution.id, task_id, task_run_id, _NAME
    )
    try:
        await storage.put(uri, body)
    except StorageError as exc:
        raise TaskError(f"storing large outputs: {exc}") from exc
    return {MARKER: uri, "size": len(body)}


async def resolve_outputs(config: StorageConfig, state: ExecutionState) -> None:
    """Read back the stored outputs of every task run of a state rebuilt from the store."""
    for run in state.task_runs.values():
        if is_stored(run.outputs):
            data = await open_storage(config).read_bytes(str(run.outputs[MARKER]))
            run.outputs = json.loads(data)
