"""The ``kestrel`` subcommands that talk to a running server through its REST API.

``flow list|deploy|delete``, ``execution list|get|logs|replay|restart|kill|resume`` and
``trigger list`` (the others are in `_cli_extra`). Tables by default, ``--json`` for
scripts; a failed request prints the server's message and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._client import DEFAULT_SERVER, ClientError, KestrelClient
from ._human import human_duration
from ._token import local_token

EXIT_OK = 0
EXIT_ERROR = 1

Handler = Callable[[KestrelClient, argparse.Namespace, TextIO], int]


# ---- output ---------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under headers, columns aligned with two spaces between them."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, default=str), file=out)


def _time(value: str | None) -> str:
    """``2024-01-02T03:04:05.678+00:00`` → ``2024-01-02 03:04:05``."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def _clock(value: str | None) -> str:
    """The time of day with milliseconds."""
    if not value:
        return "-"
    return value.split("T", 1)[-1][:12]


def _state(execution: dict[str, Any]) -> str:
    return str(execution.get("state", {}).get("current", "?"))


def _duration(item: dict[str, Any]) -> str:
    return human_duration(item.get("state", {}).get("duration"))


def _log_line(line: dict[str, Any]) -> str:
    return f"{_clock(line.get('timestamp'))} {line.get('level', ''):<5} {line.get('message', '')}"


# ---- flows ----------------------------------------------------------------------------


