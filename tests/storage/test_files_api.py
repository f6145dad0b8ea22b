"""Files through a real server, on both backends: FILE inputs, task files, read(),
downloads and previews, namespace files."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from flows import storage_key
from tests.polling import eventually
from tests.storage.conftest import MAX_FILE_BYTES, FilesServer, deploy

pytestmark = pytest.mark.integration

CSV = b"name,qty\nbolt,3\nnut,5\n"


def _files_flow(namespace: str) -> str:
    return f"""\
id: files
namespace: {namespace}
inputs:
  - {{id: report, type: FILE}}
tasks:
  - id: transform
    type: scripts.Python
    inputFiles:
      data.csv: "{{{{ inputs.report }}}}"
      note.txt: "hello from inputFiles"
    outputFiles: ["out/*.csv", "*.txt"]
    script: |
      import csv
      rows = list(csv.DictReader(open("data.csv")))
      import os
      os.makedirs("out", exist_ok=True)
      with open("out/doubled.csv", "w") as f:
          f.write("name,qty\\n")
          for row in rows:
              f.write(f"{{row['name']}},{{int(row['qty']) * 2}}\\n")
      Kestrel.outputs({{"rows": len(rows), "note": open("note.txt").read()}})
  - id: shell
    type: scripts.Shell
    inputFiles:
      in.csv: "{{{{ outputs.transform.outputFiles['out/doubled.csv'] }}}}"
    outputFiles: ["lines.txt"]
    commands:
      - wc -l < in.csv | tr -d ' ' > lines.txt
  - id: show
    type: core.Log
    message: "{{{{ read(outputs.shell.outputFiles['lines.txt']) | trim }}}} lines, {{{{ fileSize(outputs.transform.outputFiles['out/doubled.csv']) }}}} bytes, {{{{ fileExists(inputs.report) }}}}"
outputs:
  - id: result
    type: STRING
    value: "{{{{ outputs.transform.outputFiles['out/doubled.csv'] }}}}"
"""


async def _run_with_upload(api: httpx.AsyncClient, namespace: str) -> dict[str, object]:
    response = await api.post(
        f"/api/v1/executions/{namespace}/files",
        files={"report": ("report.csv", CSV, "text/csv")},
        params={"wait": "true"},
    )
    assert response.status_code == 200, response.text
    execution: dict[str, object] = response.json()
    return execution


async def test_file_input_scripts_read_and_download(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str
) -> None:
    await deploy(api, _files_flow(namespace))
    execution = await _run_with_upload(api, namespace)
    assert execution["state"]["current"] == "SUCCESS", execution  # type: ignore[index]
    eid = execution["id"]
    ns_path = namespace.replace(".", "/")
    report = execution["inputs"]["report"]  # type: ignore[index]
    assert report == f"kestra:///{ns_path}/files/executions/{eid}/inputs/report/report.csv"
    assert await files_server.storage.read_bytes(report) == CSV

    runs = {r["taskId"]: r for r in execution["taskRunList"]}  # type: ignore[attr-defined]
    transform = runs["transform"]["outputs"]
    assert transform["vars"] == {"rows": 2, "note": "hello from inputFiles"}
    assert set(transform["outputFiles"]) == {"out/doubled.csv", "note.txt"}
    doubled = transform["outputFiles"]["out/doubled.csv"]
    assert doubled.startswith(f"kestra:///{ns_path}/files/executions/{eid}/tasks/transform/")
    assert await files_server.storage.read_bytes(doubled) == b"name,qty\nbolt,6\nnut,10\n"
    assert execution["outputs"] == {"result": doubled}

    logs = await api.get(f"/api/v1/logs/{eid}")
    messages = [line["message"] for line in logs.json()]
    assert "3 lines, 23 bytes, true" in messages, messages

    download = await api.get(f"/api/v1/executions/{eid}/file", params={"path": doubled})
    assert download.status_code == 200
    assert download.content == b"name,qty\nbolt,6\nnut,10\n"
    assert 'filename="doubled.csv"' in download.headers["content-disposition"]

    metas = await api.get(f"/api/v1/executions/{eid}/file/metas", params={"path": doubled})
    assert metas.json() == {"size": 23}

    preview = await api.get(f"/api/v1/executions/{eid}/file/preview", params={"path": doubled})
    assert preview.status_code == 200, preview.text
    assert preview.json()["content"] == [["name", "qty"], ["bolt", "6"], ["nut", "10"]]


async def test_downloads_are_limited_to_the_execution(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str
) -> None:
    await deploy(api, _files_flow(namespace))
    first = await _run_with_upload(api, namespace)
    second = await _run_with_upload(api, namespace)
    theirs = first["inputs"]["report"]  # type: ignore[index]
    refused = await api.get(f"/api/v1/executions/{second['id']}/file", params={"path": theirs})
    assert refused.status_code == 403, refused.text
    assert "is not a file of execution" in refused.json()["message"]
    prefix = theirs.rsplit("/executions/", 1)[0] + f"/executions/{second['id']}/"
    for bad in (
        prefix + "../" + f"{first['id']}/inputs/report/report.csv",
        prefix + "%2e%2e/%2e%2e/x",
        prefix + "inputs%2F..%2F..%2Fx",
        "/etc/passwd",
        "file:///etc/passwd",
    ):
        answer = await api.get(f"/api/v1/executions/{second['id']}/file", params={"path": bad})
        assert answer.status_code in (400, 403), (bad, answer.text)
        assert "Traceback" not in answer.text
    missing = await api.get(
        f"/api/v1/executions/{second['id']}/file", params={"path": prefix + "nothing.txt"}
    )
    assert missing.status_code == 404


async def test_an_upload_over_the_limit_is_413_and_nothing_runs(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, _files_flow(namespace))
    big = b"x" * (MAX_FILE_BYTES + 1)
    response = await api.post(
        f"/api/v1/executions/{namespace}/files", files={"report": ("big.bin", big)}
    )
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["message"]
    found = await api.get("/api/v1/executions/search", params={"namespace": namespace})
    assert found.json()["total"] == 0


def _nsfiles_flow(namespace: str) -> str:
    return f"""\
