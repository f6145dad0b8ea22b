"""Runnable tasks in the worker runtime: in process, against real Postgres, and on Ray."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import ray

from actors import TIMEOUT_ERROR, TaskFailure
from actors._invocation import pack, unpack
from actors._store import Store
from actors._worker import (
    TaskInvocation,
    TaskOutcome,
    execute,
    run_invocation,
    run_task,
    shutdown_worker_loop,
    task_worker_class,
)
from flows import REGISTRY, RunnableTask, State
from tests.servers import RayCluster

NAMESPACE = "tests.runtime"
FN = "tests.runtime.fixtures_functions"


@pytest.fixture(scope="module", autouse=True)
def worker_loop() -> Iterator[None]:
    """Stop the process's worker loop (and close what it opened) after this module."""
    yield
    shutdown_worker_loop()


def task(spec: dict[str, Any]) -> RunnableTask:
    model = REGISTRY.resolve(spec["type"], "task").cls.model_validate({"id": "t", **spec})
    assert isinstance(model, RunnableTask)
    return model


def invocation(
    spec: dict[str, Any],
    *,
    timeout_s: float | None = None,
    dsn: str | None = None,
    variables: dict[str, Any] | None = None,
) -> TaskInvocation:
    return TaskInvocation(
        task=task(spec),
        execution_id=uuid.uuid4().hex,
        task_run_id=uuid.uuid4().hex,
        attempt=1,
        namespace=NAMESPACE,
        flow_id="runnables",
        variables=variables or {},
        dsn=dsn,
        timeout_s=timeout_s,
    )


def run(spec: dict[str, Any], **kwargs: Any) -> TaskOutcome:
    return execute(invocation(spec, **kwargs))


def messages(outcome: TaskOutcome, level: str | None = None) -> list[str]:
    return [m for _, lvl, m in outcome.logs if level is None or lvl == level]


def succeeded(outcome: TaskOutcome) -> dict[str, Any]:
    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.error is None
    return outcome.outputs


def failed(outcome: TaskOutcome) -> TaskFailure:
    assert outcome.state is State.FAILED, outcome.outputs
    assert outcome.error is not None
    assert outcome.outputs == {}
    return outcome.error


# ---- the outcome itself -------------------------------------------------------------------


def test_outcome_records_times_and_where_it_ran() -> None:
    outcome = run({"type": "python.Function", "function": f"{FN}:nothing"})
    succeeded(outcome)
    assert outcome.started_at.tzinfo is dt.UTC and outcome.ended_at.tzinfo is dt.UTC
    assert outcome.started_at <= outcome.ended_at
    assert outcome.worker and outcome.node


def test_an_attempt_crosses_as_bytes_even_with_what_only_cloudpickle_pickles() -> None:
    plain = invocation({"type": "python.Function", "function": f"{FN}:nothing"})
    assert unpack(pack(plain)) == plain and unpack(plain) is plain
    local = invocation(
        {"type": "python.Function", "function": f"{FN}:nothing"},
        variables={"f": lambda: 1},  # the C pickler refuses a lambda: cloudpickle takes it
    )
    assert unpack(pack(local)).variables["f"]() == 1
    succeeded(execute(pack(plain)))  # the Ray task's body takes the bytes too


def test_outputs_that_cannot_be_stored_fail_for_good() -> None:
    error = failed(run({"type": "python.Function", "function": f"{FN}:unstorable"}))
    assert "JSON" in error.message and error.retriable is False


# ---- scripts.Python -----------------------------------------------------------------------


