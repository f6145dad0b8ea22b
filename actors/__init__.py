"""Ray actors and the runtime.

Execution actors and their warm pool, the interpreter, runnable-task workers, the
coordinator and its Postgres store.
"""

from ._coordinator import COORDINATOR_NAME, Coordinator, get_coordinator, start_coordinator
from ._dispatch import InProcessDispatcher, RayTaskDispatcher, WorkerPoolDispatcher, ensure_ray
from ._embedded_postgres import EmbeddedPostgres, default_data_dir
from ._execution_actor import ActorLoad, ExecutionActor, StartResult, execution_actor_class
from ._interpreter import Dispatcher, ExecutionRun, Recorder, RunOptions, SubflowLauncher
from ._pool import ExecutionPool, PoolOptions
from ._recorders import MemoryRecorder, StoreRecorder
from ._runstate import ExecutionState, TaskRunState
from ._service import ExecutionService, ExecutionSummary
from ._store import (
    EXECUTION_LEASE,
    Attempt,
    CreateResult,
    DeadLetter,
    Execution,
    ExecutionDetail,
    FlowRevision,
    FlowSaveResult,
    KVEntry,
    KVType,
    Lease,
    LogLine,
    NewExecution,
    NewTaskRun,
    Page,
    StateEntry,
    Store,
    TaskRun,
    TaskRunDetail,
    TriggerState,
)
from ._worker import TaskInvocation, TaskOutcome, TaskWorker, execute, run_task, task_worker_class
from ._worker_context import WorkerRunContext

__all__ = [
    "COORDINATOR_NAME",
    "EXECUTION_LEASE",
    "ActorLoad",
    "Attempt",
    "Coordinator",
    "CreateResult",
    "DeadLetter",
    "Dispatcher",
    "EmbeddedPostgres",
    "Execution",
    "ExecutionActor",
    "ExecutionDetail",
    "ExecutionPool",
    "ExecutionRun",
    "ExecutionService",
    "ExecutionState",
    "ExecutionSummary",
    "FlowRevision",
    "FlowSaveResult",
    "InProcessDispatcher",
    "KVEntry",
    "KVType",
    "Lease",
    "LogLine",
    "MemoryRecorder",
    "NewExecution",
    "NewTaskRun",
    "Page",
    "PoolOptions",
    "RayTaskDispatcher",
    "Recorder",
    "RunOptions",
    "StartResult",
    "StateEntry",
    "Store",
    "StoreRecorder",
    "SubflowLauncher",
    "TaskInvocation",
    "TaskOutcome",
    "TaskRun",
    "TaskRunDetail",
    "TaskRunState",
    "TaskWorker",
    "TriggerState",
    "WorkerPoolDispatcher",
    "WorkerRunContext",
    "default_data_dir",
    "ensure_ray",
    "execute",
    "execution_actor_class",
    "get_coordinator",
    "run_task",
    "start_coordinator",
    "task_worker_class",
]
