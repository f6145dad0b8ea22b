"""One Ray for the whole test session: join ``KESTREL_TEST_RAY_ADDRESS``/``RAY_ADDRESS``
or start a private local instance (2 CPUs, no dashboard).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.servers._process import STARTUP_SECONDS, ServerStartError

ENV_ADDRESS = "KESTREL_TEST_RAY_ADDRESS"
RAY_ENV_ADDRESS = "RAY_ADDRESS"
NUM_CPUS = 2
OBJECT_STORE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class RayCluster:
    """The Ray this test session's driver is connected to.

    Attributes:
        address: GCS address (``host:port``) other drivers can join with ``ray.init``.
        session_dir: The Ray session directory (its logs live under ``logs/``).
        owned: True if the fixture started this Ray (and shuts it down at the end).
    """

    address: str
    session_dir: str | None
    owned: bool


def _info_from_context(context: Any, owned: bool) -> RayCluster:
    info: dict[str, Any] = dict(getattr(context, "address_info", {}) or {})
    address = info.get("gcs_address") or info.get("address") or ""
    return RayCluster(address=str(address), session_dir=info.get("session_dir"), owned=owned)


@contextlib.contextmanager
def ray_session() -> Iterator[RayCluster]:
    """Connect this process to Ray for the block; shut down only what we started/joined."""
    import ray

    if ray.is_initialized():
        # Someone in this process already called ray.init(); share it, leave it alone.
        address = str(getattr(ray.get_runtime_context(), "gcs_address", "") or "")
        yield RayCluster(address=address, session_dir=None, owned=False)
        return

    started = time.monotonic()
    external = os.environ.get(ENV_ADDRESS) or os.environ.get(RAY_ENV_ADDRESS)
    try:
        if external:
            context = ray.init(address=external, include_dashboard=False)
        else:
            context = ray.init(
                # "local" always starts a new instance, never an unrelated `ray start` one.
                address="local",
                num_cpus=NUM_CPUS,
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                # Keep every Ray socket on loopback: tests talk to this machine only.
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
            )
    except Exception as exc:
        where = f"address {external!r}" if external else "a local instance"
        raise ServerStartError(f"could not start/join Ray ({where}): {exc!r}") from exc
    STARTUP_SECONDS["ray (joined)" if external else "ray"] = time.monotonic() - started
    try:
        yield _info_from_context(context, owned=not external)
    finally:
        ray.shutdown()
