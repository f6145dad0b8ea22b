"""Kestrel on a real multi-node Ray cluster (Ray's own `ray.cluster_utils.Cluster`).

One cluster for the module, in its own process (`tests.scale._cluster`): a head raylet
with 1 CPU and a worker raylet with 1 CPU and the custom resource ``gpu_node``. A real
``kestrel server`` joins it with ``--ray-address``; this test process never joins it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.scale._processes import Gateway, MultiNodeCluster, multinode_cluster, start_gateway

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
def gateway(
    cluster: MultiNodeCluster,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_dsn: str,
) -> Iterator[Gateway]:
    from tests.servers import create_database, drop_database, new_database_name

    name = new_database_name()
    db = create_database(postgres_dsn, name)
    folder = tmp_path_factory.mktemp("multinode-flows")
    (folder / "pinned.yaml").write_text(PINNED_FLOW, encoding="utf-8")
    running = start_gateway(
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
        drop_database(postgres_dsn, name)


def test_task_with_custom_resource_runs_on_the_node_that_has_it(
    cluster: MultiNodeCluster, gateway: Gateway
) -> None:
    with gateway.client() as client:
        for _ in range(3):  # from whichever execution actor: always that node
            answer = client.post(f"/api/v1/executions/{NAMESPACE}/pinned", params={"wait": "true"})
            assert answer.status_code == 200, answer.text
            execution = answer.json()
            assert execution["state"]["current"] == "SUCCESS", execution
            run = next(r for r in execution["taskRunList"] if r["taskId"] == "where")
            assert run["outputs"]["vars"]["node"] == cluster.gpu_node
            assert run["attempts"][-1]["node"] == cluster.gpu_node


def test_listener_hosts_and_execution_actors_spread_over_nodes(
    cluster: MultiNodeCluster, gateway: Gateway
) -> None:
    actors = [a for a in cluster.actors() if a["state"] == "ALIVE"]

    def nodes_of(kind: Callable[[str], bool]) -> set[str]:
        return {a["node"] for a in actors if kind(a["name"])}

    both = {cluster.head, cluster.gpu_node}
    assert nodes_of(lambda name: "-host-" in name) == both, actors
    assert nodes_of(lambda name: "-exec-" in name) == both, actors
