"""Process handling shared by every self-started test server.

One code path starts a server binary with its output in a log file, polls a readiness
probe against a deadline, and stops the server by PID (stop signal, wait, then SIGKILL).
Any failure raises :class:`ServerStartError` with the server's log attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
LOG_TAIL_BYTES = 20_000
# Messages that mean the port we picked was grabbed by someone else before the server
# bound it; in that case we retry on a new port instead of failing the session.
_PORT_IN_USE_MARKERS = (
    "address already in use",
    "address in use",
    "addrinuse",
    "could not bind",
    "errno 98",
)


# Seconds each self-started server took from temp dir creation to ready, by name; the
# conftest prints these in the terminal summary to keep an eye on the suite's budget.
STARTUP_SECONDS: dict[str, float] = {}


class ServerStartError(RuntimeError):
    """A test server could not be started, was not ready in time, or a command failed."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged system user a server process is run as (when we are root)."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass
class ServerProcess:
    """A running server subprocess whose stdout and stderr go to ``log_path``."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals
    _log_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        """PID of the server process."""
        return self.popen.pid

    def log_tail(self, max_bytes: int = LOG_TAIL_BYTES) -> str:
        """Return the last ``max_bytes`` of the server log (best effort)."""
        return read_tail(self.log_path, max_bytes)

    def describe(self) -> str:
        """Human readable command line plus the log tail, for exception messages."""
        return (
            f"command: {' '.join(self.argv)}\n"
            f"pid: {self.pid}, exit code: {self.popen.poll()}\n"
            f"--- log {self.log_path} (tail) ---\n{self.log_tail()}\n--- end of log ---"
        )


def read_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """Return the last ``max_bytes`` of ``path`` decoded leniently ('' if unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<could not read {path}: {exc}>"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def require_port_open(host: str, port: int, timeout: float = 1.0) -> None:
    """Raise ``OSError`` unless something accepts TCP connections on ``host:port``.

    Cheap pre-check before a protocol-level probe, so client libraries do not log (or
    back off on) every refused connection while a server is still starting.
    """
    with socket.create_connection((host, port), timeout=timeout):
        pass


def find_executable(name: str) -> str | None:
    """Find ``name`` next to the running interpreter (the venv's bin dir) first, then PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def run_async(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    """Run a coroutine to completion on a private event loop in a helper thread.

    Sync fixtures and readiness probes use this so they never touch (or replace) the
    event loop that pytest-asyncio runs tests on.
    """
    outcome: dict[str, Any] = {}

    def runner() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(factory(), timeout))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=runner, name="kestrel-test-run-async", daemon=True)
    thread.start()
    # wait_for bounds the coroutine; the extra margin covers loop start-up and teardown.
    thread.join(timeout + 10.0)
    if thread.is_alive():
        raise TimeoutError(f"async helper did not finish within {timeout + 10.0:.0f}s")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def _user_kwargs(run_as: RunAs | None) -> dict[str, Any]:
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def _child_env(env: Mapping[str, str] | None, run_as: RunAs | None) -> dict[str, str]:
    merged = dict(os.environ)
    if env:
        merged.update(env)
    if run_as is not None:
        merged.update({"HOME": run_as.home, "USER": run_as.name, "LOGNAME": run_as.name})
    return merged


def run_command(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float = 120.0,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a one-shot command (e.g. ``initdb``); raise with its output if it fails."""
    try:
        result: subprocess.CompletedProcess[bytes] = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=_child_env(env, run_as),
            timeout=timeout,
            check=False,
            **_user_kwargs(run_as),
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b"").decode("utf-8", errors="replace")
        raise ServerStartError(
            f"{what}: `{' '.join(argv)}` timed out after {timeout:.0f}s\n{output}"
        ) from exc
    output = result.stdout.decode("utf-8", errors="replace")
    if result.returncode != 0:
        raise ServerStartError(
            f"{what}: `{' '.join(argv)}` exited with {result.returncode}\n{output}"
        )
    return output


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> ServerProcess:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log_path``."""
    log_file = log_path.open("ab")
    try:
        popen: subprocess.Popen[bytes] = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=_child_env(env, run_as),
            # Own session: a Ctrl-C on the terminal reaches pytest (which then tears the
            # servers down in order) rather than killing the servers under the tests.
            start_new_session=True,
            **_user_kwargs(run_as),
        )
    except OSError as exc:
        log_file.close()
        raise ServerStartError(f"{name}: could not execute `{' '.join(argv)}`: {exc}") from exc
    return ServerProcess(
        name=name,
        argv=list(argv),
        popen=popen,
        log_path=log_path,
        stop_signal=stop_signal,
        _log_file=log_file,
    )


def wait_ready(
    process: ServerProcess,
    probe: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Poll ``probe`` until it returns without raising, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if process.popen.poll() is not None:
            raise ServerStartError(
                f"{process.name} exited before it became ready "
                f"(last probe error: {last_error!r})\n{process.describe()}"
            )
        try:
            probe()
        except Exception as exc:
            last_error = exc
        else:
            return
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{process.name} was not ready within {timeout:.0f}s "
                f"(last probe error: {last_error!r})\n{process.describe()}"
            )
        time.sleep(interval)


def stop_process(process: ServerProcess, timeout: float = 20.0) -> None:
    """Stop the server by PID: its stop signal, wait up to ``timeout``, then SIGKILL."""
    try:
        if process.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(process.stop_signal)
            try:
                process.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.popen.kill()
                process.popen.wait(timeout)
    finally:
        process._log_file.close()


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> None:
    """Poll ``predicate`` until true; raise ``TimeoutError`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout:.1f}s")
        time.sleep(interval)


@dataclass(frozen=True)
class ServerSpec:
    """How to launch one kind of server.

    Attributes:
        name: Short name used in messages and log/temp-dir names.
        command: Builds argv from (port, workdir).
        probe: Readiness check against (port, workdir); raises until the server is usable.
        prepare: One-time setup in the fresh workdir before launching (e.g. initdb).
        run_as: Unprivileged user to run ``prepare``/the server as; owns the workdir.
        stop_signal: Signal that makes the server shut down promptly.
        startup_timeout: Seconds to wait for readiness per launch attempt.
        env: Extra environment variables for the server.
        attempts: Launch attempts on fresh ports if the picked port was taken meanwhile.
    """

    name: str
    command: Callable[[int, Path], Sequence[str]]
    probe: Callable[[int, Path], object]
    prepare: Callable[[Path], None] | None = None
    run_as: RunAs | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    startup_timeout: float = 60.0
    env: Mapping[str, str] | None = None
    attempts: int = 3


@dataclass(frozen=True)
class RunningServer:
    """A self-started server that is accepting requests."""

    name: str
    host: str
    port: int
    workdir: Path
    process: ServerProcess
    startup_seconds: float


def _port_conflict(process: ServerProcess) -> bool:
    log = process.log_tail().lower()
    return any(marker in log for marker in _PORT_IN_USE_MARKERS)


def _launch(spec: ServerSpec, workdir: Path) -> tuple[ServerProcess, int]:
    for attempt in range(1, spec.attempts + 1):
        port = free_port()
        process = start_process(
            spec.name,
            spec.command(port, workdir),
            log_path=workdir / f"{spec.name}-{attempt}.log",
            cwd=workdir,
            env=spec.env,
            run_as=spec.run_as,
            stop_signal=spec.stop_signal,
        )
        try:
            probe = functools.partial(spec.probe, port, workdir)
            wait_ready(process, probe, timeout=spec.startup_timeout)
        except ServerStartError:
            stop_process(process)
            if attempt < spec.attempts and _port_conflict(process):
                continue
            raise
        except BaseException:
            stop_process(process)
            raise
        return process, port
    raise AssertionError("unreachable")  # pragma: no cover - loop always returns/raises


@contextlib.contextmanager
def run_server(spec: ServerSpec) -> Iterator[RunningServer]:
    """Start ``spec`` on a free loopback port, yield it, then stop it and remove its dir."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"kestrel-test-{spec.name}-"))
    try:
        if spec.run_as is not None:
            os.chown(workdir, spec.run_as.uid, spec.run_as.gid)
        if spec.prepare is not None:
            spec.prepare(workdir)
        process, port = _launch(spec, workdir)
        startup_seconds = time.monotonic() - started
        STARTUP_SECONDS[spec.name] = startup_seconds
        try:
            yield RunningServer(
                name=spec.name,
                host=LOOPBACK,
                port=port,
                workdir=workdir,
                process=process,
                startup_seconds=startup_seconds,
            )
        finally:
            stop_process(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
