"""``kestrel run FLOW.yaml``: one execution to a terminal state, on the embedded defaults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from actors import (
    EmbeddedPostgres,
    ExecutionDetail,
    ExecutionService,
    RayTaskDispatcher,
    StorageConfig,
    Store,
    TaskRunDetail,
)
from flows import FlowError, InputError, KestrelError, State, parse_flow, parse_inputs

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def parse_input_args(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` → ``{"k": "v"}``; ``k=@path`` gives the path (a FILE input's file).

    Raises:
        InputError: A pair has no ``=``.
    """
    out: dict[str, str] = {}
    bad: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            bad[pair] = "expected --input NAME=VALUE"
            continue
        out[key.strip()] = str(Path(value[1:]).expanduser()) if value.startswith("@") else value
    if bad:
        raise InputError(bad)
    return out


@contextlib.asynccontextmanager
async def open_store(db: str | None, data_dir: str | Path | None = None) -> AsyncIterator[Store]:
    """The store at `db`; else on the embedded Postgres of `data_dir`; else a throwaway one.

    The throwaway Postgres lives in a temporary folder, stopped and removed on exit, so a
    run never writes into a server's store unless told to.
    """
    async with contextlib.AsyncExitStack() as stack:
        if db is None:
            if data_dir is None:
                folder = Path(tempfile.mkdtemp(prefix="kestrel-run-"))
                stack.callback(shutil.rmtree, folder, ignore_errors=True)
            else:
                folder = Path(data_dir)
            embedded = EmbeddedPostgres(folder / "postgres")
            await stack.enter_async_context(embedded)
            db = embedded.dsn
        store = Store(db)
        await stack.enter_async_context(store)
        yield store


def _run_storage(data_dir: str | Path | None, stack: contextlib.AsyncExitStack) -> StorageConfig:
    """``KESTREL_STORAGE``; else ``<data_dir>/storage``; else a folder removed at exit.

    Like the store, a run writes into a server's storage only when told to.
    """
    if os.environ.get("KESTREL_STORAGE"):
        return StorageConfig.parse(os.environ["KESTREL_STORAGE"])
    if data_dir is not None:
        return StorageConfig.local(Path(data_dir) / "storage")
    folder = Path(tempfile.mkdtemp(prefix="kestrel-run-storage-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return StorageConfig.local(folder)


async def run_flow_file(
    path: str,
    raw_inputs: Mapping[str, Any],
    *,
    db: str | None = None,
    data_dir: str | Path | None = None,
    ray_address: str | None = None,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Validate, deploy and run a flow file once; print the result; return the exit code."""
    try:
        source = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        flow = parse_flow(source, path)
        parse_inputs(flow, raw_inputs)  # refuse bad inputs before starting anything
    except OSError as exc:
        print(f"{path}: cannot read file: {exc}", file=err)
        return EXIT_INVALID
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return EXIT_INVALID
    except InputError as exc:
        print(f"invalid inputs: {exc}", file=err)
        return EXIT_INVALID
    async with contextlib.AsyncExitStack() as stack:
        storage = _run_storage(data_dir, stack)  # removed last, once the run has stopped
        store = await stack.enter_async_context(open_store(db, data_dir))
        dispatcher = RayTaskDispatcher(connect=True, address=ray_address)
        service = await stack.enter_async_context(
            ExecutionService(store, dispatcher, storage=storage)
        )
        deployed = await service.deploy(source, path)
        created = await service.create(deployed, raw_inputs)
        summary = await service.wait(created.execution.id)
        detail = await store.execution_detail(summary.id)
    assert detail is not None
    if as_json:
        print(json.dumps(execution_json(detail), default=str, indent=2), file=out)
    else:
        print_report(detail, out)
    return EXIT_OK if summary.state in (State.SUCCESS, State.WARNING) else EXIT_FAILED


def execution_json(detail: ExecutionDetail) -> dict[str, Any]:
    """The ``--json`` shape: id, state, flow, outputs, taskRuns."""
    execution = detail.execution
    return {
        "id": execution.id,
        "state": execution.state.value,
        "flow": {
            "namespace": execution.namespace,
            "id": execution.flow_id,
            "revision": execution.flow_revision,
        },
        "outputs": execution.outputs or {},
        "taskRuns": [
            {
                "id": d.task_run.id,
                "taskId": d.task_run.task_id,
                "value": d.task_run.value,
                "state": d.task_run.state.value,
                "attempts": len(d.attempts),
                "outputs": d.outputs or {},
            }
            for d in detail.task_runs
        ],
    }


def _duration(d: TaskRunDetail) -> str:
    running = [e.date for e in d.task_run.state_history if e.state is State.RUNNING]
    ends = [e.date for e in d.task_run.state_history if e.state.terminal]
    if not running or not ends:
        return "-"
    seconds = max(0.0, (ends[-1] - running[0]).total_seconds())
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_report(detail: ExecutionDetail, out: TextIO) -> None:
    """Logs, a task-run table (task, state, attempts, duration) and the outputs."""
    execution = detail.execution
    for line in detail.logs:
        print(f"{line.at:%H:%M:%S.%f}"[:-3] + f" {line.level:<5} {line.message}", file=out)
    rows = [
        (
            d.task_run.task_id + (f"[{d.task_run.value}]" if d.task_run.value else ""),
            d.task_run.state.value,
            str(len(d.attempts)),
            _duration(d),
        )
        for d in detail.task_runs
    ]
    header = ("TASK", "STATE", "ATTEMPTS", "DURATION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print("", file=out)
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), file=out)
    print("", file=out)
    flow = f"{execution.namespace}.{execution.flow_id} rev {execution.flow_revision}"
    print(f"execution {execution.id} of {flow}: {execution.state.value}", file=out)
    task_outputs = {d.task_run.task_id: d.outputs for d in detail.task_runs if d.outputs}
    if task_outputs:
        print("task outputs: " + json.dumps(task_outputs, default=str), file=out)
    if execution.outputs:
        print("flow outputs: " + json.dumps(execution.outputs, default=str), file=out)


def run_command(
    path: str,
    inputs: Sequence[str],
    db: str | None,
    ray_address: str | None,
    as_json: bool,
    *,
    data_dir: str | None = None,
) -> int:
    """The body of ``kestrel run``."""
    try:
        raw = parse_input_args(inputs)
    except InputError as exc:
        print(f"invalid inputs: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        return asyncio.run(
            run_flow_file(
                path, raw, db=db, data_dir=data_dir, ray_address=ray_address, as_json=as_json
            )
        )
    except KestrelError as exc:
        print(f"kestrel run: {exc}", file=sys.stderr)
        return EXIT_FAILED
