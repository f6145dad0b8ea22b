"""More ``kestrel`` client subcommands, beside `_client_commands`.

``flow get``, ``execution start``, ``trigger disable|enable``, ``backfill`` (with a
progress bar), ``kv list|get|set|delete`` and ``deadletters list|show``.

Same conventions as `_client_commands`: tables by default, ``--json`` for scripts, a
failed request prints the server's message and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import _client_calls as calls
from ._client import API, KestrelClient
from ._client_commands import (
    EXIT_ERROR,
    EXIT_OK,
    Handler,
    input_pairs,
    print_execution,
    table,
)
from ._client_commands import _run as run_handler
from ._human import human_time

POLL_SECONDS = 0.2
"""How often ``backfill`` and ``execution start --wait`` ask for progress."""


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, default=str), file=out)


# ---- flows, executions -----------------------------------------------------------------


def _flow_get(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    flow = client.flow(args.namespace, args.id)
    if args.json:
        _print_json(flow, out)
    else:
        print(str(flow.get("source", "")).rstrip("\n"), file=out)
    return EXIT_OK


def _execution_start(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    inputs = input_pairs(args.input)
    execution = calls.start_execution(client, args.namespace, args.flow, inputs, wait=args.wait)
    if args.json:
        _print_json(execution, out)
    elif args.wait:
        print_execution(execution, out)
    else:
        state = execution["state"]["current"]
        print(f"execution {execution['id']} started ({state})", file=out)
    if args.wait and execution["state"]["current"] not in ("SUCCESS", "WARNING"):
        return EXIT_ERROR
    return EXIT_OK


# ---- triggers ---------------------------------------------------------------------------


def _toggle(disabled: bool) -> Handler:
    def handler(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
        found = calls.set_trigger_disabled(
            client, args.namespace, args.flow, args.trigger, disabled
        )
        if args.json:
            _print_json(found, out)
        else:
            word = "disabled" if disabled else "enabled"
            name = f"{found['namespace']}.{found['flowId']}/{found['triggerId']}"
            print(f"trigger {name} {word} ({found['status']})", file=out)
        return EXIT_OK

    return handler


def _backfill(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"namespace": args.namespace, "flowId": args.flow, "start": args.start}
    if args.end:
        body["end"] = args.end
    if args.trigger:
        body["triggerId"] = args.trigger
    job: dict[str, Any] = client.request("PUT", f"{API}/triggers/backfill", json=body).json()
    if job.get("capped"):
        print(f"kestrel backfill: {job['message']}", file=sys.stderr)
    columns = (
        TextColumn("backfill {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    stderr = Console(stderr=True)  # stdout stays for the result
    with Progress(*columns, console=stderr, transient=True, disable=args.json) as progress:
        bar = progress.add_task(job["id"], total=job["total"])
        while job["state"] == "RUNNING":
            progress.update(bar, completed=job["done"])
            time.sleep(POLL_SECONDS)
            job = client.request("GET", f"{API}/triggers/backfill/{job['id']}").json()
        progress.update(bar, completed=job["done"])
    if args.json:
        _print_json(job, out)
    else:
        print(f"{job['done']} execution(s) created", file=out)
    if job["state"] != "SUCCESS":
        print(f"kestrel backfill: {job.get('message') or job['state']}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


# ---- KV ---------------------------------------------------------------------------------


def _kv_list(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    keys = calls.kv_list(client, args.namespace)
    if args.json:
        _print_json(keys, out)
        return EXIT_OK
    rows = [(k["key"], k["type"], human_time(k.get("expirationDate"))) for k in keys]
    print(table(("KEY", "TYPE", "EXPIRES"), rows), file=out)
    return EXIT_OK


def _kv_get(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    found = calls.kv_get(client, args.namespace, args.key)
    if args.json:
        _print_json(found, out)
    elif isinstance(found["value"], str):
        print(found["value"], file=out)
    else:
        print(json.dumps(found["value"]), file=out)
    return EXIT_OK


def _kv_set(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    value: Any = args.value
    if not args.string:
        try:
            value = json.loads(args.value)
        except ValueError:
            value = args.value  # not JSON: kept as text
    found = calls.kv_set(client, args.namespace, args.key, value, args.ttl)
    if args.json:
        _print_json(found, out)
    else:
        print(f"{args.namespace}/{args.key} set ({found['type']})", file=out)
    return EXIT_OK


def _kv_delete(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    calls.kv_delete(client, args.namespace, args.key)
    if args.json:
        _print_json({"namespace": args.namespace, "key": args.key, "deleted": True}, out)
    else:
        print(f"{args.namespace}/{args.key} deleted", file=out)
    return EXIT_OK


# ---- dead letters -----------------------------------------------------------------------


def _deadletters_list(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    letters = calls.dead_letters(client, args.namespace, args.flow, args.size)
    if args.json:
        _print_json(letters, out)
        return EXIT_OK
    rows = [
        (
            d["id"],
            human_time(d.get("createdDate")),
            f"{d.get('namespace') or '-'}.{d.get('flowId') or '-'}/{d.get('triggerId') or '-'}",
            d["attempts"],
            d["reason"].splitlines()[0][:70] if d["reason"] else "-",
        )
        for d in letters
    ]
    print(table(("ID", "CREATED", "TRIGGER", "ATTEMPTS", "REASON"), rows), file=out)
    return EXIT_OK


def _deadletters_show(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    letter = calls.dead_letter(client, args.id)
    if args.json:
        _print_json(letter, out)
        return EXIT_OK
    trigger = f"{letter.get('namespace')}.{letter.get('flowId')}/{letter.get('triggerId')}"
    for name, value in (
        ("id", letter["id"]),
        ("created", human_time(letter.get("createdDate"))),
        ("source", letter["source"]),
        ("trigger", trigger),
        ("attempts", letter["attempts"]),
        ("reason", letter["reason"]),
        ("metadata", json.dumps(letter.get("metadata") or {})),
    ):
        print(f"{name + ':':<10}{value}", file=out)
    print("payload:", file=out)
    print(letter.get("payloadPreview", ""), file=out)
    return EXIT_OK


# ---- wiring -----------------------------------------------------------------------------


def add_extra_commands(
    sub: Any, flow_sub: Any, ex_sub: Any, trigger_sub: Any, common: argparse.ArgumentParser
) -> None:
    """Add this module's subcommands to the parsers `add_client_commands` made."""
    p = flow_sub.add_parser("get", parents=[common], help="a flow's YAML source")
    p.add_argument("namespace")
    p.add_argument("id")
    p.set_defaults(func=run_handler(_flow_get))

    p = ex_sub.add_parser("start", parents=[common], help="start a flow with inputs")
    p.add_argument("namespace")
    p.add_argument("flow", metavar="FLOW")
    p.add_argument(
        "--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="an input"
    )
    p.add_argument("--wait", action="store_true", help="wait for the end; exit 1 unless it worked")
    p.set_defaults(func=run_handler(_execution_start))

    for name, disabled in (("disable", True), ("enable", False)):
        p = trigger_sub.add_parser(
            name, parents=[common], help=f"{name} a trigger (its listener stops/starts)"
        )
        p.add_argument("namespace")
        p.add_argument("flow", metavar="FLOW")
        p.add_argument("trigger", metavar="TRIGGER")
        p.set_defaults(func=run_handler(_toggle(disabled)))

    p = sub.add_parser(
        "backfill", parents=[common], help="run a schedule's ticks between two dates"
    )
    p.add_argument("namespace")
    p.add_argument("flow", metavar="FLOW")
    p.add_argument("--start", required=True, help="ISO-8601 date-time")
    p.add_argument("--end", help="ISO-8601 date-time (default: now)")
    p.add_argument("--trigger", help="the Schedule trigger's id (default: the flow's one)")
    p.set_defaults(func=run_handler(_backfill))

    kv = sub.add_parser("kv", help="a namespace's key-value store")
    kv_sub = kv.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = kv_sub.add_parser("list", parents=[common], help="the keys of a namespace")
    p.add_argument("namespace")
    p.set_defaults(func=run_handler(_kv_list))
    for name, handler, help_text in (
        ("get", _kv_get, "a key's value"),
        ("delete", _kv_delete, "delete a key"),
    ):
        p = kv_sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("namespace")
        p.add_argument("key")
        p.set_defaults(func=run_handler(handler))
    p = kv_sub.add_parser("set", parents=[common], help="set a key (JSON, else text)")
    p.add_argument("namespace")
    p.add_argument("key")
    p.add_argument("value")
    p.add_argument("--string", action="store_true", help="store the value as text, unparsed")
    p.add_argument("--ttl", help="ISO-8601 duration after which it expires (e.g. PT1H)")
    p.set_defaults(func=run_handler(_kv_set))

    dead = sub.add_parser("deadletters", help="messages that could not become executions")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = dead_sub.add_parser("list", parents=[common], help="the newest dead letters")
    p.add_argument("--namespace", help="of this namespace")
    p.add_argument("--flow", help="of this flow id")
    p.add_argument("--size", type=int, default=50, help="how many (default 50)")
    p.set_defaults(func=run_handler(_deadletters_list))
    p = dead_sub.add_parser("show", parents=[common], help="one dead letter with its payload")
    p.add_argument("id")
    p.set_defaults(func=run_handler(_deadletters_show))
