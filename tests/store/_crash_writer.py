"""A child process for the crash tests: writes executions, then waits to be SIGKILLed.

``python -m tests.store._crash_writer DSN hold DEDUPE_KEY``
    Runs the real batch write path for one execution with three task runs inside a
    transaction, prints ``WRITTEN <id>`` before COMMIT, and waits forever.
``python -m tests.store._crash_writer DSN loop NAMESPACE``
    Creates executions (each with three task runs) through a batching `Store` from 20
    concurrent tasks, printing ``DURABLE <id>`` as each create returns, forever.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from actors._store import NewExecution, NewTaskRun, Store
from actors._store._json import init_connection
from actors._store._ops import CreateOp
from actors._store._writer import apply_ops


def _execution(namespace: str, dedupe_key: str | None) -> NewExecution:
    return NewExecution(
        namespace=namespace,
        flow_id="crash",
        flow_revision=1,
        dedupe_key=dedupe_key,
        task_runs=tuple(NewTaskRun(task_id=f"t{i}") for i in range(3)),
    )


async def hold(dsn: str, dedupe_key: str) -> None:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    transaction = conn.transaction()
    await transaction.start()
    new = _execution("crash.hold", dedupe_key)
    (outcome,) = await apply_ops(conn, [CreateOp.of(new)])
    print(f"WRITTEN {new.id} {type(outcome).__name__}", flush=True)
    await asyncio.Event().wait()  # killed here, before COMMIT


async def loop(dsn: str, namespace: str) -> None:
    async with Store(dsn, min_connections=1, max_connections=4) as store:

        async def writer() -> None:
            while True:
                result = await store.create_execution(_execution(namespace, None))
                print(f"DURABLE {result.execution.id}", flush=True)

        await asyncio.gather(*(writer() for _ in range(20)))


if __name__ == "__main__":
    dsn_arg, mode, arg = sys.argv[1:4]
    asyncio.run(hold(dsn_arg, arg) if mode == "hold" else loop(dsn_arg, arg))
