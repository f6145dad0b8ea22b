"""Namespace files through the CLI and the flows-folder sync, FILE inputs through
``kestrel run -i f=@path``, and purging old executions with their files."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import pytest

from actors import StorageConfig, open_storage
from flows import execution_prefix, namespace_file_uri
from gateway._sync import FlowFolderSync
from gateway.cli import main
from tests.storage.conftest import FilesServer, deploy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _cli(*args: str) -> tuple[int, str]:
    def call() -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            code = main(list(args))
        return code, out.getvalue()

    return await asyncio.to_thread(call)


async def test_namespace_files_cli(
    files_server: FilesServer, namespace: str, tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.txt").write_text("BB")
    server = ("--server", files_server.url)
    code, out = await _cli("files", "upload", namespace, str(folder), "--path", "/lib", *server)
    assert code == 0, out
    code, out = await _cli("files", "list", namespace, "--path", "/lib", *server)
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["a.txt", "File"],
        ["sub", "Directory"],
    ]
    target = tmp_path / "b-copy.txt"
    code, _ = await _cli(
        "files", "download", namespace, "/lib/sub/b.txt", "-o", str(target), *server
    )
    assert code == 0 and target.read_text() == "BB"
    code, _ = await _cli("files", "delete", namespace, "/lib/sub", *server)
    assert code == 0
    assert not await files_server.storage.exists(namespace_file_uri(namespace, "lib/sub/b.txt"))
    assert await files_server.storage.exists(namespace_file_uri(namespace, "lib/a.txt"))


async def test_flows_folder_sync_publishes_files_folders(
    files_server: FilesServer, namespace: str, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    files = flows / namespace / "_files"
    (files / "conf").mkdir(parents=True)
    (files / "conf" / "settings.yaml").write_text("not: a flow\n")
    (files / "data.csv").write_text("x\n1\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("server secret")
    os.symlink(secret, files / "link.txt")
    sync = FlowFolderSync(files_server.runtime, flows)
    assert await sync.scan() == 2
    storage = files_server.storage
    assert await storage.read_bytes(namespace_file_uri(namespace, "data.csv")) == b"x\n1\n"
    assert await storage.exists(namespace_file_uri(namespace, "conf/settings.yaml"))
    assert not await storage.exists(namespace_file_uri(namespace, "link.txt"))
    (files / "data.csv").unlink()
    assert await sync.scan() == 1
    assert not await storage.exists(namespace_file_uri(namespace, "data.csv"))


async def test_purge_deletes_rows_logs_and_files(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str
) -> None:
    await deploy(
        api,
        f"id: keep\nnamespace: {namespace}\ninputs:\n  - {{id: f, type: FILE}}\n"
        "tasks:\n  - {id: hi, type: core.Log, message: hi}\n",
    )
    started = await api.post(
        f"/api/v1/executions/{namespace}/keep",
        files={"f": ("in.txt", b"payload")},
        params={"wait": "true"},
    )
    execution = started.json()
    eid = execution["id"]
    prefix = execution_prefix(namespace, "keep", eid)
    assert len(await files_server.storage.list(prefix)) == 1
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    code, out = await _cli(
        "purge", "--before", past, "--namespace", namespace, "--server", files_server.url
    )
    assert code == 0 and "purged 0 execution(s)" in out
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    code, out = await _cli(
        "purge", "--before", future, "--namespace", namespace, "--server", files_server.url
    )
    assert code == 0 and "purged 1 execution(s) and 1 file(s)" in out, out
    assert (await api.get(f"/api/v1/executions/{eid}")).status_code == 404
    logs = await api.get(f"/api/v1/logs/{eid}")
    assert logs.status_code == 404 or logs.json() == []
    assert await files_server.storage.list(prefix) == []


async def test_kestrel_run_with_a_file_input(
    fresh_database: str, tmp_path: Path, storage_config: StorageConfig
) -> None:
    data = tmp_path / "numbers.txt"
    data.write_text("1\n2\n3\n")
    flow = tmp_path / "count.yaml"
    flow.write_text(
        "id: count\nnamespace: tests.cli.files\ninputs:\n  - {id: f, type: FILE}\n"
        'tasks:\n  - {id: n, type: core.Return, value: "{{ read(inputs.f) | trim }}"}\n'
    )
    env = {**os.environ, "KESTREL_STORAGE": storage_config.url}
    if not storage_config.is_local:
        options = storage_config.options
        env.update(
            AWS_ENDPOINT_URL=options["endpoint"],
            AWS_ACCESS_KEY_ID=options["access_key_id"],
            AWS_SECRET_ACCESS_KEY=options["secret_access_key"],
            AWS_REGION=options["region"],
        )
    argv = [sys.executable, "-m", "gateway.cli", "run", str(flow), "--db", fresh_database]
    result = await asyncio.to_thread(
        subprocess.run,
        [*argv, "-i", f"f=@{data}", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["taskRuns"][0]["outputs"] == {"value": "1\n2\n3"}
    prefix = execution_prefix("tests.cli.files", "count", out["id"])
    stored = await open_storage(storage_config).list(prefix)
    assert [f.uri[len(prefix) :] for f in stored] == ["inputs/f/numbers.txt"]
    assert await open_storage(storage_config).read_bytes(stored[0].uri) == b"1\n2\n3\n"


async def test_execution_start_uploads_at_path_inputs(
    api: httpx.AsyncClient, files_server: FilesServer, namespace: str, tmp_path: Path
) -> None:
    await deploy(
        api,
        f"id: upload\nnamespace: {namespace}\ninputs:\n  - {{id: report, type: FILE}}\n"
        "  - {id: note, type: STRING}\n"
        'tasks:\n  - {id: echo, type: core.Return, value: "{{ note }}: {{ read(inputs.report) }}"}\n'.replace(
            "{{ note }}", "{{ inputs.note }}"
        ),
    )
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\n1,2\n")
    code, out = await _cli(
        "execution",
        "start",
        namespace,
        "upload",
        "-i",
        f"report=@{report}",
        "-i",
        "note=hi",
        "--wait",
        "--json",
        "--server",
        files_server.url,
    )
    assert code == 0, out
    execution = json.loads(out)
    uri = execution["inputs"]["report"]
    assert uri.endswith(f"/executions/{execution['id']}/inputs/report/report.csv")
    assert await files_server.storage.read_bytes(uri) == b"a,b\n1,2\n"
    outputs = {r["taskId"]: r["outputs"] for r in execution["taskRunList"]}
    assert outputs["echo"] == {"value": "hi: a,b\n1,2\n"}
    code, _ = await _cli(
        "execution",
        "start",
        namespace,
        "upload",
        "-i",
        f"report=@{tmp_path / 'missing.csv'}",
        "-i",
        "note=x",
        "--server",
        files_server.url,
    )
    assert code == 1
