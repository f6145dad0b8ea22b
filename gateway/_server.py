"""``kestrel server``: the runtime, the flows-folder sync and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from ._runtime import SHUTDOWN_DRAIN_S, Runtime
from ._settings import Settings
from ._sync import FlowFolderSync
from ._token import load_or_create_token, token_path

_log = logging.getLogger("kestrel.server")

DRAIN_SECONDS = SHUTDOWN_DRAIN_S

STOP_GRACE_S = 20.0
"""Beyond the drain, how long the runtime may take to cancel what is left and close
(an actor's shutdown call gets 10 s of it); only a stop that hangs is cut short."""


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    """Log lines to stderr as text or JSON, at the configured level."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("uvicorn.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def api_server(app: Any, settings: Settings, **config: Any) -> uvicorn.Server:
    """A uvicorn server for `app` on the settings' address that leaves signals alone.

    Args:
        app: The ASGI app.
        settings: Where to listen.
        **config: Further `uvicorn.Config` options (e.g. ``timeout_graceful_shutdown``).
    """
    options: dict[str, Any] = {"log_config": None, "lifespan": "off", **config}
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, **options))
    # Whoever runs it decides what a signal does; uvicorn must not take them.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


@contextlib.asynccontextmanager
async def api_serving(app: Any, settings: Settings, **config: Any) -> AsyncIterator[uvicorn.Server]:
    """Serve `app` in this loop (see `api_server`): started on entry, stopped on exit."""
    server = api_server(app, settings, **config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn signals its start by this flag only
        if serving.done():
            serving.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await serving


EXIT_USAGE = 2
"""Exit code when the server cannot start as configured (e.g. its port is taken)."""


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound now (as uvicorn would bind it).

    Raises:
        OSError: The address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def secure_settings(settings: Settings) -> Settings:
    """The settings with an API token: given, or generated in the data dir, unless no-auth.

    Raises:
        ValueError: Both ``--api-token`` and ``--no-auth``.
        OSError: The generated token cannot be read or kept.
    """
    if settings.no_auth:
        if settings.api_token:
            raise ValueError("--no-auth and --api-token contradict each other: choose one")
        _log.warning(
            "authentication is OFF (--no-auth): any process that reaches http://%s:%d can "
            "run flows",
            settings.host,
            settings.port,
        )
        return settings
    if settings.api_token:
        return settings
    path = token_path(settings.data_dir)
    token, created = load_or_create_token(path)
    what = "generated a new API token" if created else "using the API token"
    _log.warning(
        "%s kept in %s (mode 0600); the kestrel CLI on this machine reads it by itself. "
        'Call the API with: curl -H "Authorization: Bearer $(cat %s)" http://%s:%d/api/v1/... '
        "(--api-token sets your own, --no-auth turns authentication off)",
        what,
        path,
        path,
        settings.host,
        settings.port,
    )
    return settings.model_copy(update={"api_token": token})


async def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT; then stop listeners, drain, and exit 0.

    The API's port is bound first: when it is taken, one line says so and the server
    exits with `EXIT_USAGE` before starting Postgres or Ray.
    """
    from ._api import create_app

    try:
        sock = bind_api_socket(settings.host, settings.port)
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"fails: {exc.strerror}"
        print(
            f"kestrel server: listening on {settings.host}:{settings.port} {reason} "
            "(choose another port with --port or KESTREL_PORT)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with sock:
        try:
            settings = secure_settings(settings)
        except (ValueError, OSError) as exc:
            _log.error("cannot start: %s", exc)
            return EXIT_USAGE
        return await _serve(settings, sock, create_app)


async def _serve(settings: Settings, sock: socket.socket, create_app: Any) -> int:
    port = sock.getsockname()[1]
    folder = settings.flows_dir()
    _log.info("starting Kestrel (flows from %s)", folder)
    runtime = Runtime(settings)
    await runtime.start()
    sync = FlowFolderSync(runtime, folder, settings.sync_interval_s)
    await sync.start()
    # Our own handlers run the ordered shutdown (installed after Ray's, which they replace).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = api_server(create_app(runtime, settings), settings, timeout_graceful_shutdown=5)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    _log.info("API on http://%s:%d (OpenAPI at /docs)", settings.host, port)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
    _log.info(
        "shutting down: no new requests, stopping listeners, draining (%.0fs max)", DRAIN_SECONDS
    )
    server.should_exit = True
    await asyncio.gather(serving, return_exceptions=True)  # no request uses the runtime now
    await sync.stop()
    try:
        # The runtime drains within DRAIN_SECONDS, then cancels and closes by itself:
        # cutting its stop at the drain deadline would leave stores and actors open.
        await asyncio.wait_for(runtime.stop(), DRAIN_SECONDS + STOP_GRACE_S)
    except TimeoutError:
        _log.warning("stopping hung; unfinished executions resume at the next start")
    waiter.cancel()
    _log.info("bye")
    return 0
