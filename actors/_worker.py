"""Runnable tasks on the Ray cluster: one attempt in, one `TaskOutcome` out.

Two ways to run an attempt, same result:

- `run_task`, a plain Ray task (``run_task.options(**resources.ray_options()).remote(inv)``)
  for any resource shape. Its body, `execute`, runs the task on one persistent event
  loop per worker process (a daemon thread), so pools and clients opened by one task
  (the KV store) are reused by the next task in the same worker.
- `TaskWorker`, an async actor (`task_worker_class`): a warm worker for the common
  resource shape, running many attempts concurrently on its own loop.

Neither ever raises for a task's failure: the outcome says FAILED and carries the error.
Retries are the execution actor's business, so Ray retries nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import ray

from flows import State, TaskError

from ._failure import TIMEOUT_ERROR, TaskFailure
from ._invocation import Packed, TaskInvocation, TaskOutcome, unpack, unpack_batch
from ._store._json import dumps
from ._store._records import utcnow
from ._worker_context import WorkerRunContext, close_worker_stores

DEFAULT_WORKER_CONCURRENCY = 100
HEALTH_GROUP = "health"


async def run_invocation(
    invocation: TaskInvocation, *, started_at: dt.datetime | None = None
) -> TaskOutcome:
    """Run one attempt on the running loop; task failures become a FAILED outcome.

    Args:
        invocation: The attempt.
        started_at: When the attempt started, if the caller recorded it earlier.
    """
    started = started_at or utcnow()
    worker, node = _identity()
    ctx = WorkerRunContext(
        execution_id=invocation.execution_id,
        task_run_id=invocation.task_run_id,
        task_id=invocation.task.id,
        attempt=invocation.attempt,
        namespace=invocation.namespace,
        flow_id=invocation.flow_id,
        variables=_with_node(invocation.variables, node),
        dsn=invocation.dsn,
        node_id=node,
        storage=invocation.storage,
    )
    outputs: dict[str, Any] = {}
    error: TaskFailure | None = None
    deadline = asyncio.timeout(invocation.timeout_s)
    try:
        async with deadline:
            outputs = _checked_outputs(await invocation.task.run(ctx))
    except TaskError as exc:
        error = TaskFailure.of(exc)
    except TimeoutError as exc:
        if not deadline.expired():
            error = _unexpected(exc, ctx)
        else:
            message = f"timed out after {invocation.timeout_s:g}s"
            ctx.log("ERROR", f"task {message}")
            error = TaskFailure(message, TIMEOUT_ERROR, True)
    except Exception as exc:
        error = _unexpected(exc, ctx)
    return TaskOutcome(
        state=State.FAILED if error else State.SUCCESS,
        outputs={} if error else outputs,
        logs=list(ctx.logs()),
        error=error,
        worker=worker,
        node=node,
        started_at=started,
        ended_at=utcnow(),
    )


def _checked_outputs(outputs: Any) -> dict[str, Any]:
    """The outputs, if the store can record them."""
    if not isinstance(outputs, dict):
        raise TaskError(f"run() returned {type(outputs).__name__}, not a dict", retriable=False)
    try:
        dumps(outputs)
    except (TypeError, ValueError) as exc:
        raise TaskError(f"outputs cannot be stored as JSON: {exc}", retriable=False) from exc
    return outputs


def _unexpected(exc: BaseException, ctx: WorkerRunContext) -> TaskFailure:
    """An exception the task did not turn into a TaskError: log its traceback."""
    ctx.log("ERROR", "".join(traceback.format_exception(exc)).rstrip())
    kind = type(exc).__name__
    text = str(exc)
    return TaskFailure(f"{kind}: {text}" if text else kind, kind, True)


def _with_node(variables: Mapping[str, Any], node: str) -> Mapping[str, Any]:
    """The context with ``taskrun.nodeId``: the node the attempt runs on (multi-node Ray)."""
    taskrun = variables.get("taskrun")
    if not isinstance(taskrun, Mapping):
        return variables
    return {**variables, "taskrun": {**taskrun, "nodeId": node}}


def _identity() -> tuple[str, str]:
    """``(worker, node)`` of this process: Ray's ids when in Ray."""
    if ray.is_initialized():
        context = ray.get_runtime_context()
        worker = context.get_actor_id() or context.get_worker_id()
        return str(worker), str(context.get_node_id())
    return f"pid:{os.getpid()}", socket.gethostname()


# ---- the persistent loop of a worker process ----------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None


