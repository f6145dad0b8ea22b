"""Asking Ray's autoscaler for capacity ahead of a backlog.

When the execution pool is at its largest and still saturated, the work waiting is more
than the cluster's warm capacity: the pool asks Ray's autoscaler for one CPU per running
execution (`ray.autoscaler.sdk.request_resources`), so on KubeRay or ``ray up`` a backlog
adds worker nodes before Ray tasks queue for them. Once the pool is no longer saturated
the request is withdrawn (an empty request), and the autoscaler may scale down again.
On a cluster without an autoscaler the request is recorded and nothing else happens.
"""

from __future__ import annotations

import asyncio
import logging

import ray

_log = logging.getLogger(__name__)

MAX_REQUEST_CPUS = 1024
"""The most CPUs one request asks for."""


class CapacityRequest:
    """The pool's standing request to Ray's autoscaler; sent only when it changes."""

    def __init__(self) -> None:
        self.cpus = 0
        """The CPUs asked for now (0: no request)."""

    async def ask(self, cpus: int) -> None:
        """Ask for `cpus` CPUs (0 withdraws the request); nothing when unchanged."""
        cpus = max(0, min(cpus, MAX_REQUEST_CPUS))
        if cpus == self.cpus:
            return
        try:
            await asyncio.to_thread(_request, cpus)
        except Exception as exc:  # an autoscaler hint: never worth failing the pool for
            _log.warning("could not ask Ray's autoscaler for %d CPUs: %s", cpus, exc)
            return
        _log.info("asked Ray's autoscaler for %d CPUs", cpus)
        self.cpus = cpus


def _request(cpus: int) -> None:
    if not ray.is_initialized():
        return
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[{"CPU": 1} for _ in range(cpus)])
