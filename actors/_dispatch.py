"""Dispatchers: where a runnable task's attempt runs.

`RayTaskDispatcher` submits each attempt as a Ray task with the task's ``resources``;
`WorkerPoolDispatcher` sends attempts without special resources to warm `TaskWorker`
actors (an actor call is cheaper than a task submission) and the rest as Ray tasks;
`InProcessDispatcher` runs attempts in this process (tests and dry runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import ray
import ray.job_config

from ._failure import TIMEOUT_ERROR
from ._invocation import TaskInvocation, TaskOutcome, failed_outcome, pack
from ._worker import execute, run_invocation, run_task, task_worker_class
from ._worker_link import WorkerLink, lost_outcome, not_sent_outcome

_CANCEL_GRACE_S = 5.0

_LOST: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,
)
"""What Ray raises for an attempt whose worker process or node went away under it."""


def _timed_out(invocation: TaskInvocation) -> TaskOutcome:
    message = f"timed out after {invocation.timeout_s:g}s; the Ray task was cancelled"
    return failed_outcome(message, TIMEOUT_ERROR)


def _hard_limit(invocation: TaskInvocation) -> float | None:
    """How long to wait for an attempt before cancelling it: its timeout plus a grace."""
    return invocation.timeout_s + _CANCEL_GRACE_S if invocation.timeout_s else None


async def _await_ref(ref: Any, invocation: TaskInvocation, *, force: bool = True) -> TaskOutcome:
    """Await a Ray ref; on cancellation or a hard timeout, cancel the remote work.

    `force` kills the worker process running a Ray task; actor calls cannot be forced
    (the actor's own loop cancels the attempt instead).
    """
    try:
        outcome: TaskOutcome = await asyncio.wait_for(asyncio.shield(ref), _hard_limit(invocation))
        return outcome
    except _LOST as exc:  # a crashed worker, a removed node: the retry policy decides
        return lost_outcome(_first_line(exc))
    except TimeoutError:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=force)
        return _timed_out(invocation)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=force)
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_AUTH_SETUP_LOGGER = "ray._private.authentication.authentication_token_setup"
_AUTH_ON_NOTICE = "Token authentication is enabled for this Ray cluster"


class _DropTokenAuthNotice(logging.Filter):
    """Drops Ray's warning that token auth is on (it is, and should be); keeps the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_AUTH_ON_NOTICE)


def _quiet_token_auth_notice() -> None:
    logger = logging.getLogger(_AUTH_SETUP_LOGGER)
    if not any(isinstance(f, _DropTokenAuthNotice) for f in logger.filters):
        logger.addFilter(_DropTokenAuthNotice())


def ensure_ray(address: str | None = None) -> None:
    """Connect to Ray unless already connected: `address`, or a new local instance.

    A local instance binds loopback only, has no dashboard, and keeps Ray's token
    authentication (Ray's default for a new instance), without Ray's warning about it.
    """
    if ray.is_initialized():
        return
    if address:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            job_config=_job_config(),
        )
    else:
        _quiet_token_auth_notice()
        ray.init(
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            job_config=_job_config(),
        )


def _job_config() -> ray.job_config.JobConfig:
    """Workers find Kestrel's own packages whatever the driver's current directory holds.

    Ray puts the driver's current directory on its workers' ``sys.path``. A user's
    ``./flows`` folder of YAML files there is a namespace package named ``flows``, which
    hides the real one when Kestrel is installed in editable mode (its import hook comes
    after the path search). The folder holding Kestrel's packages on the path too makes the
    real, regular package win.
    """
    return ray.job_config.JobConfig(_py_driver_sys_path=[str(Path(__file__).resolve().parents[1])])