def _flow_list(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    flows = client.flows(args.namespace)
    if args.json:
        _print_json(flows, out)
        return EXIT_OK
    rows = [
        (
            f["namespace"],
            f["id"],
            f["revision"],
            ",".join(t["id"] for t in f.get("triggers", [])) or "-",
            _flow_status(f),
            _time(f.get("updated")),
        )
        for f in flows
    ]
    print(table(("NAMESPACE", "ID", "REVISION", "TRIGGERS", "STATUS", "UPDATED"), rows), file=out)
    return EXIT_OK


def _flow_status(flow: dict[str, Any]) -> str:
    """``disabled``, ``invalid``, else the state of its last execution (``-``: never ran)."""
    if flow.get("disabled"):
        return "disabled"
    if flow.get("errors"):
        return "invalid"
    return str(flow.get("lastExecutionState") or "-")


def _flow_deploy(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    failed = 0
    results: list[dict[str, Any]] = []
    for name in args.files:
        path = Path(name)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            failed += 1
            continue
        try:
            flow, outcome = client.deploy(source)
        except ClientError as exc:
            failed += 1
            print(f"{path}: {exc.message.replace('<api>', str(path))}", file=sys.stderr)
            results.append({"file": str(path), "error": exc.message})
            continue
        uid = f"{flow['namespace']}.{flow['id']}"
        results.append(
            {"file": str(path), "flow": uid, "revision": flow["revision"], "outcome": outcome}
        )
        if not args.json:
            print(f"{path}: {uid} {outcome} (revision {flow['revision']})", file=out)
    if args.json:
        _print_json(results, out)
    return EXIT_ERROR if failed else EXIT_OK


def _flow_delete(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    client.delete_flow(args.namespace, args.id)
    if args.json:
        _print_json({"namespace": args.namespace, "id": args.id, "deleted": True}, out)
    else:
        print(f"flow {args.namespace}.{args.id} deleted", file=out)
    return EXIT_OK


# ---- executions -----------------------------------------------------------------------


def _execution_list(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    page = client.executions(args.namespace, args.flow, args.state or (), args.size)
    if args.json:
        _print_json(page, out)
        return EXIT_OK
    rows = [
        (
            e["id"],
            e["namespace"],
            e["flowId"],
            e["flowRevision"],
            _state(e),
            _time(e["state"].get("startDate")),
            _duration(e),
        )
        for e in page["results"]
    ]
    headers = ("ID", "NAMESPACE", "FLOW", "REV", "STATE", "STARTED", "DURATION")
    print(table(headers, rows), file=out)
    print(f"{len(rows)} of {page['total']} execution(s)", file=out)
    return EXIT_OK


def print_execution(execution: dict[str, Any], out: TextIO) -> None:
    """A summary line, labels, then a task-run table."""
    flow = f"{execution['namespace']}.{execution['flowId']} rev {execution['flowRevision']}"
    print(f"execution {execution['id']} of {flow}: {_state(execution)}", file=out)
    print(f"started {_time(execution['state'].get('startDate'))}", end="", file=out)
    print(f", ended {_time(execution['state'].get('endDate'))}", end="", file=out)
    print(f", duration {_duration(execution)}", file=out)
    if execution.get("originalId"):
        print(f"replay of {execution['originalId']}", file=out)
    labels = execution.get("labels") or []
    if labels:
        print("labels: " + ", ".join(f"{lb['key']}:{lb['value']}" for lb in labels), file=out)
    rows = [
        (
            run["id"],
            run["taskId"] + (f"[{run['value']}]" if run.get("value") else ""),
            _state(run),
            len(run.get("attempts") or []),
            _duration(run),
        )
        for run in execution.get("taskRunList") or []
    ]
    if rows:
        print("", file=out)
        print(table(("TASK RUN", "TASK", "STATE", "ATTEMPTS", "DURATION"), rows), file=out)
    if execution.get("outputs"):
        print("outputs: " + json.dumps(execution["outputs"], default=str), file=out)


def _show(execution: dict[str, Any], args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        _print_json(execution, out)
    else:
        print_execution(execution, out)
    return EXIT_OK


def _execution_get(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.execution(args.id), args, out)


def _execution_logs(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    lines = client.follow_logs(args.id) if args.follow else iter(client.logs(args.id))
    for line in lines:
        print(json.dumps(line) if args.json else _log_line(line), file=out, flush=True)
    return EXIT_OK


def _execution_replay(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.replay(args.id, args.task_run), args, out)


def _execution_restart(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.restart(args.id), args, out)


def _execution_kill(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.kill(args.id), args, out)


def input_pairs(pairs: list[str]) -> dict[str, str]:
    """``-i NAME=VALUE`` options as a mapping (execution start, resume)."""
    inputs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ClientError(f"--input {pair!r}: expected NAME=VALUE")
        inputs[name.strip()] = value
    return inputs


def _execution_resume(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.resume(args.id, input_pairs(args.input)), args, out)


def _execution_pause(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.pause(args.id), args, out)


# ---- triggers -------------------------------------------------------------------------


def _trigger_list(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    triggers = client.triggers()
    if args.json:
        _print_json(triggers, out)
        return EXIT_OK
    rows = [
        (
            t["namespace"],
            t["flowId"],
            t["triggerId"],
            t["type"],
            t["status"] + (" (disabled)" if t.get("disabled") else ""),
            t["events"],
            t["executionsCreated"],
            _time(t.get("lastEventDate")),
            (t.get("lastError") or "-")[:60],
        )
        for t in triggers
    ]
    headers = (
        "NAMESPACE",
        "FLOW",
        "TRIGGER",
        "TYPE",
        "STATUS",
        "EVENTS",
        "EXECUTIONS",
        "LAST EVENT",
        "LAST ERROR",
    )
    print(table(headers, rows), file=out)
    return EXIT_OK


# ---- wiring ---------------------------------------------------------------------------


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            token = args.api_token or local_token(args.server)
            with KestrelClient(args.server, token) as client:
                return handler(client, args, sys.stdout)
        except ClientError as exc:
            print(f"kestrel {args.command}: {exc.message}", file=sys.stderr)
            return EXIT_ERROR

    return run


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("KESTREL_SERVER", DEFAULT_SERVER),
        help=f"the server's URL (env KESTREL_SERVER; default {DEFAULT_SERVER})",
    )
    common.add_argument(
        "--api-token",
        default=os.environ.get("KESTREL_API_TOKEN"),
        help="the server's API token (env KESTREL_API_TOKEN; for a server on this machine, "
        "default: the token it generated in its data dir)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return common


def add_client_commands(sub: Any) -> None:
    """Add ``flow``, ``execution``, ``trigger``, ``backfill``, ``kv`` and ``deadletters``."""
    from ._cli_extra import add_extra_commands  # it imports this module

    common = _connection_options()

    flow = sub.add_parser("flow", help="list, deploy or delete flows on a server")
    flow_sub = flow.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = flow_sub.add_parser("list", parents=[common], help="the deployed flows")
    p.add_argument("--namespace", help="this namespace and below")
    p.set_defaults(func=_run(_flow_list))
    p = flow_sub.add_parser("deploy", parents=[common], help="create or update flows")
    p.add_argument("files", nargs="+", metavar="FILE", help="flow YAML files")
    p.set_defaults(func=_run(_flow_deploy))
    p = flow_sub.add_parser("delete", parents=[common], help="delete a flow")
    p.add_argument("namespace")
    p.add_argument("id")
    p.set_defaults(func=_run(_flow_delete))

    execution = sub.add_parser("execution", help="list, inspect and control executions")
    ex_sub = execution.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ex_sub.add_parser("list", parents=[common], help="executions, newest first")
    p.add_argument("--namespace", help="this namespace and below")
    p.add_argument("--flow", help="a flow id")
    p.add_argument("--state", action="append", help="a state (repeatable)")
    p.add_argument("--size", type=int, default=25, help="how many (default 25)")
    p.set_defaults(func=_run(_execution_list))
    for name, handler, help_text in (
        ("get", _execution_get, "an execution and its task runs"),
        ("restart", _execution_restart, "re-run the failed task runs of an ended execution"),
        ("kill", _execution_kill, "kill a running execution"),
        ("pause", _execution_pause, "pause a running execution (no task starts until resumed)"),
        ("resume", _execution_resume, "resume a paused execution"),
    ):
        p = ex_sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("id", help="the execution id")
        p.set_defaults(func=_run(handler))
    p.add_argument(  # resume: the Pause task's onResume inputs
        "--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="an input"
    )
    p = ex_sub.add_parser("logs", parents=[common], help="an execution's log lines")
    p.add_argument("id", help="the execution id")
    p.add_argument("--follow", "-f", action="store_true", help="stream until it ends")
    p.set_defaults(func=_run(_execution_logs))
    p = ex_sub.add_parser("replay", parents=[common], help="replay an execution")
    p.add_argument("id", help="the execution id")
    p.add_argument("--task-run", help="replay from this task run (default: the start)")
    p.set_defaults(func=_run(_execution_replay))

    trigger = sub.add_parser("trigger", help="deployed triggers")
    trigger_sub = trigger.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = trigger_sub.add_parser("list", parents=[common], help="status of every trigger")
    p.set_defaults(func=_run(_trigger_list))

    add_extra_commands(sub, flow_sub, ex_sub, trigger_sub, common)
