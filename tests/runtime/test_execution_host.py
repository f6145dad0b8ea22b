"""`ExecutionHost`: one wiring of stores, dispatcher and service, one shutdown order.

Shutdown lets running executions end within its deadline, cancels what is left (its
lease lapses, the execution stays RUNNING in the store for another owner to resume) and
always closes the stores; `start()`/`stop()` are safe twice and after a failed start.
"""

from __future__ import annotations

import pytest

from actors import ExecutionHost, Store
from flows import State, StoreError, parse_flow

pytestmark = pytest.mark.integration

NAP_FLOW = """\
id: {id}
namespace: tests.host
tasks:
  - {{id: nap, type: flow.Sleep, duration: {duration}}}
  - {{id: done, type: core.Log, message: done}}
"""


async def test_start_and_stop_are_safe_twice(fresh_database: str) -> None:
    async with Store(fresh_database):  # migrations
        pass
    host = ExecutionHost(fresh_database, "host-twice")
    await host.start()
    await host.start()
    assert host.running and host.service.running and host.store.running
    await host.stop()
    await host.stop()
    assert not host.service.running and not host.store.running


async def test_a_failed_start_leaves_nothing_open_and_stop_is_safe_after_it(
    fresh_database: str,
) -> None:
    missing = fresh_database.rsplit("/", 1)[0] + "/kestrel_no_such_database"
    host = ExecutionHost(missing, "host-fails")
    with pytest.raises((StoreError, OSError)):
        await host.start()
    assert not host.running and not host.service.running and not host.store.running
    await host.stop()
    await host.shutdown(1.0)
    assert not host.store.running


async def test_shutdown_lets_short_executions_end_and_cancels_long_ones(
    fresh_database: str,
) -> None:
    async with Store(fresh_database) as store:
        flows = []
        for flow_id, duration in (("short", "PT0.3S"), ("long", "PT60S")):
            source = NAP_FLOW.format(id=flow_id, duration=duration)
            saved = await store.save_flow("tests.host", flow_id, source)
            flow = parse_flow(source)
            flow.revision = saved.flow.revision
            flows.append(flow)
        host = ExecutionHost(fresh_database, "host-drains")
        await host.start()
        short = await host.service.create(flows[0])
        long = await host.service.create(flows[1])
        await host.shutdown(2.0)
        assert not host.store.running  # closed although one execution was still running
        ended = await store.get_execution(short.execution.id)
        left = await store.get_execution(long.execution.id)
    assert ended is not None and ended.state is State.SUCCESS
    # Cancelled, not killed: its lease lapses and another owner resumes it.
    assert left is not None and left.state is State.RUNNING
