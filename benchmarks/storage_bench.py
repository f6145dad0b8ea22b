"""Internal storage throughput: Kestrel's storage beside obstore's raw figure, per backend.

    python -m benchmarks.storage_bench [--files 1000] [--size-mib 1] [--concurrency 16]
                                       [--backends local,s3] [--out benchmarks/results]

For each backend (a local folder in a temporary directory; an S3-compatible server: the
SeaweedFS of the test fixtures, or ``KESTREL_TEST_S3_URL``) it writes ``--files`` files of
``--size-mib`` MiB and reads them back, ``--concurrency`` at a time:

* ``raw_put`` / ``raw_get``: obstore's ``put_async`` / ``get_async`` + ``bytes_async`` on
  the same store, keys as plain strings: the library's own figure.
* ``kestrel_put`` / ``kestrel_get``: `ObjectStorage.put` (bytes) and `ObjectStorage.get`
  (streamed chunks) with ``kestra:///`` URIs: the path tasks and the API take (URI
  checks, the local backend's symlink check, chunked reads).

Prints MiB/s and files/s per scenario and writes ``<out>/storage.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import obstore

from actors import ObjectStorage, StorageConfig
from flows import namespace_file_uri, storage_key

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024


async def _timed(
    count: int, concurrency: int, one: Callable[[int], Awaitable[int]]
) -> tuple[float, int]:
    """Run ``one(i)`` for every i, `concurrency` at a time; (seconds, bytes)."""
    limit = asyncio.Semaphore(concurrency)
    moved = 0

    async def run(i: int) -> None:
        nonlocal moved
        async with limit:
            done = await one(i)
        moved += done

    started = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(count)))
    return time.perf_counter() - started, moved


async def bench_backend(
    config: StorageConfig, files: int, size: int, concurrency: int
) -> dict[str, dict[str, float]]:
    """The four scenarios on one backend; ``{scenario: {mib_s, files_s, seconds}}``."""
    storage = ObjectStorage(config)
    store = storage._store  # the same obstore store, for the raw figure
    body = os.urandom(size)
    run = uuid.uuid4().hex
    raw_keys = [f"bench/{run}/raw/{i}.bin" for i in range(files)]
    uris = [namespace_file_uri("bench", f"{run}/kestrel/{i}.bin") for i in range(files)]

    async def raw_put(i: int) -> int:
        await obstore.put_async(store, raw_keys[i], body)
        return size

    async def raw_get(i: int) -> int:
        result = await obstore.get_async(store, raw_keys[i])
        return len(await result.bytes_async())

    async def kestrel_put(i: int) -> int:
        return await storage.put(uris[i], body)

    async def kestrel_get(i: int) -> int:
        return sum([len(chunk) async for chunk in storage.get(uris[i])])

    out: dict[str, dict[str, float]] = {}
    for name, one in (
        ("raw_put", raw_put),
        ("kestrel_put", kestrel_put),
        ("raw_get", raw_get),
        ("kestrel_get", kestrel_get),
    ):
        seconds, moved = await _timed(files, concurrency, one)
        assert moved == files * size, (name, moved)
        out[name] = {
            "seconds": round(seconds, 3),
            "mib_s": round(moved / MIB / seconds, 1),
            "files_s": round(files / seconds, 1),
        }
    await obstore.delete_async(store, raw_keys)
    await storage.delete_prefix(namespace_file_uri("bench", run) + "/")
    assert storage_key(uris[0])
    return out


@contextlib.contextmanager
def _configs(backends: list[str]) -> Iterator[dict[str, StorageConfig]]:
    with contextlib.ExitStack() as stack:
        configs: dict[str, StorageConfig] = {}
        if "local" in backends:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="kestrel-bench-"))
            configs["local"] = StorageConfig.local(folder)
        if "s3" in backends:
            from tests.servers import s3_server

            server = stack.enter_context(s3_server())
            configs["s3"] = StorageConfig.parse(
                f"s3://kestrel-bench/{uuid.uuid4().hex}", server.env()
            )
        yield configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.storage_bench", description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-mib", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    size = int(args.size_mib * MIB)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results: dict[str, Any] = {
        "files": args.files,
        "size_bytes": size,
        "concurrency": args.concurrency,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "backends": {},
    }
    with _configs(backends) as configs:
        for name, config in configs.items():
            results["backends"][name] = asyncio.run(
                bench_backend(config, args.files, size, args.concurrency)
            )
    print(f"{args.files} files of {size / MIB:g} MiB, {args.concurrency} at a time")
    print(f"{'backend':<8} {'scenario':<12} {'MiB/s':>8} {'files/s':>8}")
    for backend, scenarios in results["backends"].items():
        for scenario, figures in scenarios.items():
            print(f"{backend:<8} {scenario:<12} {figures['mib_s']:>8} {figures['files_s']:>8}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "storage.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
