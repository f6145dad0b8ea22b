"""Retry decisions: how long to wait before the next attempt, and whether one is left.

Kestra's policies (``constant``, ``exponential``, ``random``) with ``maxAttempts``,
``maxDuration`` and ``maxInterval``; ``behavior: CREATE_NEW_EXECUTION`` retries a failed
execution as a new one instead of retrying the task run in place.
"""

from __future__ import annotations

import datetime as dt
import random

from flows import Flow, Retry, RetryType, State, walk_tasks

from ._invocation import TaskOutcome
from ._runstate import ExecutionState, TaskRunState
from ._store._records import utcnow

INTERRUPTED = "interrupted"
"""Error type of an attempt whose owner died: it does not count as a failure."""
ATTEMPT_LABEL = "system.attemptNumber"
RETRY_START_LABEL = "system.retryStart"


def next_delay(
    retry: Retry | None, run: TaskRunState, first_start: dt.datetime, outcome: TaskOutcome | None
) -> float | None:
    """Seconds to wait before the next attempt, or None when no retry is left."""
    if retry is None or retry.behavior == "CREATE_NEW_EXECUTION":
        return None
    if outcome is not None and outcome.error is not None and not outcome.error.retriable:
        return None
    failures = sum(
        1
        for a in run.attempts
        if a.state is State.FAILED and (a.error or {}).get("type") != INTERRUPTED
    )
    if retry.max_attempts is not None and failures >= retry.max_attempts:
        return None
    delay = base_delay(retry, failures)
    if retry.max_interval is not None:
        delay = min(delay, retry.max_interval.total_seconds())
    if (
        retry.max_duration is not None
        and utcnow() + dt.timedelta(seconds=delay) - first_start > retry.max_duration
    ):
        return None
    return delay


def base_delay(retry: Retry, failures: int) -> float:
    """The policy's delay after `failures` failures (no jitter bound by maxDuration)."""
    if retry.type is RetryType.RANDOM:
        low = retry.min_interval.total_seconds() if retry.min_interval else 0.0
        high = retry.max_interval.total_seconds() if retry.max_interval else low
        return random.uniform(low, high)  # noqa: S311 - jitter, not cryptography
    base = retry.interval.total_seconds() if retry.interval else 0.0
    if retry.type is RetryType.EXPONENTIAL:
        base *= (retry.delay_factor or 2.0) ** (failures - 1)
    if retry.max_interval is not None:
        base = min(base, retry.max_interval.total_seconds())
    return base


def new_execution_after(flow: Flow, state: ExecutionState) -> tuple[float, dict[str, str]] | None:
    """Delay and labels of the next execution when a CREATE_NEW_EXECUTION retry applies."""
    retry = _create_new_execution_policy(flow, state)
    if retry is None:
        return None
    execution = state.execution
    attempt = int(execution.labels.get(ATTEMPT_LABEL, "1"))
    started = execution.labels.get(RETRY_START_LABEL) or execution.created_at.isoformat()
    if retry.max_attempts is not None and attempt >= retry.max_attempts:
        return None
    delay = base_delay(retry, attempt)
    elapsed = utcnow() + dt.timedelta(seconds=delay) - dt.datetime.fromisoformat(started)
    if retry.max_duration is not None and elapsed > retry.max_duration:
        return None
    correlation = execution.labels.get("system.correlationId", execution.id)
    return delay, {
        ATTEMPT_LABEL: str(attempt + 1),
        RETRY_START_LABEL: started,
        "system.correlationId": correlation,
    }


def _create_new_execution_policy(flow: Flow, state: ExecutionState) -> Retry | None:
    """The CREATE_NEW_EXECUTION retry of a failed task run, else of the flow, if any."""
    tasks = {t.id: t for _, t in walk_tasks(flow)}
    for run in state.task_runs.values():
        task = tasks.get(run.task_id)
        retry = task.retry if task is not None else None
        if run.state is State.FAILED and retry and retry.behavior == "CREATE_NEW_EXECUTION":
            return retry
    if flow.retry is not None and flow.retry.behavior == "CREATE_NEW_EXECUTION":
        return flow.retry
    return None