id: nsfiles
namespace: {namespace}
tasks:
  - id: use
    type: scripts.Shell
    namespaceFiles:
      enabled: true
      exclude: ["skip/*"]
    commands:
      - cat lib/greeting.txt
      - test ! -e skip/ignored.txt
  - id: reads
    type: core.Log
    message: "{{{{ read('lib/greeting.txt') }}}}"
"""


async def test_namespace_files_api_and_namespace_files_in_a_task(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str
) -> None:
    base = f"/api/v1/namespaces/{namespace}/files"
    up = await api.post(
        base,
        params={"path": "/lib/greeting.txt"},
        files={"fileContent": ("greeting.txt", b"hi from the namespace")},
    )
    assert up.status_code == 201, up.text
    raw = await api.post(base, params={"path": "skip/ignored.txt"}, content=b"skip me")
    assert raw.status_code == 201, raw.text

    root = await api.get(f"{base}/directory", params={"path": "/"})
    assert [(e["fileName"], e["type"]) for e in root.json()] == [
        ("lib", "Directory"),
        ("skip", "Directory"),
    ]
    lib = await api.get(f"{base}/directory", params={"path": "/lib"})
    assert [(e["fileName"], e["size"]) for e in lib.json()] == [("greeting.txt", 21)]
    got = await api.get(base, params={"path": "/lib/greeting.txt"})
    assert got.status_code == 200 and got.content == b"hi from the namespace"

    await deploy(api, _nsfiles_flow(namespace))
    run = await api.post(f"/api/v1/executions/{namespace}/nsfiles", params={"wait": "true"})
    execution = run.json()
    assert execution["state"]["current"] == "SUCCESS", execution
    logs = (await api.get(f"/api/v1/logs/{execution['id']}")).json()
    messages = [line["message"] for line in logs]
    assert messages.count("hi from the namespace") == 2, messages

    for bad in ("../escape.txt", "a/%2e%2e/%2e%2e/b", "lib/..%2F..%2Fx"):
        answer = await api.post(base, params={"path": bad}, content=b"x")
        assert answer.status_code == 400, (bad, answer.text)
    gone = await api.delete(base, params={"path": "/skip"})
    assert gone.status_code == 204
    assert not await files_server.storage.exists(
        f"kestra:///{namespace.replace('.', '/')}/_files/skip/ignored.txt"
    )
    again = await api.delete(base, params={"path": "/skip"})
    assert again.status_code == 404
    assert storage_key(f"kestra:///{namespace.replace('.', '/')}/_files/lib/greeting.txt")


def _big_flow(namespace: str) -> str:
    return f"""\
id: big
namespace: {namespace}
tasks:
  - id: make
    type: scripts.Python
    script: |
      Kestrel.outputs({{"data": "x" * 300000, "small": 7}})
  - id: use
    type: core.Return
    value: "{{{{ outputs.make.vars.data | length }}}} {{{{ outputs.make.vars.small }}}}"