def test_script_prints_logs_and_sets_outputs() -> None:
    script = """
import sys
from kestra import Kestra
print("hello", inputs["name"], sep=", ")
print("partial", end="")
print(" line")
print("oops", file=sys.stderr)
logger.warning("careful")
logger.debug("details")
Kestrel.outputs({"total": inputs["n"] * 2})
Kestra.outputs({"env": env["GREETING"], "flow": flow["id"]})
Kestra.counter("rows", 3)
"""
    outcome = run(
        {"type": "scripts.Python", "script": script, "env": {"GREETING": "hi"}},
        variables={"inputs": {"name": "ada", "n": 21}, "flow": {"id": "runnables"}},
    )
    outputs = succeeded(outcome)
    assert outputs == {"exitCode": 0, "vars": {"total": 42, "env": "hi", "flow": "runnables"}}
    assert messages(outcome, "INFO") == ["hello, ada", "partial line"]
    assert messages(outcome, "WARN") == ["oops", "careful"]
    assert "details" in messages(outcome, "DEBUG")
    assert "GREETING" not in os.environ


def test_script_exception_fails_with_its_line_and_logs_the_traceback() -> None:
    script = "x = 1\n\ndef half(v):\n    return v / 0\n\nhalf(x)\n"
    outcome = run({"type": "scripts.Python", "script": script})
    error = failed(outcome)
    assert error.message == "ZeroDivisionError: division by zero (script line 4)"
    assert error.retriable is True
    (trace,) = messages(outcome, "ERROR")
    assert "return v / 0" in trace and "Traceback" in trace
    assert "_tasks_runnable" not in trace  # the runtime's own frames are left out


def test_script_syntax_error_is_not_retriable() -> None:
    error = failed(run({"type": "scripts.Python", "script": "x = 1\ny = (\n"}))
    assert error.retriable is False
    assert "SyntaxError" in error.message and "script line" in error.message


def test_script_exit_codes() -> None:
    succeeded(run({"type": "scripts.Python", "script": "import sys\nsys.exit(0)"}))
    error = failed(run({"type": "scripts.Python", "script": "import sys\n\nsys.exit(3)"}))
    assert error.message == "script exited with code 3 (script line 3)"


def test_script_before_commands_run_first() -> None:
    outcome = run(
        {
            "type": "scripts.Python",
            "beforeCommands": ["echo preparing $STAGE"],
            "env": {"STAGE": "one"},
            "script": "print('running')",
        }
    )
    succeeded(outcome)
    assert messages(outcome, "INFO") == ["preparing one", "running"]
    error = failed(
        run({"type": "scripts.Python", "beforeCommands": ["exit 4"], "script": "print(1)"})
    )
    assert error.message == "beforeCommands exited with code 4"


async def test_concurrent_scripts_keep_their_own_prints() -> None:
    script = "for i in range(200):\n    print(tag, i)\n"
    a, b = (
        invocation({"type": "scripts.Python", "script": script.replace("tag", repr(t))})
        for t in ("a", "b")
    )
    first, second = await asyncio.gather(run_invocation(a), run_invocation(b))
    assert messages(first) == [f"a {i}" for i in range(200)]
    assert messages(second) == [f"b {i}" for i in range(200)]


def test_script_timeout_interrupts_its_thread() -> None:
    spec = {"type": "scripts.Python", "id": "spin", "script": "while True:\n    pass\n"}
    error = failed(run(spec, timeout_s=0.3))
    assert error.type == TIMEOUT_ERROR and error.retriable is True
    for thread in threading.enumerate():
        if thread.name == "kestrel-script-spin":
            thread.join(10)
            assert not thread.is_alive()


# ---- python.Function ----------------------------------------------------------------------


def test_function_dict_value_none_and_async() -> None:
    spec = {"type": "python.Function", "function": f"{FN}:add", "kwargs": {"a": 2, "b": 3}}
    assert succeeded(run(spec)) == {"sum": 5}
    spec = {"type": "python.Function", "function": f"{FN}:echo", "kwargs": {"value": [1, 2]}}
    assert succeeded(run(spec)) == {"value": [1, 2]}
    assert succeeded(run({"type": "python.Function", "function": f"{FN}:nothing"})) == {}
    spec = {"type": "python.Function", "function": f"{FN}:double", "kwargs": {"x": 21}}
    assert succeeded(run(spec)) == {"double": 42}


