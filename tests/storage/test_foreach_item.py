"""`flow.ForEachItem` on both backends: 100,000 lines, every line processed exactly once."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from flows import namespace_file_uri
from tests.storage.conftest import FilesServer, deploy

pytestmark = pytest.mark.integration

LINES = 100_000
ROWS = 12_500


def _child(namespace: str) -> str:
    return f"""\
id: batch
namespace: {namespace}
inputs:
  - {{id: items, type: FILE}}
tasks:
  - id: count
    type: scripts.Python
    inputFiles:
      batch.txt: "{{{{ inputs.items }}}}"
    script: |
      nums = [int(line) for line in open("batch.txt")]
      Kestrel.outputs({{"first": min(nums), "last": max(nums), "count": len(nums),
                       "sum": sum(nums), "distinct": len(set(nums))}})
outputs:
  - {{id: stats, type: JSON, value: "{{{{ outputs.count.vars }}}}"}}
"""


def _parent(namespace: str, items: str) -> str:
    return f"""\
id: split
namespace: {namespace}
tasks:
  - id: each
    type: flow.ForEachItem
    items: "{items}"
    batch: {{rows: {ROWS}}}
    concurrencyLimit: 3
    namespace: {namespace}
    flowId: batch
    inputs:
      items: "{{{{ taskrun.items }}}}"
  - id: summary
    type: core.Return
    value: "{{{{ outputs.each.numberOfBatches }}}} batches"
"""


async def test_every_line_is_processed_exactly_once(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str
) -> None:
    async def numbers():  # type: ignore[no-untyped-def]
        block = 10_000
        for start in range(0, LINES, block):
            yield "".join(f"{n}\n" for n in range(start, start + block)).encode()

    items = namespace_file_uri(namespace, "numbers.txt")
    await files_server.storage.put(items, numbers())
    await deploy(api, _child(namespace))
    await deploy(api, _parent(namespace, items))
    response = await api.post(
        f"/api/v1/executions/{namespace}/split", params={"wait": "true"}, timeout=300
    )
    execution = response.json()
    assert execution["state"]["current"] == "SUCCESS", execution
    runs = {r["taskId"]: r for r in execution["taskRunList"]}
    outputs = runs["each"]["outputs"]
    assert outputs["numberOfBatches"] == LINES // ROWS
    assert outputs["iterations"] == {"SUCCESS": LINES // ROWS}
    assert runs["summary"]["outputs"] == {"value": f"{LINES // ROWS} batches"}

    merged = await files_server.storage.read_bytes(outputs["subflowOutputs"])
    batches = [json.loads(line) for line in merged.decode().splitlines()]
    assert [b["batch"] for b in batches] == list(range(LINES // ROWS))
    stats = sorted((b["outputs"]["stats"] for b in batches), key=lambda s: s["first"])
    expected_first = 0
    for s in stats:  # contiguous, disjoint ranges that cover every line once
        assert s["first"] == expected_first
        assert s["count"] == s["distinct"] == s["last"] - s["first"] + 1 == ROWS
        expected_first = s["last"] + 1
    assert expected_first == LINES
    assert sum(s["sum"] for s in stats) == LINES * (LINES - 1) // 2

    children = await api.get(
        "/api/v1/executions/search", params={"namespace": namespace, "flowId": "batch"}
    )
    assert children.json()["total"] == LINES // ROWS
    # concurrencyLimit: 3 -> never more than three children alive at one instant.
    events = sorted(
        [(c["state"]["startDate"], 1) for c in children.json()["results"]]
        + [(c["state"]["endDate"], -1) for c in children.json()["results"]],
        key=lambda e: (dt.datetime.fromisoformat(e[0]), e[1]),
    )
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    assert 1 <= peak <= 3