"""


async def test_large_outputs_go_to_storage_transparently(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str
) -> None:
    await deploy(api, _big_flow(namespace))
    run = await api.post(f"/api/v1/executions/{namespace}/big", params={"wait": "true"})
    execution = run.json()
    assert execution["state"]["current"] == "SUCCESS", execution
    runs = {r["taskId"]: r for r in execution["taskRunList"]}
    recorded = runs["make"]["outputs"]
    assert set(recorded) == {"kestrelStoredOutputs", "size"}, recorded
    assert recorded["size"] > 300_000
    stored = await files_server.storage.read_bytes(recorded["kestrelStoredOutputs"])
    assert b'"small":7' in stored
    assert runs["use"]["outputs"] == {"value": "300000 7"}

    # A replay from `use` rebuilds `make`'s outputs from the store: read back from storage.
    replay = await api.post(
        f"/api/v1/executions/{execution['id']}/replay", params={"taskRunId": runs["use"]["id"]}
    )
    assert replay.status_code == 200, replay.text
    replay_id = replay.json()["id"]

    async def ended() -> dict[str, object] | None:
        body: dict[str, object] = (await api.get(f"/api/v1/executions/{replay_id}")).json()
        done = body["state"]["current"] in ("SUCCESS", "FAILED")  # type: ignore[index]
        return body if done else None

    replayed = await eventually(ended, within=60, what="the replay ended")
    assert replayed["state"]["current"] == "SUCCESS", replayed
    again = {r["taskId"]: r for r in replayed["taskRunList"]}
    assert again["use"]["outputs"] == {"value": "300000 7"}


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_csv_and_foreach_item_examples_run(
    api: httpx.AsyncClient, files_server: FilesServer
) -> None:
    for name in ("csv-transform", "foreach-item", "foreach-item-batch"):
        await deploy(api, (EXAMPLES / f"{name}.yaml").read_text())
    ns = "kestrel.examples.files"
    run = await api.post(
        f"/api/v1/executions/{ns}/csv-transform",
        files={"orders": ("orders.csv", (EXAMPLES / "data" / "orders.csv").read_bytes())},
        params={"wait": "true"},
    )
    execution = run.json()
    assert execution["state"]["current"] == "SUCCESS", execution
    totals = execution["outputs"]["totals"]
    got = await api.get(f"/api/v1/executions/{execution['id']}/file", params={"path": totals})
    assert got.text.splitlines() == [
        "customer,total",
        "ada,19.75",
        "grace,49.90",
        "linus,3.10",
    ]

    events = "".join(json.dumps({"n": i}) + "\n" for i in range(2_500)).encode()
    run = await api.post(
        f"/api/v1/executions/{ns}/foreach-item",
        files={"events": ("events.jsonl", events)},
        params={"wait": "true"},
    )
    execution = run.json()
    assert execution["state"]["current"] == "SUCCESS", execution
    each = {r["taskId"]: r for r in execution["taskRunList"]}["batches"]["outputs"]
    assert each["numberOfBatches"] == 3
    merged = await files_server.storage.read_bytes(each["subflowOutputs"])
    lines = [json.loads(line)["outputs"]["lines"] for line in merged.decode().splitlines()]
    assert lines == [1000, 1000, 500]


async def test_chunked_uploads_without_a_length_are_cut_at_the_limit(
    api: httpx.AsyncClient, namespace: str
) -> None:
    """No Content-Length: the body is counted as it comes and refused past the limit."""
    await deploy(api, _files_flow(namespace))
    boundary = "kestrelboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="report"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()

    async def body():  # type: ignore[no-untyped-def]
        yield head
        for _ in range(MAX_FILE_BYTES // 65536 + 40):
            yield b"x" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await api.post(
        f"/api/v1/executions/{namespace}/files",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text
    found = await api.get("/api/v1/executions/search", params={"namespace": namespace})
    assert found.json()["total"] == 0

    raw = await api.post(
        f"/api/v1/namespaces/{namespace}/files",
        params={"path": "big.bin"},
        content=body(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert raw.status_code == 413, raw.text
    listing = await api.get(f"/api/v1/namespaces/{namespace}/files/directory")
    assert listing.json() == []


async def test_stored_uris_from_another_namespace_are_refused(
    api: httpx.AsyncClient, namespace: str
) -> None:
    """An API caller cannot hand a flow another namespace's file, nor read one with read()."""
    await deploy(api, _files_flow(namespace))
    other = "kestra:///someone/else/flow/executions/x/inputs/report/secret.csv"
    response = await api.post(f"/api/v1/executions/{namespace}/files", json={"report": other})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "report"
    await deploy(
        api,
        f"id: peek\nnamespace: {namespace}\n"
        f"tasks:\n  - {{id: r, type: core.Return, value: \"{{{{ read('{other}') }}}}\"}}\n",
    )
    run = await api.post(f"/api/v1/executions/{namespace}/peek", params={"wait": "true"})
    assert run.json()["state"]["current"] == "FAILED"
    logs = (await api.get(f"/api/v1/logs/{run.json()['id']}")).json()
    assert any("is not a file of namespace" in line["message"] for line in logs), logs