def test_function_receives_the_context() -> None:
    spec = {"type": "python.Function", "function": f"{FN}:greet", "kwargs": {"name": "ada"}}
    outcome = run(spec)
    assert succeeded(outcome) == {"task": "t", "namespace": NAMESPACE, "attempt": 1}
    assert messages(outcome) == ["hello ada"]
    outcome = run({"type": "python.Function", "function": f"{FN}:greet_async"})
    assert succeeded(outcome) == {"value": "runnables"}
    assert messages(outcome, "WARN") == ["careful"]


@pytest.mark.parametrize(
    "function",
    [
        "tests.runtime.no_such_module:f",
        f"{FN}:no_such_function",
        f"{FN}:NOT_CALLABLE",
    ],
)
def test_function_that_cannot_load_is_not_retriable(function: str) -> None:
    error = failed(run({"type": "python.Function", "function": function}))
    assert error.retriable is False
    assert function in error.message


def test_function_with_wrong_kwargs_is_not_retriable() -> None:
    spec = {"type": "python.Function", "function": f"{FN}:add", "kwargs": {"a": 1}}
    error = failed(run(spec))
    assert error.retriable is False and "'b'" in error.message


def test_function_exception_is_retriable_and_logged() -> None:
    spec = {"type": "python.Function", "function": f"{FN}:fail", "kwargs": {"message": "bad"}}
    outcome = run(spec)
    error = failed(outcome)
    assert error == TaskFailure("ValueError: bad", "ValueError", retriable=True)
    (trace,) = messages(outcome, "ERROR")
    assert "raise ValueError(message)" in trace


def test_function_timeout() -> None:
    spec = {"type": "python.Function", "function": f"{FN}:wait_forever"}
    error = failed(run(spec, timeout_s=0.2))
    assert error == TaskFailure("timed out after 0.2s", TIMEOUT_ERROR, retriable=True)


# ---- scripts.Shell ------------------------------------------------------------------------


def test_shell_logs_stdout_and_stderr() -> None:
    outcome = run(
        {
            "type": "scripts.Shell",
            "commands": ["echo out-$NAME", "echo err >&2", "cd /", "pwd"],
            "env": {"NAME": "x"},
        }
    )
    assert succeeded(outcome) == {"exitCode": 0, "vars": {}}
    assert messages(outcome, "INFO") == ["out-x", "/"]
    assert messages(outcome, "WARN") == ["err"]


def test_shell_output_lines_set_vars() -> None:
    line = '::{"outputs": {"count": 3, "name": "x"}}::'
    outcome = run({"type": "scripts.Shell", "commands": [f"echo '{line}'", "echo done"]})
    assert succeeded(outcome) == {"exitCode": 0, "vars": {"count": 3, "name": "x"}}
    assert messages(outcome) == ["done"]


def test_shell_failure_stops_at_the_first_failing_command() -> None:
    outcome = run({"type": "scripts.Shell", "commands": ["echo no >&2; exit 3", "echo after"]})
    error = failed(outcome)
    assert error.message == "commands exited with code 3: no"
    assert "after" not in messages(outcome)


def test_shell_without_fail_fast_runs_every_command() -> None:
    outcome = run({"type": "scripts.Shell", "failFast": False, "commands": ["false", "echo after"]})
    succeeded(outcome)
    assert messages(outcome) == ["after"]


def test_shell_streams_lines_as_they_come() -> None:
    outcome = run({"type": "scripts.Shell", "commands": ["echo first", "sleep 0.3", "echo second"]})
    succeeded(outcome)
    (first, _, _), (second, _, _) = outcome.logs
    assert (second - first).total_seconds() >= 0.2


