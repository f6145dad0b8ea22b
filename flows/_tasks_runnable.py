"""Built-in runnable tasks that belong to no external system: scripts, functions, KV.

They run on the Ray cluster with their ``resources`` (the worker runtime lives in
`actors`); each ``run`` does the work of one attempt through its `RunContext`.

Blocking user code (a script, a sync function) runs in a thread of its own, so the
worker's event loop stays responsive; when the attempt is cancelled (timeout, kill) the
thread is interrupted with an asynchronous exception, which takes effect at the next
Python bytecode (not inside a blocking C call such as ``time.sleep``). Subprocesses run
in their own process group, killed as a whole on cancellation.
"""

from __future__ import annotations

import asyncio
import builtins
import codecs
import contextlib
import ctypes
import functools
import importlib
import inspect
import json
import linecache
import logging
import os
import pathlib
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, Field

from ._durations import Duration
from ._errors import TaskError
from ._model import RunnableTask
from ._registry import register_type
from ._run_context import RunContext
from ._task_files import TaskFiles, current_directory, run_with_files, working_directory


@register_type("scripts.Python", aliases=("io.kestra.plugin.scripts.python.Script",))
class PythonScript(RunnableTask, TaskFiles):
    """Run an inline Python script in a Ray worker.

    The script sees ``inputs``/``vars``; it sets outputs with ``Kestrel.outputs({...})``
    (Kestra's name) and logs with ``print`` or ``logging``.
    """

    script: str
    env: dict[str, str] = Field(default_factory=dict)
    before_commands: list[str] = Field(default_factory=list)

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Run ``beforeCommands`` (when given), then the script in this process.

        The script runs with ``exec`` in a fresh globals dict, in a thread of its own. It
        sees ``inputs``, ``vars``, ``outputs``, ``trigger``, ``execution``, ``flow``,
        ``taskrun`` and ``labels`` from the context; ``env``, the process environment
        overlaid with the task's ``env`` (``os.environ`` itself is left alone: the worker
        process is shared); ``print`` (INFO lines, WARN for ``file=sys.stderr``) and
        ``logger``, both writing to the task's logs; and ``Kestrel`` (alias ``Kestra``,
        also what ``from kestra import Kestra`` gives), whose ``outputs({...})`` sets
        ``outputs.<id>.vars``.

        Returns:
            ``{"exitCode": 0, "vars": {...}}``, Kestra's script outputs.

        Raises:
            TaskError: A before-command failed, or the script raised (the message is the
                exception's last line and the script line; the traceback is logged).
        """
        env = {**os.environ, **self.env}
        if not self.uses_files():
            return await self._run(ctx, env, None)

        async def body(workdir: pathlib.Path) -> dict[str, Any]:
            return await self._run(ctx, env, workdir)

        return await run_with_files(ctx, self, body)

    async def _run(
        self, ctx: RunContext, env: dict[str, str], workdir: pathlib.Path | None
    ) -> dict[str, Any]:
        if self.before_commands:
            argv = ["/bin/sh", "-c", _shell_script(self.before_commands, True)]
            done = await _run_process(ctx, argv, env, workdir)
            if done.code != 0:
                raise TaskError(f"beforeCommands exited with code {done.code}{done.detail()}")
        if workdir is None:
            return await _run_script(self.script, ctx, env)
        async with current_directory(workdir):
            return await _run_script(self.script, ctx, env)


@register_type("python.Function")
class PythonFunction(RunnableTask):
    """Call ``package.module:function`` with rendered ``kwargs``: the Ray-native task.

    A dict return value becomes the outputs, any other value ``outputs.value``.
    """

    function: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")]
    # AliasChoices, not a plain alias: the pydantic mypy plugin would clash with **kwargs.
    call_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("kwargs"),
        serialization_alias="kwargs",
    )

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Import the function and call it with ``kwargs``.

        A coroutine function is awaited on the worker's loop; a plain function runs in a
        thread. A function with a parameter named ``ctx`` or ``kestrel_ctx`` (not set in
        ``kwargs``) receives the `RunContext`.

        Returns:
            The function's dict; ``{"value": result}`` for any other value; ``{}`` for None.

        Raises:
            TaskError: Not retriable when the function cannot be imported or does not
                accept the arguments. Exceptions the function raises propagate.
        """
        func = await _load_function(self.function)
        kwargs = dict(self.call_kwargs)
        name = _context_parameter(func)
        if name is not None and name not in kwargs:
            kwargs[name] = ctx
        _check_arguments(func, kwargs, self.function)
        if inspect.iscoroutinefunction(func):
            result = await func(**kwargs)
        else:
            result = await _in_thread(lambda: func(**kwargs), f"kestrel-fn-{ctx.task_id}")
            if inspect.isawaitable(result):
                result = await result
        if result is None:
            return {}
        if isinstance(result, Mapping):
            return {str(key): value for key, value in result.items()}
        return {"value": result}


@register_type("scripts.Shell", aliases=("io.kestra.plugin.scripts.shell.Commands",))
class ShellCommands(RunnableTask, TaskFiles):
    """Run shell commands; stdout and stderr go to the logs, the exit code to outputs."""

    commands: Annotated[list[str], Field(min_length=1)]
    env: dict[str, str] = Field(default_factory=dict)
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    fail_fast: bool = True

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Run the commands as one script, as Kestra does, in a fresh working directory.

        The commands are joined with newlines and passed to ``interpreter`` (so ``cd`` and
        ``export`` carry over); with ``failFast`` and a POSIX shell interpreter the script
        starts with ``set -e``, stopping at the first failing command. Without it, the
        last command's exit code decides. The environment is the process's overlaid with
        ``env``. stdout lines are INFO logs and stderr lines WARN logs, as they come; a
        stdout line ``::{"outputs": {...}}::`` sets ``outputs.<id>.vars`` instead.

        Returns:
            ``{"exitCode": 0, "vars": {...}}``.

        Raises:
            TaskError: The script exited with a non-zero code, or could not start.
        """
        if not self.uses_files():
            return await self._run(ctx, None)

        async def body(workdir: pathlib.Path) -> dict[str, Any]:
            return await self._run(ctx, workdir)

        return await run_with_files(ctx, self, body)

    async def _run(self, ctx: RunContext, workdir: pathlib.Path | None) -> dict[str, Any]:
        fail_fast = self.fail_fast and _is_posix_shell(self.interpreter)
        script = _shell_script(self.commands, fail_fast)
        argv = [*self.interpreter, script]
        done = await _run_process(ctx, argv, {**os.environ, **self.env}, workdir)
        if done.code != 0:
            raise TaskError(f"commands exited with code {done.code}{done.detail()}")
        return {"exitCode": done.code, "vars": done.vars}


class KVType(StrEnum):
    """The type a KV value is stored as, with Kestra's names (the store uses this one)."""

    STRING = "STRING"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    DATETIME = "DATETIME"
    DATE = "DATE"
    DURATION = "DURATION"
    JSON = "JSON"


@register_type("kv.Set", aliases=("io.kestra.plugin.core.kv.Set",))
class KVSet(RunnableTask):
    """Store a value in the namespace's key-value store."""

    key: str
    value: Any
    namespace: str | None = None
    overwrite: bool = True
    ttl: Duration | None = None
    kv_type: KVType | None = None

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Store the value (in the flow's namespace unless ``namespace`` is set).

        Returns:
            ``{}``: kv.Set has no outputs.

        Raises:
            TaskError: ``overwrite: false`` and the key exists, or the value does not fit
                ``kvType`` (both not retriable), or the store failed.
        """
        await ctx.kv_set(
            self.key,
            self.value,
            namespace=self.namespace or ctx.namespace,
            ttl=self.ttl,
            kv_type=None if self.kv_type is None else self.kv_type.value,
            overwrite=self.overwrite,
        )
        return {}


@register_type("kv.Get", aliases=("io.kestra.plugin.core.kv.Get",))
class KVGet(RunnableTask):
    """Read a value from the key-value store into ``outputs.<id>.value``."""

    key: str
    namespace: str | None = None
    error_on_missing: bool = False

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Read the key (in the flow's namespace unless ``namespace`` is set).

        Returns:
            ``{"value": value}``; the value is None for a missing or expired key.

        Raises:
            TaskError: The key is missing and ``errorOnMissing`` (not retriable).
        """
        namespace = self.namespace or ctx.namespace
        found, value = await ctx.kv_get(self.key, namespace=namespace)
        if not found and self.error_on_missing:
            raise TaskError(
                f"key '{self.key}' not found in namespace '{namespace}'", retriable=False
            )
        return {"value": value if found else None}


@register_type("kv.Delete", aliases=("io.kestra.plugin.core.kv.Delete",))
class KVDelete(RunnableTask):
    """Delete a key; ``outputs.<id>.deleted`` says whether it existed."""

    key: str
    namespace: str | None = None
    error_on_missing: bool = False

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Delete the key (in the flow's namespace unless ``namespace`` is set).

        Returns:
            ``{"deleted": bool}``: whether a live value existed.

        Raises:
            TaskError: The key is missing and ``errorOnMissing`` (not retriable).
        """
        namespace = self.namespace or ctx.namespace
        deleted = await ctx.kv_delete(self.key, namespace=namespace)
        if not deleted and self.error_on_missing:
            raise TaskError(
                f"key '{self.key}' not found in namespace '{namespace}'", retriable=False
            )
        return {"deleted": deleted}


# ---- blocking code in a thread, interruptible ---------------------------------------------

_T = TypeVar("_T")


class _Interrupted(BaseException):
    """Raised inside a task's thread when its attempt was cancelled (timeout, kill)."""


class _ThreadGuard:
    """Interrupts a thread only while it still runs the task's code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = True

    def finish(self) -> None:
        with self._lock:
            self._running = False

    def interrupt(self, thread: threading.Thread) -> None:
        with self._lock:
            if self._running and thread.ident is not None:
                _raise_in_thread(thread.ident, _Interrupted)
                self._running = False


def _raise_in_thread(ident: int, exc_type: type[BaseException]) -> None:
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    if set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(exc_type)) > 1:
        set_async_exc(ctypes.c_ulong(ident), None)  # more than one thread: undo


async def _in_thread(fn: Callable[[], _T], name: str) -> _T:
    """``fn()`` in a new daemon thread; cancelling the await interrupts the thread."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()
    guard = _ThreadGuard()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def target() -> None:
        try:
            try:
                result = fn()
            except (SystemExit, KeyboardInterrupt) as exc:
                # Never let these reach the event loop: they would stop it.
                guard.finish()
                error = TaskError(f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
                _call_soon(loop, settle, None, error)
            except BaseException as exc:
                guard.finish()
                _call_soon(loop, settle, None, exc)
            else:
                guard.finish()
                _call_soon(loop, settle, result, None)
        except _Interrupted:
            pass  # the interrupt landed after the code returned: nobody waits any more

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        return await done
    except asyncio.CancelledError:
        guard.interrupt(thread)
        raise


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(fn, *args)


# ---- scripts.Python -----------------------------------------------------------------------

_SCRIPT_VARIABLES = ("inputs", "vars", "outputs", "execution", "flow", "taskrun", "labels")


class _ScriptExit(Exception):
    """The script called ``sys.exit`` with a failure code."""


class _LineSink:
    """A text stream that turns complete lines into log lines of one level."""

    def __init__(self, ctx: RunContext, level: str) -> None:
        self._ctx = ctx
        self._level = level
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
            for line in lines:
                self._ctx.log(self._level, line)
        return len(text)

    def close(self) -> None:
        with self._lock:
            rest, self._pending = self._pending, ""
            if rest:
                self._ctx.log(self._level, rest)


def _level_name(levelno: int) -> str:
    """Kestra's level name of a `logging` level number."""
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG" if levelno >= logging.DEBUG else "TRACE"


class _ContextLogHandler(logging.Handler):
    """Sends log records to the task's logs."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__()
        self._ctx = ctx
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._ctx.log(_level_name(record.levelno), self.format(record))
        except Exception:
            self.handleError(record)


class _KestraHelper:
    """``Kestrel``/``Kestra`` inside a script: Kestra's Python helper, for this attempt."""

    def __init__(self, ctx: RunContext, logger: logging.Logger) -> None:
        self.vars: dict[str, Any] = {}
        self._ctx = ctx
        self._logger = logger

    def outputs(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into the task's ``outputs.<id>.vars``."""
        if not isinstance(values, Mapping):
            raise TypeError(f"outputs() takes a dict, not {type(values).__name__}")
        self.vars.update({str(k): v for k, v in values.items()})

    def counter(self, name: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        """Record a counter metric (as a DEBUG log line)."""
        self._ctx.log("DEBUG", f"metric counter {name}={value} tags={dict(tags or {})}")

    def timer(self, name: str, duration: Any, tags: Mapping[str, Any] | None = None) -> None:
        """Record a timer metric in seconds; a callable ``duration`` is called and timed."""
        if callable(duration):
            started = time.perf_counter()
            duration()
            duration = time.perf_counter() - started
        self._ctx.log("DEBUG", f"metric timer {name}={duration}s tags={dict(tags or {})}")

    def logger(self) -> logging.Logger:
        """The script's logger (the ``logger`` global)."""
        return self._logger


@dataclass
class _ScriptIO:
    """What one script run writes to: its sinks, its logger and its outputs helper."""

    stdout: _LineSink
    stderr: _LineSink
    handler: _ContextLogHandler
    logger: logging.Logger
    helper: _KestraHelper

    @classmethod
    def open(cls, ctx: RunContext) -> _ScriptIO:
        handler = _ContextLogHandler(ctx)
        # A Logger made directly is not in logging's registry: concurrent scripts in the
        # same process each get their own, and none is kept after the run.
        logger = logging.Logger(f"kestrel.script.{ctx.task_id}", logging.NOTSET)
        logger.propagate = False
        logger.addHandler(handler)
        return cls(
            stdout=_LineSink(ctx, "INFO"),
            stderr=_LineSink(ctx, "WARN"),
            handler=handler,
            logger=logger,
            helper=_KestraHelper(ctx, logger),
        )

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()
        self.logger.removeHandler(self.handler)
        self.handler.close()

    def print(
        self,
        *values: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        """The script's ``print``: stdout to INFO logs, ``file=sys.stderr`` to WARN."""
        if file is not None and file is not sys.stdout and file is not sys.stderr:
            builtins.print(*values, sep=sep, end=end, file=file, flush=flush)
            return
        sink = self.stderr if file is sys.stderr else self.stdout
        text = (" " if sep is None else sep).join(map(str, values))
        sink.write(text + ("\n" if end is None else end))


def _script_globals(ctx: RunContext, env: dict[str, str], io: _ScriptIO) -> dict[str, Any]:
    kestra = types.ModuleType("kestra", "Kestra's script helper, provided by Kestrel.")
    kestra.Kestra = io.helper  # type: ignore[attr-defined]
    real_import = builtins.__import__

    def script_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: tuple[str, ...] | list[str] = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and name == "kestra":
            return kestra
        return real_import(name, globals, locals, fromlist, level)

    script_builtins = dict(vars(builtins))
    script_builtins["print"] = io.print
    script_builtins["__import__"] = script_import
    variables = ctx.variables
    values: dict[str, Any] = {name: variables.get(name, {}) for name in _SCRIPT_VARIABLES}
    return {
        "__name__": "__main__",
        "__builtins__": script_builtins,
        **values,
        "trigger": variables.get("trigger"),
        "env": env,
        "print": io.print,
        "logger": io.logger,
        "Kestrel": io.helper,
        "Kestra": io.helper,
    }


def _exec(code: types.CodeType, script_globals: dict[str, Any]) -> None:
    try:
        exec(code, script_globals)  # noqa: S102 - running the user's script is the point
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise _ScriptExit(f"script exited with code {exc.code}") from exc


async def _run_script(source: str, ctx: RunContext, env: dict[str, str]) -> dict[str, Any]:
    filename = f"<script {ctx.task_id} {ctx.task_run_id}#{ctx.attempt}>"
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        message = f"SyntaxError: {exc.msg} (script line {exc.lineno})"
        raise TaskError(message, retriable=False) from None
    io = _ScriptIO.open(ctx)
    script_globals = _script_globals(ctx, env, io)
    # Tracebacks show the script's lines; mtime None keeps linecache from dropping them.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        await _in_thread(lambda: _exec(code, script_globals), f"kestrel-script-{ctx.task_id}")
    except _ScriptExit as exc:
        line = _script_line(exc.__cause__, filename)
        raise TaskError(f"{exc}{line}") from None
    except Exception as exc:
        raise _script_error(exc, filename, ctx) from None
    finally:
        io.close()
        linecache.cache.pop(filename, None)
    return {"exitCode": 0, "vars": io.helper.vars}


def _script_line(exc: BaseException | None, filename: str) -> str:
    """`` (script line N)`` for the innermost script frame of ``exc``'s traceback."""
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None else []
    line = next((f.lineno for f in reversed(frames) if f.filename == filename), None)
    return f" (script line {line})" if line else ""


def _script_error(exc: Exception, filename: str, ctx: RunContext) -> TaskError:
    """Log the traceback (from the script's first frame) and make the task's error."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    ctx.log("ERROR", "".join(traceback.format_exception(type(exc), exc, tb)).rstrip())
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    retriable = exc.retriable if isinstance(exc, TaskError) else True
    return TaskError(f"{last}{_script_line(exc, filename)}", retriable=retriable)


# ---- python.Function ----------------------------------------------------------------------

_CONTEXT_PARAMETERS = ("kestrel_ctx", "ctx")


async def _load_function(ref: str) -> Callable[..., Any]:
    module_name, _, path = ref.partition(":")
    try:
        if module_name in sys.modules:
            module = importlib.import_module(module_name)
        else:  # a first import can be slow: keep the loop free
            module = await asyncio.to_thread(importlib.import_module, module_name)
        target: Any = module
        for part in path.split("."):
            target = getattr(target, part)
    except Exception as exc:
        raise TaskError(
            f"cannot load function '{ref}': {type(exc).__name__}: {exc}", retriable=False
        ) from exc
    if not callable(target):
        raise TaskError(f"'{ref}' is not callable", retriable=False)
    return target  # type: ignore[no-any-return]


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    """``inspect.signature``, once per function (it is slow, and tasks call one repeatedly)."""
    try:
        return _cached_signature(func)
    except TypeError:  # an unhashable callable
        return _cached_signature.__wrapped__(func)


@functools.lru_cache(maxsize=1024)
def _cached_signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None  # some builtins have no signature


def _context_parameter(func: Callable[..., Any]) -> str | None:
    """The parameter that receives the `RunContext`, if the function declares one."""
    signature = _signature(func)
    if signature is None:
        return None
    parameters = signature.parameters
    for name in _CONTEXT_PARAMETERS:
        param = parameters.get(name)
        if param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            return name
    return None


def _check_arguments(func: Callable[..., Any], kwargs: dict[str, Any], ref: str) -> None:
    signature = _signature(func)
    if signature is None:
        return  # let the call decide
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        message = f"cannot call '{ref}' with kwargs {sorted(kwargs)}: {exc}"
        raise TaskError(message, retriable=False) from None


# ---- subprocesses -------------------------------------------------------------------------

_POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"})
_READ_CHUNK = 64 * 1024
_MAX_LINE = 1024 * 1024  # a longer line is logged in pieces
_REAP_S = 5.0  # after a kill, how long to wait for the pipes to close


def _is_posix_shell(interpreter: list[str]) -> bool:
    return bool(interpreter) and os.path.basename(interpreter[0]) in _POSIX_SHELLS


def _shell_script(commands: list[str], fail_fast: bool) -> str:
    return "\n".join(["set -e", *commands] if fail_fast else commands)


@dataclass
class _ProcessResult:
    """A finished subprocess: exit code, ``::{"outputs": ...}::`` vars, last stderr line."""

    ctx: RunContext
    code: int = 0
    vars: dict[str, Any] = field(default_factory=dict)
    last_stderr: str = ""

    def stdout_line(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("::{") and stripped.endswith("}::"):
            try:
                data = json.loads(stripped[2:-2])
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("outputs"), dict):
                self.vars.update(data["outputs"])
                return
            if isinstance(data, dict) and "metrics" in data:
                self.ctx.log("DEBUG", f"metrics {data['metrics']}")
                return
        self.ctx.log("INFO", line)

    def stderr_line(self, line: str) -> None:
        if line.strip():
            self.last_stderr = line.strip()
        self.ctx.log("WARN", line)

    def detail(self) -> str:
        return f": {self.last_stderr[:300]}" if self.last_stderr else ""


async def _pump(stream: asyncio.StreamReader, on_line: Callable[[str], None]) -> None:
    """Feed each line of ``stream`` to ``on_line`` as it arrives."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while chunk := await stream.read(_READ_CHUNK):
        *lines, pending = (pending + decoder.decode(chunk)).split("\n")
        for line in lines:
            on_line(line.removesuffix("\r"))
        while len(pending) > _MAX_LINE:
            on_line(pending[:_MAX_LINE])
            pending = pending[_MAX_LINE:]
    pending += decoder.decode(b"", final=True)
    if pending:
        on_line(pending.removesuffix("\r"))


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _run_process(
    ctx: RunContext,
    argv: list[str],
    env: dict[str, str],
    cwd: pathlib.Path | None = None,
) -> _ProcessResult:
    """Run ``argv`` in a new session and `cwd` (a fresh directory when None), streaming."""
    result = _ProcessResult(ctx)
    with contextlib.ExitStack() as stack:
        workdir = cwd or stack.enter_context(working_directory())
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
        except OSError as exc:
            raise TaskError(f"cannot start '{argv[0]}': {exc}", retriable=False) from exc
        assert proc.stdout is not None and proc.stderr is not None
        readers: set[asyncio.Future[None]] = {
            asyncio.ensure_future(_pump(proc.stdout, result.stdout_line)),
            asyncio.ensure_future(_pump(proc.stderr, result.stderr_line)),
        }
        try:
            # Until both pipes close: background children that keep them open keep the
            # task running (until its timeout kills the whole process group).
            await asyncio.wait(readers)
            result.code = await proc.wait()
        except BaseException:
            _kill_group(proc)
            await _reap(proc, readers)
            raise
        for reader in readers:
            reader.result()
    return result


async def _reap(proc: asyncio.subprocess.Process, readers: set[asyncio.Future[None]]) -> None:
    """After a kill: let the pipes drain and the process be waited for, within a bound."""
    futures: set[asyncio.Future[Any]] = {*readers, asyncio.ensure_future(proc.wait())}
    _, pending = await asyncio.wait(futures, timeout=_REAP_S)
    for future in pending:
        future.cancel()
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: no "never retrieved" warning
