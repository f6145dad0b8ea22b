"""Kestrel on a real multi-node Ray cluster (Ray's own `ray.cluster_utils.Cluster`).

One cluster for the module, in its own process (`tests.servers.multinode_cluster`): a head raylet
with 1 CPU and a worker raylet with 1 CPU and the custom resource ``gpu_node``. A real
``kestrel server`` joins it with ``--ray-address``; this test process never joins it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from actors import host_index
from tests.polling import eventually_sync
from tests.scale._durable_sources import LISTENERS, YAML, DurableSources, RemovalClock
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
    cluster: MultiNodeCluster,
    gateway: KestrelServer,
    database: str,
    tmp_path: Path,
    nats_url: str,
    kafka_bootstrap: str,
    kafka_group_options: dict[str, int],
    mqtt_url: str,
) -> None:
    """Runs last: it removes the worker node. Two executions, one per pool actor (one
    actor on each node), each with an attempt running on the gpu node, which is removed
    without grace; a new gpu node joins (as an autoscaler replaces a lost node).

    - the attempt owned by the head's actor ends FAILED with the retriable ``WorkerLost``
      error; its retry policy runs attempt 2, which ends SUCCESS on the new node;
    - the execution whose owner died with the node is taken over by another actor once
      its lease expires: the attempt left running ends FAILED as ``interrupted`` and is
      re-run there (SUCCESS on the new node);
    - the pool refills: both execution actors and their warm workers alive again;
    - a flow whose listener host was on the node, with a JetStream (``parallelism: 2``:
      one listener on each node), a Kafka, an MQTT (QoS 1) and a Postgres cursor trigger,
      fed 10 events before the removal, 10 while the node goes (some in flight) and 10
      after: every trigger RUNNING again on a live node (after it was seen down) and
      exactly one execution per event. The times from the removal are printed (the bound
      is in docs/architecture.md, "Node-removal bound").
    """
    marks = tmp_path / "marks"
    marks.mkdir()
    host, flow_id = _host_on_the_gpu_node(cluster)
    sources = DurableSources(
        NAMESPACE, flow_id, nats_url, kafka_bootstrap, kafka_group_options, mqtt_url, database
    )
    sources.create()
    with gateway.client() as client:
        answer = client.post("/api/v1/flows", content=sources.flow(), headers=YAML)
        assert answer.status_code == 201, answer.text
        eventually_sync(
            lambda: sources.running(client) == set(LISTENERS), within=60, what="triggers running"
        )
        sources.publish(range(0, 10))
        try:
            eventually_sync(lambda: len(sources.done(client, 10)) == 4, within=90, what="10 each")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {sources.progress(client)}") from None
        assert sources.done(client, 10) == {t: list(range(10)) for t in LISTENERS}
        deployed = client.post("/api/v1/flows", content=HELD_FLOW, headers=YAML)
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
        assert node_of[host] == cluster.gpu_node, node_of

        with ThreadPoolExecutor(1) as publisher:  # 10 more, published while the node goes
            in_flight = publisher.submit(sources.publish, range(10, 20))
            lost_node = cluster.remove_gpu_node()
            clock = RemovalClock(sources, gateway.base_url, 30, within=180)
            clock.start()
            removed_at = time.monotonic()
            in_flight.result()
        made = {t: len(e) for t, e in sources.executions(client).items()}
        sources.publish(range(20, 30))
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
        clock.join()
        assert clock.error is None, clock.error
        assert clock.numbers == {t: list(range(30)) for t in LISTENERS}  # none lost, none twice
        assert lost_node not in {a["node"] for a in cluster.actors() if a["state"] == "ALIVE"}
        where = "the head" if _node_of(cluster, host) == cluster.head else "the new node"
        print(
            f"gpu node removed under load: both executions SUCCESS on the new node "
            f"{ended_s:.1f}s after the removal (execution lease 10 s); its listener host "
            f"restarted on {where}; executions made of the first 20 events when the node "
            f"was gone: {made}; from the removal: {clock.report()}"
        )


def _host_on_the_gpu_node(cluster: MultiNodeCluster) -> tuple[str, str]:
    """The listener host on the gpu node, and a flow id whose triggers it runs (a flow's
    triggers go to host `host_index`; a second slot to the next host)."""
    on_gpu = [a["name"] for a in cluster.actors() if "-host-" in a["name"]]
    on_gpu = [n for n in on_gpu if _node_of(cluster, n) == cluster.gpu_node]
    assert len(on_gpu) == 1, cluster.actors()  # host i on live node i mod 2
    index = int(on_gpu[0].rsplit("-", 1)[1])
    flow_id = next(
        f"sources-{k}" for k in range(100) if host_index(NAMESPACE, f"sources-{k}", 2) == index
    )
    return on_gpu[0], flow_id


def _node_of(cluster: MultiNodeCluster, name: str) -> str | None:
    return next((a["node"] for a in cluster.actors() if a["name"] == name), None)


async def _owner_actors(db: str, execution_ids: list[str]) -> list[str]:
    """The pool actor holding each execution's lease (owner ``{actor name}-{incarnation}``)."""
    from actors import Store

    async with Store(db, migrate=False) as store:
        leases = [await store.get_lease("execution", i) for i in execution_ids]
    return [lease.owner.rsplit("-", 1)[0] if lease else "" for lease in leases]
