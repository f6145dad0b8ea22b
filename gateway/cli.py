"""The ``kestrel`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from flows import (
    FlowError,
    Problem,
    flow_json_schema,
    iter_flow_files,
    load_flow,
)

from ._cli_files import add_file_commands
from ._client_commands import add_client_commands

Command = Callable[[argparse.Namespace], int]


def _validate(args: argparse.Namespace) -> int:
    files = list(iter_flow_files(args.paths))
    problems: list[Problem] = []
    for file in files:
        if not file.exists():
            problems.append(Problem("no such file or directory", "", str(file)))
            continue
        try:
            load_flow(file)
        except FlowError as exc:
            problems.extend(exc.problems)
    for problem in problems:
        print(problem)
    bad = len({p.file for p in problems})
    print(f"{len(files) - bad} valid, {bad} invalid", file=sys.stderr)
    return 1 if problems or not files else 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(flow_json_schema(), indent=2 if args.indent else None, sort_keys=False))
    return 0


def _token(args: argparse.Namespace) -> int:
    from ._token import token_path

    path = token_path()
    try:
        print(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        print(
            f"kestrel token: no token at {path} ({exc.strerror}); start the server first",
            file=sys.stderr,
        )
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from ._run import run_command  # imports Ray and the store: only for this command

    return run_command(
        args.flow, args.input, args.db, args.ray_address, args.json, data_dir=args.data_dir
    )


def _server(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from actors import StorageConfig
    from flows import StorageError

    from ._server import configure_logging, serve
    from ._settings import Settings

    options = {
        "db": args.db,
        "data_dir": args.data_dir,
        "keep_db": args.keep_db or None,
        "ray_address": args.ray_address,
        "host": args.host,
        "port": args.port,
        "flows": args.flows,
        "api_token": args.api_token,
        "no_auth": args.no_auth,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "storage": args.storage,
    }
    try:
        settings = Settings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"])
            print(f"kestrel server: --{where.replace('_', '-')}: {error['msg']}", file=sys.stderr)
        return 2
    try:
        StorageConfig.parse(settings.storage)
    except StorageError as exc:
        print(f"kestrel server: --storage: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    return asyncio.run(serve(settings))


def _add_server_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = sub.add_parser(
        "server", help="run the server: runtime, flows-folder sync and the REST API"
    )
    server.add_argument("--db", help="postgresql://... (env KESTREL_DB; default: embedded)")
    server.add_argument(
        "--data-dir",
        help="where the embedded Postgres keeps its data (env KESTREL_DATA_DIR; "
        "default: the user's data directory)",
    )
    server.add_argument(
        "--keep-db",
        action="store_true",
        help="leave the embedded Postgres running after the server stops (env KESTREL_KEEP_DB)",
    )
    server.add_argument(
        "--ray-address", help="Ray cluster to join (env KESTREL_RAY_ADDRESS; default: local)"
    )
    server.add_argument("--host", help="interface to bind (env KESTREL_HOST; default 127.0.0.1)")
    server.add_argument("--port", type=int, help="HTTP port (env KESTREL_PORT; default 8080)")
    server.add_argument("--flows", help="flows folder to load and watch (env KESTREL_FLOWS)")
    server.add_argument(
        "--api-token",
        help="require 'Authorization: Bearer TOKEN' (env KESTREL_API_TOKEN; default: a "
        "token generated at the first start and kept in the data dir)",
    )
    server.add_argument(
        "--no-auth",
        action="store_const",
        const=True,
        help="serve the API without any token (env KESTREL_NO_AUTH): any local process "
        "can then run flows",
    )
    server.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="env KESTREL_LOG_LEVEL; default INFO",
    )
    server.add_argument(
        "--log-format", choices=["text", "json"], help="env KESTREL_LOG_FORMAT; default text"
    )
    server.add_argument(
        "--storage",
        help="internal storage: a folder or s3://bucket/prefix, with the usual AWS_* "
        "variables (env KESTREL_STORAGE; default: the data dir's storage folder)",
    )
    server.set_defaults(func=_server)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``kestrel`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="kestrel", description="Real-time event-trigger gateway with an actor runtime."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check flow files; one line per problem")
    validate.add_argument("paths", nargs="+", help="flow files or folders")
    validate.set_defaults(func=_validate)

    run = sub.add_parser("run", help="run one execution of a flow file to its end")
    run.add_argument("flow", help="the flow's YAML file")
    run.add_argument(
        "--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="an input"
    )
    run.add_argument(
        "--db", default=None, help="postgresql://... (default: a throwaway embedded Postgres)"
    )
    run.add_argument(
        "--data-dir",
        default=None,
        help="keep the run in the embedded Postgres of this data directory (as the server's "
        "--data-dir) instead of a throwaway one",
    )
    run.add_argument("--ray-address", default=None, help="Ray cluster (default: a local Ray)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.set_defaults(func=_run)

    schema = sub.add_parser("schema", help="print the JSON Schema of the flow language")
    schema.add_argument("--indent", action="store_true", help="pretty-print")
    schema.set_defaults(func=_schema)

    _add_server_command(sub)
    token = sub.add_parser(
        "token", help="print the API token the local server generated (in its data dir)"
    )
    token.set_defaults(func=_token)
    add_client_commands(sub)
    add_file_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kestrel`` command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
