"""Kestrel on a real multi-node Ray cluster (Ray's own `ray.cluster_utils.Cluster`).

One cluster for the module, in its own process (`tests.servers.multinode_cluster`): a head raylet
with 1 CPU and a worker raylet with 1 CPU and the custom resource ``gpu_node``. A real
``kestrel server`` joins it with ``--ray-address``; this test process never joins it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors import host_index
from tests.polling import eventually_sync
from tests.servers import KestrelServer, MultiNodeCluster, multinode_cluster, start_kestrel_server

pytestmark = pytest.mark.integration

NAMESPACE = "scale.multinode"

PINNED_FLOW = f"""\
id: pinned
namespace: {NAMESPACE}
tasks:
  - id: where
    type: scripts.Python
    resources:
      custom: {{gpu_node: 1}}
    script: |
      Kestrel.outputs({{"node": taskrun["nodeId"]}})
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiNodeCluster]:
    log = tmp_path_factory.mktemp("multinode") / "cluster.log"
    with multinode_cluster(log) as running:
        yield running


@pytest.fixture(scope="module")
def database(postgres_dsn: str) -> Iterator[str]:
    from tests.servers import create_database, drop_database, new_database_name

    name = new_database_name()
    yield create_database(postgres_dsn, name)
    drop_database(postgres_dsn, name)


@pytest.fixture(scope="module")
def gateway(
    cluster: MultiNodeCluster, tmp_path_factory: pytest.TempPathFactory, database: str
) -> Iterator[KestrelServer]:
    db = database
    folder = tmp_path_factory.mktemp("multinode-flows")
    (folder / "pinned.yaml").write_text(PINNED_FLOW, encoding="utf-8")
    running = start_kestrel_server(
        db,
        folder,
        folder / "server.log",
        ray_address=cluster.address,
        KESTREL_LISTENER_HOSTS="2",
        KESTREL_EXECUTION_ACTORS="2",
    )
    try:
        yield running
    finally:
        running.stop()


def test_task_with_custom_resource_runs_on_the_node_that_has_it(
    cluster: MultiNodeCluster, gateway: KestrelServer
) -> None:
    with gateway.client() as client:
        for _ in range(3):  # from whichever execution actor: always that node
            answer = client.post(f"/api/v1/executions/{NAMESPACE}/pinned", params={"wait": "true"})
            assert answer.status_code == 200, answer.text
            execution = answer.json()
            assert execution["state"]["current"] == "SUCCESS", json.dumps(execution)
            run = next(r for r in execution["taskRunList"] if r["taskId"] == "where")
            assert run["outputs"]["vars"]["node"] == cluster.gpu_node
            assert run["attempts"][-1]["node"] == cluster.gpu_node


def test_listener_hosts_and_execution_actors_spread_over_nodes(
    cluster: MultiNodeCluster, gateway: KestrelServer
) -> None:
    actors = [a for a in cluster.actors() if a["state"] == "ALIVE"]
    both = {cluster.head, cluster.gpu_node}
    hosts = {a["node"] for a in actors if "-host-" in a["name"]}
    pool = {a["node"] for a in actors if "-exec-" in a["name"]}
    assert hosts == both, actors  # host i on live node i mod 2
    assert pool == both, actors  # pool actor i on live node i mod 2


HELD_FLOW = f"""\
id: held
namespace: {NAMESPACE}
inputs:
  - {{id: marks, type: STRING}}
tasks:
  - id: work
    type: scripts.Python
    resources:
      num_cpus: 0.5
      custom: {{gpu_node: 0.5}}  # two at a time on the gpu node, nowhere else
    retry: {{type: constant, interval: PT0.5S, maxAttempts: 3}}
    script: |
      import pathlib, time
      marks = pathlib.Path(inputs["marks"])
      name = f"{{execution['id']}}-{{taskrun['attemptsCount']}}"
      (marks / name).write_text(taskrun["nodeId"])
      while not (marks / "release").exists():
          time.sleep(0.05)
      Kestrel.outputs({{"node": taskrun["nodeId"]}})
"""


