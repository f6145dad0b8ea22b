"""Ray actors and the runtime.

Execution actors and their warm pool, the interpreter, runnable-task workers, listener
hosts, and the Postgres store every state change goes to.
"""

from ._dispatch import InProcessDispatcher, RayTaskDispatcher, WorkerPoolDispatcher, ensure_ray
from ._embedded_postgres import EmbeddedPostgres, default_data_dir
from ._execution_actor import ActorLoad, ExecutionActor, StartResult, execution_actor_class
from ._execution_host import ExecutionHost, retire_actor
from ._failure import TIMEOUT_ERROR, TaskFailure
from ._flow_trigger import FlowTriggerListener
from ._interceptors import (
    AttemptFinished,
    AttemptStarted,
    ExecutionCreated,
    ExecutionEnded,
    FirstTaskLatency,
    Interceptor,
    Interceptors,
    opentelemetry_interceptor,
)
from ._interpreter import Dispatcher, ExecutionRun, Recorder, RunOptions, SubflowLauncher
from ._invocation import TaskInvocation, TaskOutcome
from ._launch import ExecutionSummary
from ._listener_host import (
    CORE_LISTENERS,
    ListenerHost,
    TriggerHost,
    host_index,
    listener_host_class,
)
from ._named import RAY_NAMESPACE, owner_actor, owner_actor_name
from ._placement import spread_over_nodes
from ._pool import ExecutionPool, PoolOptions
from ._ray_errors import remote_call, unwrap_ray_error
from ._recorders import MemoryRecorder, StoreRecorder
from ._runstate import ExecutionState, TaskRunState
from ._schedule import ScheduleListener, backfill, next_tick, ticks_between
from ._service import ExecutionService
from ._storage import ObjectStorage, StorageConfig, default_storage_dir, open_storage
from ._store import (
    CONTROL_CHANNEL,
    EXECUTION_LEASE,
    FLOW_CHANNEL,
    Attempt,
    CreateResult,
    DeadLetter,
    Execution,
    ExecutionDetail,
    FlowChange,
    FlowChanges,
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
    encode_value,
    new_id,
)
from ._templates import off_loop
from ._trigger_lease import (
    DEFAULT_TRIGGER_LEASE_S,
    TRIGGER_LEASE,
    LeasedRunner,
    trigger_lease_key,
)
from ._triggers import (
    TRIGGER_LABEL,
    Backoff,
    RunnerContext,
    TriggerInfo,
    TriggerRunner,
    TriggerStats,
    TriggerStatus,
)
from ._worker import TaskWorker, execute, run_task, task_worker_class
from ._worker_context import WorkerRunContext

__all__ = [
    "CONTROL_CHANNEL",
    "CORE_LISTENERS",
    "DEFAULT_TRIGGER_LEASE_S",
    "EXECUTION_LEASE",
    "FLOW_CHANNEL",
    "RAY_NAMESPACE",
    "TIMEOUT_ERROR",
    "TRIGGER_LABEL",
    "TRIGGER_LEASE",
    "ActorLoad",
    "Attempt",
    "AttemptFinished",
    "AttemptStarted",
    "Backoff",
    "CreateResult",
    "DeadLetter",
    "Dispatcher",
    "EmbeddedPostgres",
    "Execution",
    "ExecutionActor",
    "ExecutionCreated",
    "ExecutionDetail",
    "ExecutionEnded",
    "ExecutionHost",
    "ExecutionPool",
    "ExecutionRun",
    "ExecutionService",
    "ExecutionState",
    "ExecutionSummary",
    "FirstTaskLatency",
    "FlowChange",
    "FlowChanges",
    "FlowRevision",
    "FlowSaveResult",
    "FlowTriggerListener",
    "InProcessDispatcher",
    "Interceptor",
    "Interceptors",
    "KVEntry",
    "KVType",
    "Lease",
    "LeasedRunner",
    "ListenerHost",
    "LogLine",
    "MemoryRecorder",
    "NewExecution",
    "NewTaskRun",
    "ObjectStorage",
    "Page",
    "PoolOptions",
    "RayTaskDispatcher",
    "Recorder",
    "RunOptions",
    "RunnerContext",
    "ScheduleListener",
    "StartResult",
    "StateEntry",
    "StorageConfig",
    "Store",
    "StoreRecorder",
    "SubflowLauncher",
    "TaskFailure",
    "TaskInvocation",
    "TaskOutcome",
    "TaskRun",
    "TaskRunDetail",
    "TaskRunState",
    "TaskWorker",
    "TriggerHost",
    "TriggerInfo",
    "TriggerRunner",
    "TriggerState",
    "TriggerStats",
    "TriggerStatus",
    "WorkerPoolDispatcher",
    "WorkerRunContext",
    "backfill",
    "default_data_dir",
    "default_storage_dir",
    "encode_value",
    "ensure_ray",
    "execute",
    "execution_actor_class",
    "host_index",
    "listener_host_class",
    "new_id",
    "next_tick",
    "off_loop",
    "open_storage",
    "opentelemetry_interceptor",
    "owner_actor",
    "owner_actor_name",
    "remote_call",
    "retire_actor",
    "run_task",
    "spread_over_nodes",
    "task_worker_class",
    "ticks_between",
    "trigger_lease_key",
    "unwrap_ray_error",
]
