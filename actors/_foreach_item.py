"""`flow.ForEachItem`: a stored file cut into batches, one subflow execution per batch.

The items file is streamed from the internal storage and cut into batches of
``batch.rows`` lines (a JSON-lines file is lines too); each batch is written back as a
file of its own under the task run (``.../tasks/<id>/<run>/batches/<n>.<ext>``), so
memory holds one batch at a time whatever the file's size. Subflows are started with
``taskrun.items`` set to their batch's URI, at most ``concurrencyLimit`` at once (0: no
limit), each under a dedupe key of its own: a resumed execution re-cuts the file (same
names, same content) and finds the subflows it had already started instead of starting
them twice. The merged outputs go to storage as JSON lines, one per batch.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from flows import ForEachItem, State, Storage, StorageError, Subflow, TaskError, task_file_uri

from ._runstate import TaskRunState
from ._storage import open_storage

if TYPE_CHECKING:
    from ._run_port import RunPort
    from ._scope import Scope


async def _lines(storage: Storage, uri: str, separator: bytes) -> AsyncIterator[bytes]:
    """The file's records, without separators; a trailing separator ends no extra record."""
    pending = b""
    async for chunk in storage.get(uri):
        pending += chunk
        *records, pending = pending.split(separator)
        for record in records:
            yield record
    if pending:
        yield pending


async def split_batches(
    storage: Storage, items: str, rows: int, separator: str, folder: str
) -> list[str]:
    """Cut `items` into files of `rows` records under `folder` (a URI prefix); their URIs."""
    sep = separator.encode()
    suffix = PurePosixPath(items).suffix
    uris: list[str] = []
    batch: list[bytes] = []

    async def flush() -> None:
        uri = f"{folder}{len(uris)}{suffix}"
        await storage.put(uri, sep.join(batch) + sep)
        uris.append(uri)
        batch.clear()

    async for record in _lines(storage, items, sep):
        batch.append(record)
        if len(batch) >= rows:
            await flush()
    if batch:
        await flush()
    return uris


def _subflow(task: ForEachItem) -> Subflow:
    return Subflow(
        id=task.id,
        type="flow.Subflow",
        namespace=task.namespace,
        flowId=task.flow_id,
        revision=task.revision,
        labels=task.labels,
        wait=task.wait,
        transmitFailed=task.transmit_failed,
        inheritLabels=task.inherit_labels,
    )


async def run_foreach_item(port: RunPort, task: Any, run: TaskRunState, scope: Scope) -> State:
    """Run a `ForEachItem` task run to its end (the interpreter's flowable handler)."""
    assert isinstance(task, ForEachItem)
    launcher = port.subflows
    if launcher is None:
        raise TaskError("flow.ForEachItem needs a subflow launcher", retriable=False)
    templates = port.templates
    storage = open_storage(port.options.storage)
    items = str(await templates.task_value(task.items, task, run, scope, "items"))
    execution = port.state.execution
    base = task_file_uri(
        execution.namespace, execution.flow_id, execution.id, task.id, run.id, "batches/x"
    )[: -len("x")]
    try:
        batches = await split_batches(storage, items, task.batch.rows, task.batch.separator, base)
    except StorageError as exc:
        raise TaskError(f"items: {exc}", retriable=False) from exc
    subflow = _subflow(task)
    limit = asyncio.Semaphore(task.concurrency_limit or max(1, len(batches)))
    context = templates.context(run, scope)

    async def one(index: int, uri: str) -> tuple[int, str, State, dict[str, Any]]:
        taskrun = {**(context.get("taskrun") or {}), "items": uri, "iteration": index}
        rendered = await templates.render_value(
            task.inputs, {**context, "taskrun": taskrun}, task=task.id, prop="inputs"
        )
        async with limit:
            child, state, outputs = await launcher.launch(
                port, run, subflow, dict(rendered), key=str(index)
            )
        return index, child, state, outputs

    results = await asyncio.gather(*(one(i, uri) for i, uri in enumerate(batches)))
    merged = "".join(
        json.dumps(
            {"batch": i, "executionId": child, "state": state.value, "outputs": outputs},
            default=str,
        )
        + "\n"
        for i, child, state, outputs in results
    )
    merged_uri = base + "subflowOutputs.jsonl"
    await storage.put(merged_uri, merged.encode())
    states = Counter(state.value for _, _, state, _ in results)
    port.journal.set_outputs(
        run,
        {
            "numberOfBatches": len(batches),
            "iterations": dict(states),
            "subflowOutputs": merged_uri,
        },
    )
    if not task.wait:
        return State.SUCCESS
    failed = states.get(State.FAILED.value, 0) + states.get(State.KILLED.value, 0)
    if failed:
        return State.FAILED if task.transmit_failed else State.WARNING
    return State.WARNING if states.get(State.WARNING.value) else State.SUCCESS
