"""``kestrel files ...`` (namespace files) and ``kestrel purge`` over the REST API.

``files upload NS LOCAL [--path P]`` streams a local file (or every file of a folder),
``files list NS [--path P]``, ``files download NS PATH [-o FILE]`` streams it out,
``files delete NS PATH``; ``purge --before DATE`` deletes ended executions created
before a date with their logs and files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from ._client import ClientError, KestrelClient
from ._client_commands import EXIT_ERROR, EXIT_OK, _connection_options, table

API = "/api/v1"
_CHUNK = 1024 * 1024

Handler = Callable[[KestrelClient, argparse.Namespace, TextIO], int]


def _files_path(namespace: str) -> str:
    return f"{API}/namespaces/{quote(namespace, safe='')}/files"


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _upload(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    local = Path(args.local)
    if local.is_dir():
        pairs = [(p, p.relative_to(local).as_posix()) for p in sorted(local.rglob("*"))]
        base = (args.path or "").strip("/")
        pairs = [(p, f"{base}/{rel}" if base else rel) for p, rel in pairs if p.is_file()]
    else:
        pairs = [(local, args.path or local.name)]
    for source, target in pairs:
        client.request(
            "POST",
            _files_path(args.namespace),
            params={"path": "/" + target.lstrip("/")},
            content=_chunks(source),
            headers={"Content-Type": "application/octet-stream"},
        )
        print(f"{source} -> {args.namespace}:/{target.lstrip('/')}", file=out)
    return EXIT_OK


def _list(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    response = client.request(
        "GET", _files_path(args.namespace) + "/directory", params={"path": args.path}
    )
    entries: list[dict[str, Any]] = response.json()
    rows = [(e["fileName"], e["type"], str(e.get("size", ""))) for e in entries]
    print(table(("NAME", "TYPE", "SIZE"), rows), file=out)
    return EXIT_OK


def _download(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    response = client.request("GET", _files_path(args.namespace), params={"path": args.path})
    if args.output:
        Path(args.output).write_bytes(response.content)
    else:
        sys.stdout.buffer.write(response.content)
        sys.stdout.buffer.flush()
    return EXIT_OK


def _delete(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    client.request("DELETE", _files_path(args.namespace), params={"path": args.path})
    print(f"deleted {args.namespace}:{args.path}", file=out)
    return EXIT_OK


def _purge(client: KestrelClient, args: argparse.Namespace, out: TextIO) -> int:
    params = {"endDate": args.before}
    if args.namespace:
        params["namespace"] = args.namespace
    if args.flow:
        params["flowId"] = args.flow
    found = client.request("DELETE", f"{API}/executions/by-query", params=params).json()
    print(f"purged {found['count']} execution(s) and {found['files']} file(s)", file=out)
    return EXIT_OK


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with KestrelClient(args.server, args.api_token) as client:
                return handler(client, args, sys.stdout)
        except ClientError as exc:
            print(f"kestrel {args.command}: {exc.message}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:
            print(f"kestrel {args.command}: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return run


def add_file_commands(sub: Any) -> None:
    """Add ``files`` and ``purge`` to a subparsers object."""
    common = _connection_options()
    files = sub.add_parser("files", help="namespace files on a server")
    files_sub = files.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = files_sub.add_parser("upload", parents=[common], help="upload a file or a folder")
    p.add_argument("namespace")
    p.add_argument("local", help="a local file or folder")
    p.add_argument("--path", help="where in the namespace's files (default: its name)")
    p.set_defaults(func=_run(_upload))
    p = files_sub.add_parser("list", parents=[common], help="a folder of namespace files")
    p.add_argument("namespace")
    p.add_argument("--path", default="/")
    p.set_defaults(func=_run(_list))
    p = files_sub.add_parser("download", parents=[common], help="a namespace file's content")
    p.add_argument("namespace")
    p.add_argument("path")
    p.add_argument("--output", "-o", help="write here instead of stdout")
    p.set_defaults(func=_run(_download))
    p = files_sub.add_parser("delete", parents=[common], help="delete a file or folder")
    p.add_argument("namespace")
    p.add_argument("path")
    p.set_defaults(func=_run(_delete))
    p = sub.add_parser(
        "purge", parents=[common], help="delete ended executions older than a date, with files"
    )
    p.add_argument("--before", required=True, help="ISO date or date-time (UTC when naive)")
    p.add_argument("--namespace", help="this namespace and below")
    p.add_argument("--flow", help="only this flow id")
    p.set_defaults(func=_run(_purge))
