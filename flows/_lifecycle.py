"""The one lifecycle contract for everything long-lived."""

from __future__ import annotations

import abc
import asyncio
import logging
from types import TracebackType
from typing import Self

_log = logging.getLogger("kestrel.lifecycle")


class Service(abc.ABC):
    """Something long-lived: `start()` and `stop()` are idempotent, and it is an async context.

    Subclasses implement `_start` and `_stop`; this class makes both safe to call twice and
    safe to call concurrently.
    """

    def __init__(self) -> None:
        self._started = False
        self._stopped = False
        self._lifecycle_lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        """True between a successful `start()` and `stop()`."""
        return self._started and not self._stopped

    async def start(self) -> None:
        """Start the service; a second call does nothing.

        A `_start` that fails is unwound at once: `_stop` runs (it must cope with a half
        started service, as it releases only what exists), so nothing it opened leaks
        and `start()` may be tried again. The error of `_start` is raised.
        """
        async with self._lifecycle_lock:
            if self._started:
                return
            try:
                await self._start()
            except BaseException:
                try:
                    await self._stop()
                except Exception as unwinding:
                    _log.warning(
                        "%s: unwinding a failed start failed too: %r",
                        type(self).__name__,
                        unwinding,
                    )
                raise
            self._started = True

    async def stop(self) -> None:
        """Stop the service; safe to call twice, and before `start()`."""
        async with self._lifecycle_lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
            await self._stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @abc.abstractmethod
    async def _start(self) -> None:
        """Acquire resources."""

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Release resources; called at most once."""