def _worker_loop() -> asyncio.AbstractEventLoop:
    """This process's task loop, started on first use in a daemon thread."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None or _loop_thread is None or not _loop_thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="kestrel-worker-loop", daemon=True
            )
            thread.start()
            _loop, _loop_thread = loop, thread
        return _loop


def execute(invocation: TaskInvocation | Packed) -> TaskOutcome:
    """Run one attempt to its end: the body of the `run_task` Ray task.

    Blocks the calling thread while the task runs on this process's persistent loop.
    Never raises for the task's failure (see `TaskOutcome`); if the caller is
    interrupted (``ray.cancel``), the task is cancelled too.

    Args:
        invocation: The attempt, or its `pack` bytes (what dispatchers send).
    """
    # Unpacked before the stamp: Ray's own deserialisation of an argument came before it.
    loaded = unpack(invocation)
    started_at = utcnow()  # first: benchmarks measure "task body started" from here
    future = asyncio.run_coroutine_threadsafe(
        run_invocation(loaded, started_at=started_at), _worker_loop()
    )
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def shutdown_worker_loop(timeout_s: float = 10.0) -> None:
    """Close this process's stores and stop its task loop; the next `execute` starts anew.

    Idempotent. Attempts still running are cancelled.
    """
    global _loop, _loop_thread
    with _loop_lock:
        loop, thread = _loop, _loop_thread
        _loop = _loop_thread = None
    if loop is None or thread is None:
        return
    if thread.is_alive():
        done = asyncio.run_coroutine_threadsafe(_close_loop(), loop)
        with contextlib.suppress(Exception):  # best effort: a timeout, a cancelled close
            done.result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
    if not thread.is_alive():
        loop.close()


async def _close_loop() -> None:
    await close_worker_stores()
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


run_task: Any = ray.remote(max_retries=0)(execute)
"""`execute` as a Ray task: ``await run_task.options(**opts).remote(invocation)``."""


# ---- the warm worker actor ----------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Any])
_health = cast(Callable[[_F], _F], ray.method(concurrency_group=HEALTH_GROUP))


class _Outbox:
    """Outcomes finished for one caller (`WorkerLink`), until it collects them."""

    def __init__(self) -> None:
        self.items: list[tuple[int, TaskOutcome]] = []
        self.ready = asyncio.Event()


class TaskWorker:
    """A warm worker: runs attempts concurrently on the actor's own event loop.

    Two ways in: `run`, one attempt per call; or `start` / `collect` / `cancel`, which
    `WorkerLink` uses to carry many attempts per call each way. Make the Ray actor
    class with `task_worker_class`. Stateless apart from the stores it caches and the
    outcomes not collected yet (lost if it restarts: callers see a new incarnation), so
    Ray may restart it freely.

    Args:
        concurrency: Attempts started through `start` that run at once; the rest wait.
    """

    def __init__(self, concurrency: int = DEFAULT_WORKER_CONCURRENCY) -> None:
        self._incarnation = uuid.uuid4().hex
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._outboxes: dict[str, _Outbox] = {}

    async def run(self, invocation: TaskInvocation | Packed) -> TaskOutcome:
        """Run one attempt (see `execute`): a `TaskInvocation` or its `pack` bytes."""
        loaded = unpack(invocation)
        started_at = utcnow()
        return await run_invocation(loaded, started_at=started_at)

    async def start(
        self, link: str, items: list[tuple[int, TaskInvocation | Packed]] | Packed
    ) -> str:
        """Start attempts for caller `link` without waiting for them; this incarnation.

        Args:
            link: The caller.
            items: ``(key, attempt)`` pairs, or all of them as `pack_batch` bytes.
        """
        for key, invocation in unpack_batch(items):
            task = asyncio.ensure_future(self._attempt(link, key, invocation))
            self._running[(link, key)] = task
        return self._incarnation

    async def collect(self, link: str, incarnation: str) -> tuple[str, list[tuple[int, Any]]]:
        """Wait for outcomes of `link`'s attempts; returns ``(incarnation, [(key, outcome)])``.

        Answers at once, with nothing, when `incarnation` (the caller's last known, or
        ``""``) is not this one: the attempts it waits for died with a former incarnation.
        """
        if incarnation and incarnation != self._incarnation:
            return self._incarnation, []
        box = self._outboxes.setdefault(link, _Outbox())
        await box.ready.wait()
        items, box.items = box.items, []
        box.ready.clear()
        return self._incarnation, items

    async def cancel(self, link: str, key: int) -> None:
        """Cancel an attempt the caller gave up on (no outcome is sent for it)."""
        task = self._running.get((link, key))
        if task is not None:
            task.cancel()

    async def _attempt(self, link: str, key: int, invocation: TaskInvocation) -> None:
        try:
            async with self._slots:
                outcome = await run_invocation(invocation, started_at=utcnow())
        except asyncio.CancelledError:
            return  # the caller abandoned it
        finally:
            self._running.pop((link, key), None)
        box = self._outboxes.setdefault(link, _Outbox())
        box.items.append((key, outcome))
        box.ready.set()

    @_health
    async def running(self) -> int:
        """How many attempts sent through `start` are running or waiting for a slot."""
        return len(self._running)

    @_health
    async def ping(self) -> str:
        """Health check, in its own concurrency group: this worker's id."""
        return _identity()[0]

    async def close(self) -> None:
        """Close the stores this worker opened (before the actor is killed)."""
        await close_worker_stores()


def task_worker_class(**options: Any) -> Any:
    """`TaskWorker` as a Ray actor class.

    Args:
        **options: Ray actor options, over the defaults: ``max_concurrency=100``,
            ``max_restarts=-1``, ``max_task_retries=0`` and a ``health`` concurrency
            group for `TaskWorker.ping`.
    """
    defaults: dict[str, Any] = {
        "max_concurrency": DEFAULT_WORKER_CONCURRENCY,
        "max_restarts": -1,
        "max_task_retries": 0,
        "concurrency_groups": {HEALTH_GROUP: 1},
    }
    return ray.remote(**{**defaults, **options})(TaskWorker)