def test_node_removed_under_load_its_attempts_fail_as_lost_retry_and_the_pool_refills(
    cluster: MultiNodeCluster, gateway: KestrelServer, database: str, tmp_path: Path
) -> None:
    """Two executions, one per pool actor (one actor on each node), each with an attempt
    running on the gpu node, which is removed without grace; a new gpu node joins (as an
    autoscaler replaces a lost node).

    - the attempt owned by the head's actor ends FAILED with the retriable ``WorkerLost``
      error; its retry policy runs attempt 2, which ends SUCCESS on the new node;
    - the execution whose owner died with the node is taken over by another actor once
      its lease expires: the attempt left running ends FAILED as ``interrupted`` and is
      re-run there (SUCCESS on the new node);
    - the pool refills: both execution actors and their warm workers alive again;
    - a Postgres cursor trigger whose listener host was on the node (rows inserted before
      and right after the removal) makes exactly one execution per row.
    """
    marks = tmp_path / "marks"
    marks.mkdir()
    with gateway.client() as client:
        rows_flow, table = _rows_trigger_on_the_gpu_node(cluster, client, database)
        _insert(database, table, range(0, 10))
        deployed = client.post(
            "/api/v1/flows", content=HELD_FLOW, headers={"Content-Type": "application/x-yaml"}
        )
        assert deployed.status_code == 201, deployed.text
        ids = []
        for _ in range(2):  # one after the other: the least-loaded actor takes each
            answer = client.post(f"/api/v1/executions/{NAMESPACE}/held", json={"marks": str(marks)})
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["id"])

        def attempts(execution_id: str) -> list[dict[str, Any]]:
            found = client.get(f"/api/v1/executions/{execution_id}").json()
            runs = [r for r in found["taskRunList"] if r["taskId"] == "work"]
            return list(runs[0]["attempts"]) if runs else []

        def both_running_on_the_gpu_node() -> bool:
            started = all((marks / f"{i}-0").exists() for i in ids)
            recorded = all([a["state"]["current"] for a in attempts(i)] == ["RUNNING"] for i in ids)
            return started and recorded

        eventually_sync(both_running_on_the_gpu_node, within=60, what="two attempts running")
        assert {(marks / f"{i}-0").read_text() for i in ids} == {cluster.gpu_node}
        owners = dict(zip(ids, asyncio.run(_owner_actors(database, ids)), strict=True))
        node_of = {a["name"]: a["node"] for a in cluster.actors() if a["name"]}
        on_head = [i for i in ids if node_of[owners[i]] == cluster.head]
        on_lost = [i for i in ids if node_of[owners[i]] == cluster.gpu_node]
        assert len(on_head) == len(on_lost) == 1, (owners, node_of)

        lost_node = cluster.remove_gpu_node()
        removed_at = time.monotonic()
        _insert(database, table, range(10, 20))
        new_node = cluster.add_gpu_node()
        (marks / "release").write_text("go")

        def ended(execution_id: str) -> dict[str, Any] | None:
            found: dict[str, Any] = client.get(f"/api/v1/executions/{execution_id}").json()
            return found if found["state"]["current"] in ("SUCCESS", "FAILED") else None

        for execution_id in ids:
            execution = eventually_sync(
                lambda e=execution_id: ended(e), within=120, what=f"{execution_id} ended"
            )
            assert execution["state"]["current"] == "SUCCESS", json.dumps(execution)
        ended_s = time.monotonic() - removed_at

        first, second = attempts(on_head[0])
        assert first["state"]["current"] == "FAILED"
        assert first["error"]["type"] == "WorkerLost" and first["error"]["retriable"] is True
        assert second["state"]["current"] == "SUCCESS" and second["node"] == new_node
        *lost, last = attempts(on_lost[0])
        assert [a["state"]["current"] for a in lost] == ["FAILED"] * len(lost)
        # Its owner died first (interrupted), or saw the task fail just before it died
        # itself (WorkerLost, possibly then an interrupted retry): never a hung attempt.
        assert {a["error"]["type"] for a in lost} <= {"WorkerLost", "interrupted"}, lost
        assert last["state"]["current"] == "SUCCESS" and last["node"] == new_node

        def refilled() -> bool:
            named = [a for a in cluster.actors() if a["name"]]
            alive = [a for a in cluster.actors() if a["state"] == "ALIVE"]
            pool = [a for a in alive if "-exec-" in a["name"]]
            workers = [a for a in alive if a["class"] == "TaskWorker"]
            live = {cluster.head, new_node}
            return (
                len(pool) == 2
                and len(workers) >= 2
                and all(a["state"] == "ALIVE" and a["node"] in live for a in named)
            )

        # Execution actors, their warm workers and the listener hosts: alive on live nodes.
        eventually_sync(refilled, within=60, what="the pool and the hosts back")
        try:
            rows = eventually_sync(
                lambda: _rows_done(client, rows_flow, 20), within=90, what="rows"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {_rows_progress(client, rows_flow)}") from None
        assert rows == list(range(20))  # none lost, none twice
        assert lost_node not in {a["node"] for a in cluster.actors() if a["state"] == "ALIVE"}
        print(
            f"gpu node removed under load: both executions SUCCESS on the new node "
            f"{ended_s:.1f}s after the removal (execution lease 10 s)"
        )


def _rows_trigger_on_the_gpu_node(
    cluster: MultiNodeCluster, client: httpx.Client, database: str
) -> tuple[str, str]:
    """Deploy a Postgres cursor trigger whose listener host is the one on the gpu node
    (a flow's triggers go to host `host_index`); its flow id and table."""
    on_gpu = [a["name"] for a in cluster.actors() if "-host-" in a["name"]]
    on_gpu = [n for n in on_gpu if _node_of(cluster, n) == cluster.gpu_node]
    assert len(on_gpu) == 1, cluster.actors()  # host i on live node i mod 2
    index = int(on_gpu[0].rsplit("-", 1)[1])
    flow_id = next(
        f"rows-{k}" for k in range(100) if host_index(NAMESPACE, f"rows-{k}", 2) == index
    )
    table = f"rows_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(database, f"CREATE TABLE {table} (n bigint PRIMARY KEY)"))
    flow = (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n"
        "tasks:\n  - {id: say, type: core.Log, message: hi}\n"
        "triggers:\n  - id: rows\n    type: postgres.RealtimeTrigger\n"
        f'    url: "{database}"\n    table: {table}\n    cursorColumn: n\n'
        "    pollInterval: PT0.2S\n"
    )
    answer = client.post(
        "/api/v1/flows", content=flow, headers={"Content-Type": "application/x-yaml"}
    )
    assert answer.status_code == 201, answer.text

    def running() -> bool:
        found = client.get("/api/v1/triggers").json()["results"]
        return [t["status"] for t in found if t["flowId"] == flow_id] == ["RUNNING"]

    eventually_sync(running, within=30, what="the cursor trigger running")
    return flow_id, table


def _node_of(cluster: MultiNodeCluster, name: str) -> str | None:
    return next((a["node"] for a in cluster.actors() if a["name"] == name), None)


def _insert(database: str, table: str, numbers: range) -> None:
    rows = ", ".join(f"({n})" for n in numbers)
    asyncio.run(_execute(database, f"INSERT INTO {table} (n) VALUES {rows}"))


async def _execute(database: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _rows_done(client: httpx.Client, flow_id: str, count: int) -> list[int] | None:
    page = client.get(
        "/api/v1/executions/search",
        params={"namespace": NAMESPACE, "flowId": flow_id, "size": 1000},
    ).json()["results"]
    assert len(page) <= count, f"{len(page)} executions for {count} rows"
    if len(page) == count and all(e["state"]["current"] == "SUCCESS" for e in page):
        return sorted(int(e["trigger"]["variables"]["data"]["n"]) for e in page)
    return None


def _rows_progress(client: httpx.Client, flow_id: str) -> str:
    """Where the cursor trigger and its executions stand (for a failure message)."""
    page = client.get(
        "/api/v1/executions/search",
        params={"namespace": NAMESPACE, "flowId": flow_id, "size": 1000},
    ).json()["results"]
    states = sorted((e["trigger"]["variables"]["data"]["n"], e["state"]["current"]) for e in page)
    found = client.get("/api/v1/triggers").json()["results"]
    return f"executions {states}; trigger {[t for t in found if t['flowId'] == flow_id]}"


async def _owner_actors(db: str, execution_ids: list[str]) -> list[str]:
    """The pool actor holding each execution's lease (owner ``{actor name}-{incarnation}``)."""
    from actors import Store

    async with Store(db, migrate=False) as store:
        leases = [await store.get_lease("execution", i) for i in execution_ids]
    return [lease.owner.rsplit("-", 1)[0] if lease else "" for lease in leases]


def test_node_removed_mid_stream_its_listener_restarts_elsewhere_exactly_once(
    cluster: MultiNodeCluster, gateway: KestrelServer, nats_url: str
) -> None:
    """Runs last: it removes the worker node. A JetStream trigger with ``parallelism: 2``
    has a listener on each node; the worker node goes away mid-stream, Ray restarts its
    listener host (and pool actor) on the head, and every event makes one execution."""
    import asyncio

    import nats

    stream = f"NODE{uuid.uuid4().hex[:8].upper()}"

    async def publish(numbers: range) -> None:
        client = await nats.connect(nats_url)
        try:
            js = client.jetstream()
            if numbers.start == 0:
                await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
            for n in numbers:
                await js.publish(f"{stream.lower()}.x", json.dumps({"n": n}).encode())
        finally:
            await client.close()

    flow = f"""\
id: streamed
namespace: {NAMESPACE}
tasks:
  - {{id: say, type: core.Log, message: "{{{{ trigger.data.n }}}}"}}
triggers:
  - id: js
    type: nats.RealtimeTrigger
    url: {nats_url}
    subject: "{stream.lower()}.>"
    stream: {stream}
    durableId: kestrel-{stream.lower()}
    deserializer: JSON
    ackWait: PT5S
    parallelism: 2
"""
    with gateway.client() as client:
        asyncio.run(publish(range(0, 0)))  # the stream exists before the listeners
        deployed = client.post(
            "/api/v1/flows", content=flow, headers={"Content-Type": "application/x-yaml"}
        )
        assert deployed.status_code == 201, deployed.text

        def running() -> bool:
            answer = client.get("/api/v1/triggers")
            if answer.status_code != 200:  # 503 while a host restarts after its node died
                return False
            mine = [t["status"] for t in answer.json()["results"] if t.get("flowId") == "streamed"]
            return mine == ["RUNNING", "RUNNING"]

        eventually_sync(running, within=30, what="two listeners running")

        def done(count: int) -> list[int] | None:
            page = client.get(
                "/api/v1/executions/search",
                params={"namespace": NAMESPACE, "flowId": "streamed", "size": 1000},
            ).json()["results"]
            assert len(page) <= count, f"{len(page)} executions for {count} events"
            if len(page) == count and all(e["state"]["current"] == "SUCCESS" for e in page):
                return sorted(e["trigger"]["variables"]["data"]["n"] for e in page)
            return None

        asyncio.run(publish(range(1, 11)))
        eventually_sync(lambda: done(10), within=60, what="10 executions")

        def runtime_actors() -> list[dict[str, Any]]:
            return [a for a in cluster.actors() if "-host-" in a["name"] or "-exec-" in a["name"]]

        # Ray's SPREAD placement is best-effort: which of ours lived on the removed node.
        moved = sorted(a["name"] for a in runtime_actors() if a["node"] == cluster.gpu_node)
        assert cluster.remove_gpu_node() == cluster.gpu_node
        removed_at = time.monotonic()
        asyncio.run(publish(range(11, 21)))
        numbers = eventually_sync(lambda: done(20), within=90, what="20 executions")
        assert numbers == list(range(1, 21))  # none lost, none twice

        def restarted_on_head() -> bool:
            ours = runtime_actors()
            return all(a["state"] == "ALIVE" and a["node"] == cluster.head for a in ours)

        eventually_sync(restarted_on_head, within=60, what="hosts and pool actors on the head")
        eventually_sync(running, within=60, what="both listeners running again")
        print(
            f"node removed: {moved} restarted on the head and both listeners RUNNING "
            f"{time.monotonic() - removed_at:.1f}s after the removal"
        )
