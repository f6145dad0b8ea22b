"""The acceptance scenarios every durable source must pass, written once.

A source's test module supplies how to publish event ``i`` (its payload carries ``i``)
and how to read ``i`` back from an execution's trigger variables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.polling import eventually

from .harness import Deployment, assert_exactly_once
from .proxy import TcpProxy

Publish = Callable[[range], Awaitable[None]]
KeyOf = Callable[[Any], int]

N = 1000


async def thousand_events(dep: Deployment, publish: Publish, key: KeyOf) -> list[Any]:
    """1,000 events published → exactly 1,000 executions, one per event."""
    await dep.wait_running()
    await publish(range(N))
    await dep.wait_for_count(N)
    await dep.wait_all_ended()
    found = await dep.executions()
    assert_exactly_once(found, set(range(N)), key)
    return found


async def paced(publish: Publish, ids: range, chunk: int = 50, pause: float = 0.05) -> None:
    """Publish in chunks with pauses, so a disturbance lands mid-stream."""
    for start in range(ids.start, ids.stop, chunk):
        await publish(range(start, min(start + chunk, ids.stop)))
        await asyncio.sleep(pause)


async def host_killed_mid_stream(dep: Deployment, publish: Publish, key: KeyOf) -> None:
    """Kill the listener host while events flow: still exactly 1,000, none lost."""
    await dep.wait_running()
    writer = asyncio.create_task(paced(publish, range(N), chunk=25, pause=0.1))
    await dep.wait_for_count(N // 4)
    before = await dep.host.ready.remote()
    assert not writer.done(), "the kill must land while events still flow"
    await dep.kill_host()
    await writer  # events keep coming while the host is down: they arrive when it is back
    await dep.wait_for_count(N)
    await dep.wait_all_ended()
    assert await dep.host.ready.remote() != before
    assert_exactly_once(await dep.executions(), set(range(N)), key)


async def connection_cut_mid_stream(
    dep: Deployment, proxy: TcpProxy, publish: Publish, key: KeyOf, outage_s: float = 1.5
) -> None:
    """Drop the listener's broker connection mid-stream and restore it: still exactly 1,000."""
    await dep.wait_running()
    await paced(publish, range(0, N // 2))
    await dep.wait_for_count(N // 4)
    proxy.cut()
    await asyncio.sleep(outage_s)  # the outage itself, not a synchronisation
    proxy.restore()
    await paced(publish, range(N // 2, N))
    await dep.wait_for_count(N)
    await dep.wait_all_ended()
    assert_exactly_once(await dep.executions(), set(range(N)), key)


async def poison_is_dead_lettered(
    dep: Deployment, publish_poison: Callable[[], Awaitable[None]], publish: Publish, key: KeyOf
) -> None:
    """A poison message lands in dead letters with its reason; the events after it run."""
    await dep.wait_running()
    await publish(range(0, 5))
    await publish_poison()
    await publish(range(5, 10))
    await dep.wait_for_count(10)

    async def dead_letters() -> list[Any]:
        return list(await dep.store.list_dead_letters(flow_id=dep.flow_id))

    (letter,) = await eventually(dead_letters, 30, what="a dead letter", interval=0.05)
    assert letter.reason and letter.payload
    assert_exactly_once(await dep.executions(), set(range(10)), key)


async def redeploy_mid_stream(
    dep: Deployment, edited_source: str, publish: Publish, key: KeyOf
) -> None:
    """Editing the flow's trigger redeploys it without losing or duplicating events."""
    await dep.wait_running()
    writer = asyncio.create_task(paced(publish, range(N // 2), chunk=25, pause=0.2))
    await dep.wait_for_count(N // 16)
    saved = await dep.store.save_flow(dep.namespace, dep.flow_id, edited_source)
    assert saved.changed
    await dep.host.deploy.remote(dep.namespace, dep.flow_id, saved.flow.revision)
    assert not writer.done(), "events must still be flowing during the redeploy"
    await writer
    await dep.wait_for_count(N // 2)
    await dep.wait_all_ended()
    found = await dep.executions()
    assert_exactly_once(found, set(range(N // 2)), key)
    revisions = {e.flow_revision for e in found}
    assert revisions == {saved.flow.revision - 1, saved.flow.revision}, (
        revisions,
        saved.flow.revision,
    )
