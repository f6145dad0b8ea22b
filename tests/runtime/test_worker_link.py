"""`WorkerLink` against a real warm `TaskWorker` actor: batching, isolation, loss, cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from typing import Any

import pytest
import ray

from actors._dispatch import WorkerPoolDispatcher
from actors._invocation import TaskInvocation
from actors._worker import task_worker_class
from actors._worker_link import WORKER_LOST, WorkerLink
from flows import REGISTRY, RunnableTask, State
from tests.polling import eventually
from tests.servers import RayCluster

pytestmark = pytest.mark.integration  # a real Ray


FN = "tests.runtime.fixtures_functions"


def invocation(function: str, **kwargs: Any) -> TaskInvocation:
    spec = {"id": "t", "type": "python.Function", "function": f"{FN}:{function}", "kwargs": kwargs}
    task = REGISTRY.resolve("python.Function", "task").cls.model_validate(spec)
    assert isinstance(task, RunnableTask)
    return TaskInvocation(
        task=task,
        execution_id=uuid.uuid4().hex,
        task_run_id=uuid.uuid4().hex,
        attempt=1,
        namespace="tests.runtime",
        flow_id="link",
    )


@pytest.fixture
async def worker(ray_cluster: RayCluster) -> Any:
    handle = task_worker_class(num_cpus=0).remote()
    await handle.ping.remote()
    yield handle
    ray.kill(handle)


async def test_a_lone_attempt_leaves_at_once_and_followers_share_one_call(worker: Any) -> None:
    link = WorkerLink(worker)
    futures = [link.submit(invocation("double", x=i))[1] for i in range(5)]
    assert link.starts == 1  # the first went out at once; the others wait for the turn's end
    outcomes = await asyncio.gather(*futures)
    assert [o.outputs for o in outcomes] == [{"double": 2 * i} for i in range(5)]
    assert all(o.state is State.SUCCESS for o in outcomes)
    assert link.starts == 2 and link.running == 0
    await link.close()


async def test_an_attempt_that_cannot_be_pickled_fails_alone_in_its_batch(worker: Any) -> None:
    link = WorkerLink(worker)
    first = link.submit(invocation("double", x=1))[1]  # goes at once: the others are held
    bad = dataclasses.replace(invocation("double", x=2), variables={"lock": threading.Lock()})
    refused = link.submit(bad)[1]
    after = link.submit(invocation("double", x=3))[1]
    outcomes = await asyncio.gather(first, refused, after)
    assert [o.outputs for o in outcomes] == [{"double": 2}, {}, {"double": 6}]
    assert outcomes[1].state is State.FAILED and outcomes[1].error is not None
    assert outcomes[1].error.retriable is False
    await link.close()


async def test_a_slow_attempt_does_not_hold_back_a_fast_one(worker: Any) -> None:
    link = WorkerLink(worker)
    slow_key, slow = link.submit(invocation("wait_forever"))
    _, fast = link.submit(invocation("double", x=21))
    assert (await asyncio.wait_for(fast, 30)).outputs == {"double": 42}
    assert not slow.done() and await worker.running.remote() == 1
    link.abandon(slow_key)  # a kill or a hard timeout: the worker cancels it

    async def cancelled() -> bool:
        return bool(await worker.running.remote() == 0)

    await eventually(cancelled)
    assert link.running == 0
    await link.close()


async def test_attempts_lost_with_their_worker_fail_retriably(worker: Any) -> None:
    link = WorkerLink(worker)
    _, lost = link.submit(invocation("wait_forever"))

    async def started() -> bool:
        return bool(await worker.running.remote() == 1)

    await eventually(started)
    ray.kill(worker, no_restart=False)  # Ray restarts it (max_restarts=-1), empty
    outcome = await asyncio.wait_for(lost, 60)
    assert outcome.state is State.FAILED and outcome.error is not None
    assert outcome.error.type == WORKER_LOST and outcome.error.retriable is True
    _, after = link.submit(invocation("double", x=1))  # the restarted worker serves on
    assert (await asyncio.wait_for(after, 60)).outputs == {"double": 2}
    await link.close()


async def test_the_dispatcher_sends_a_lone_attempt_as_a_plain_call(ray_cluster: RayCluster) -> None:
    dispatcher = WorkerPoolDispatcher(1)
    await dispatcher.start()
    try:
        (link,) = dispatcher._links
        alone = await dispatcher.run(invocation("double", x=1))
        assert alone.outputs == {"double": 2} and link.starts == 0  # no start/collect
        together = await asyncio.gather(
            *(dispatcher.run(invocation("double", x=i)) for i in range(4))
        )
        assert [o.outputs for o in together] == [{"double": 2 * i} for i in range(4)]
        assert link.starts >= 1 and link.idle  # the followers went batched
    finally:
        await dispatcher.stop()