class RayTaskDispatcher:
    """Each attempt is a Ray task, with the task's ``resources`` as Ray options.

    Args:
        connect: Connect to Ray on the first attempt when not connected yet (for
            ``kestrel run``, so flows without runnable tasks never start Ray).
        address: Where to connect with `connect`; a new local Ray when None.
    """

    def __init__(self, *, connect: bool = False, address: str | None = None) -> None:
        self._connect = connect
        self._address = address

    async def run(self, invocation: TaskInvocation) -> TaskOutcome:
        """Submit the attempt and await it (never ``ray.get``)."""
        if self._connect and not ray.is_initialized():
            ensure_ray(self._address)  # in the loop's thread: Ray wants the main thread
        resources = invocation.task.resources
        options: dict[str, Any] = resources.ray_options() if resources else {}
        try:
            ref = run_task.options(**options).remote(pack(invocation))
        except Exception as exc:  # options Ray refuses, an attempt it cannot serialise
            return not_sent_outcome(exc)
        return await _await_ref(ref, invocation)


class WorkerPoolDispatcher:
    """Warm `TaskWorker` actors for attempts without resources, Ray tasks for the rest.

    A lone attempt for an idle worker is one plain call; otherwise attempts reach it
    through a `WorkerLink`, which sends the attempts held while its previous ``start``
    call travelled in one call and brings their outcomes back in another.

    Args:
        size: How many warm workers to start (at `start`, never on the event path).
    """

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._links: list[WorkerLink] = []
        self._fallback = RayTaskDispatcher()

    async def start(self) -> None:
        """Create the warm workers and wait until each answers."""
        worker_cls = task_worker_class()
        workers = [worker_cls.remote() for _ in range(self._size)]
        await asyncio.gather(*(w.ping.remote() for w in workers))
        self._links = [WorkerLink(w) for w in workers]

    async def stop(self) -> None:
        """Let the workers go (Ray reclaims them)."""
        links, self._links = self._links, []
        for link in links:
            await link.close()
            with contextlib.suppress(Exception):
                ray.kill(link.worker)

    async def run(self, invocation: TaskInvocation) -> TaskOutcome:
        """Run on a warm worker when the task asks for no resources."""
        resources = invocation.task.resources
        if (resources is not None and resources.ray_options()) or not self._links:
            return await self._fallback.run(invocation)
        link = min(self._links, key=lambda candidate: candidate.running)  # least busy
        if link.idle:  # a lone attempt: one plain call, the outcome in its reply
            try:
                ref = link.worker.run.remote(pack(invocation))
            except Exception as exc:  # an attempt that cannot be pickled, a call Ray refuses
                return not_sent_outcome(exc)
            link.calls += 1
            try:
                return await _await_ref(ref, invocation, force=False)
            except ray.exceptions.RayError as exc:  # the worker died under it
                return lost_outcome(repr(exc))
            finally:
                link.calls -= 1
        key, outcome = link.submit(invocation)
        try:
            return await asyncio.wait_for(outcome, _hard_limit(invocation))
        except TimeoutError:
            link.abandon(key)
            return _timed_out(invocation)
        except asyncio.CancelledError:
            link.abandon(key)
            raise


class ColocatedDispatcher:
    """Attempts without resources run in this process, on its loop: no hop at all.

    The execution actor doubles as the warm worker (sync task code runs in a thread, so
    the loop stays responsive); attempts that ask for resources go to Ray tasks. Faster
    than any actor call, at the price of isolation: a task that crashes its process
    takes this actor (and, on a listener host, its listeners) with it until Ray
    restarts it.
    """

    def __init__(self) -> None:
        self._fallback = RayTaskDispatcher()

    async def run(self, invocation: TaskInvocation) -> TaskOutcome:
        """Run here unless the task asks for resources."""
        resources = invocation.task.resources
        if resources is not None and resources.ray_options():
            return await self._fallback.run(invocation)
        return await run_invocation(invocation)


class InProcessDispatcher:
    """Runs attempts in this process, in a thread: for tests of flow semantics."""

    async def run(self, invocation: TaskInvocation) -> TaskOutcome:
        """Run the attempt here."""
        return await asyncio.to_thread(execute, invocation)