def test_shell_timeout_kills_the_process() -> None:
    outcome = run({"type": "scripts.Shell", "commands": ["echo $$", "sleep 30"]}, timeout_s=0.5)
    assert failed(outcome).type == TIMEOUT_ERROR
    pid = int(messages(outcome, "INFO")[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_shell_with_a_missing_interpreter_is_not_retriable() -> None:
    spec = {"type": "scripts.Shell", "interpreter": ["/no/such/shell"], "commands": ["true"]}
    assert failed(run(spec)).retriable is False


# ---- http.Request -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Multi", "one")
        self.send_header("X-Multi", "two")
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode()
        if self.path.startswith("/missing"):
            self._reply(404, b"nope", "text/plain")
        elif self.path.startswith("/unavailable"):
            self._reply(503, b"later", "text/plain")
        elif self.path.startswith("/text"):
            self._reply(200, b"hello", "text/plain; charset=utf-8")
        else:
            echo = {
                "method": self.command,
                "path": self.path,
                "contentType": self.headers.get("Content-Type"),
                "token": self.headers.get("X-Token"),
                "body": received,
            }
            self._reply(200, json.dumps(echo).encode(), "application/json")

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_get_parses_json(http_base: str) -> None:
    outputs = succeeded(
        run({"type": "http.Request", "uri": f"{http_base}/echo?q=1", "headers": {"X-Token": "t"}})
    )
    assert outputs["code"] == 200
    assert outputs["uri"] == f"{http_base}/echo?q=1"
    assert outputs["headers"]["content-type"] == ["application/json"]
    assert outputs["headers"]["x-multi"] == ["one", "two"]
    assert outputs["body"]["method"] == "GET" and outputs["body"]["token"] == "t"


def test_http_text_body(http_base: str) -> None:
    outputs = succeeded(run({"type": "http.Request", "uri": f"{http_base}/text"}))
    assert outputs["body"] == "hello"


def test_http_post_json_and_forms(http_base: str) -> None:
    spec = {"type": "http.Request", "method": "POST", "uri": f"{http_base}/echo"}
    body = succeeded(run({**spec, "body": {"a": [1, 2]}}))["body"]
    assert body["contentType"] == "application/json" and json.loads(body["body"]) == {"a": [1, 2]}
    body = succeeded(run({**spec, "body": "raw text", "contentType": "text/plain"}))["body"]
    assert body == {**body, "contentType": "text/plain", "body": "raw text"}
    body = succeeded(run({**spec, "formData": {"name": "ada", "n": 2}}))["body"]
    assert body["contentType"] == "application/x-www-form-urlencoded"
    assert body["body"] == "name=ada&n=2"
    multipart = {**spec, "formData": {"name": "ada"}, "contentType": "multipart/form-data"}
    body = succeeded(run(multipart))["body"]
    assert body["contentType"].startswith("multipart/form-data; boundary=")
    assert 'name="name"' in body["body"] and "ada" in body["body"]


def test_http_error_status_fails(http_base: str) -> None:
    error = failed(run({"type": "http.Request", "uri": f"{http_base}/missing"}))
    assert "404" in error.message and error.retriable is False
    error = failed(run({"type": "http.Request", "uri": f"{http_base}/unavailable"}))
    assert "503" in error.message and error.retriable is True


def test_http_allow_failed(http_base: str) -> None:
    spec = {"type": "http.Request", "uri": f"{http_base}/missing", "allowFailed": True}
    outputs = succeeded(run(spec))
    assert outputs["code"] == 404 and outputs["body"] == "nope"


def test_http_connection_refused_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    error = failed(run({"type": "http.Request", "uri": f"http://127.0.0.1:{port}/"}))
    assert error.retriable is True and error.type == "TaskError"


# ---- kv.* against the real store ----------------------------------------------------------


@pytest.fixture
async def kv_dsn(fresh_database: str) -> AsyncIterator[str]:
    """A migrated fresh database; the worker's stores are closed before it is dropped."""
    async with Store(fresh_database):
        pass
    yield fresh_database
    shutdown_worker_loop()


@pytest.mark.integration
async def test_kv_set_get_delete(kv_dsn: str) -> None:
    key = f"k-{uuid.uuid4().hex}"
    succeeded(run({"type": "kv.Set", "key": key, "value": {"a": 1}}, dsn=kv_dsn))
    got = succeeded(run({"type": "kv.Get", "key": key}, dsn=kv_dsn))
    assert got == {"value": {"a": 1}}
    async with Store(kv_dsn, migrate=False) as store:
        entry = await store.kv_get(NAMESPACE, key)  # the flow's namespace by default
    assert entry is not None and entry.value == {"a": 1}
    assert succeeded(run({"type": "kv.Delete", "key": key}, dsn=kv_dsn)) == {"deleted": True}
    assert succeeded(run({"type": "kv.Get", "key": key}, dsn=kv_dsn)) == {"value": None}
    assert succeeded(run({"type": "kv.Delete", "key": key}, dsn=kv_dsn)) == {"deleted": False}
    error = failed(run({"type": "kv.Get", "key": key, "errorOnMissing": True}, dsn=kv_dsn))
    assert error.retriable is False
    spec = {"type": "kv.Delete", "key": key, "errorOnMissing": True}
    assert failed(run(spec, dsn=kv_dsn)).retriable is False


@pytest.mark.integration
async def test_kv_overwrite_false_is_refused(kv_dsn: str) -> None:
    spec = {"type": "kv.Set", "key": "once", "value": 1, "overwrite": False, "namespace": "other"}
    succeeded(run(spec, dsn=kv_dsn))
    error = failed(run({**spec, "value": 2}, dsn=kv_dsn))
    assert error.retriable is False and "already exists" in error.message
    got = run({"type": "kv.Get", "key": "once", "namespace": "other"}, dsn=kv_dsn)
    assert succeeded(got) == {"value": 1}


@pytest.mark.integration
async def test_kv_ttl_and_type(kv_dsn: str) -> None:
    succeeded(run({"type": "kv.Set", "key": "later", "value": "x", "ttl": "PT1H"}, dsn=kv_dsn))
    succeeded(run({"type": "kv.Set", "key": "gone", "value": "x", "ttl": "-PT1S"}, dsn=kv_dsn))
    typed = {"type": "kv.Set", "key": "n", "value": "42", "kvType": "NUMBER"}
    succeeded(run(typed, dsn=kv_dsn))
    assert succeeded(run({"type": "kv.Get", "key": "gone"}, dsn=kv_dsn)) == {"value": None}
    assert succeeded(run({"type": "kv.Get", "key": "n"}, dsn=kv_dsn)) == {"value": 42}
    async with Store(kv_dsn, migrate=False) as store:
        entry = await store.kv_get(NAMESPACE, "later")
    assert entry is not None and entry.expires_at is not None
    left = entry.expires_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < left <= dt.timedelta(hours=1)
    error = failed(run({**typed, "value": "forty"}, dsn=kv_dsn))
    assert error.retriable is False


def test_kv_without_a_store_fails() -> None:
    error = failed(run({"type": "kv.Get", "key": "k"}))
    assert error.message == "kv needs a store" and error.retriable is False


# ---- on Ray -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_ray_task_runs_an_attempt(ray_cluster: RayCluster) -> None:
    spec = {"type": "python.Function", "function": "json:dumps", "kwargs": {"obj": [1, 2]}}
    outcome: TaskOutcome = await run_task.remote(invocation(spec))
    assert succeeded(outcome) == {"value": "[1, 2]"}
    assert outcome.worker != ray.get_runtime_context().get_worker_id()
    assert outcome.node == ray.get_runtime_context().get_node_id()


@pytest.mark.integration
async def test_task_worker_actor_round_trip(ray_cluster: RayCluster) -> None:
    worker = task_worker_class(num_cpus=0).remote()
    try:
        worker_id = await worker.ping.remote()
        script = "print('on the actor')\nKestrel.outputs({'n': inputs['n'] + 1})"
        outcome: TaskOutcome = await worker.run.remote(
            invocation({"type": "scripts.Python", "script": script}, variables={"inputs": {"n": 1}})
        )
        assert succeeded(outcome) == {"exitCode": 0, "vars": {"n": 2}}
        assert messages(outcome) == ["on the actor"]
        assert outcome.worker == worker_id
        timed_out: TaskOutcome = await worker.run.remote(
            invocation({"type": "scripts.Shell", "commands": ["sleep 30"]}, timeout_s=0.2)
        )
        assert failed(timed_out).type == TIMEOUT_ERROR
        await worker.close.remote()
    finally:
        ray.kill(worker)
