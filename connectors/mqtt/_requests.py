"""Requests on one MQTT connection that wait for the broker's answer.

SUBSCRIBE waits for its SUBACK, UNSUBSCRIBE for its UNSUBACK, PUBLISH for its PUBACK or
PUBCOMP (or for being written, at QoS 0). paho reports each answer by packet id to a
callback on the loop's thread; `Requests` keeps a future per outstanding packet id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flows import ConnectorError

from ._options import ConnectOptions, failed


class Requests:
    """The outstanding SUBSCRIBE, UNSUBSCRIBE and PUBLISH requests of one connection.

    Args:
        client: The paho client; its ``on_subscribe``, ``on_unsubscribe`` and
            ``on_publish`` callbacks are set here.
        options: The connection's options (server, protocol version, timeout).
        loop: The running loop.
        lost: The reason the connection was lost, or None while it is not.
        connected: Whether the connection is up (publishing needs it).
    """

    def __init__(
        self,
        client: paho.Client,
        options: ConnectOptions,
        loop: asyncio.AbstractEventLoop,
        *,
        lost: Callable[[], str | None],
        connected: Callable[[], bool],
    ) -> None:
        self._client = client
        self._options = options
        self._loop = loop
        self._lost = lost
        self._connected = connected
        self._waiters: dict[tuple[str, int], asyncio.Future[list[ReasonCode]]] = {}
        client.on_subscribe = self._subscribed
        client.on_unsubscribe = self._unsubscribed
        client.on_publish = self._published

    def fail(self, error: ConnectorError) -> None:
        """End every outstanding request with ``error``."""
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()

    # ---- paho callbacks (loop thread) ----

    def _resolve(self, kind: str, mid: int, codes: list[ReasonCode]) -> None:
        future = self._waiters.pop((kind, mid), None)
        if future is not None and not future.done():
            future.set_result(codes)

    def _subscribed(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        self._resolve("sub", mid, codes)

    def _unsubscribed(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        self._resolve("unsub", mid, codes)

    def _published(
        self, _c: paho.Client, _u: Any, mid: int, code: ReasonCode, _p: Properties
    ) -> None:
        self._resolve("pub", mid, [code])

    # ---- requests ----

    def _check(self, rc: MQTTErrorCode, what: str) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectorError(
                f"MQTT {self._options.server}: {what} failed: {paho.error_string(rc)}"
            )

    def _waiter(self, kind: str, mid: int) -> asyncio.Future[list[ReasonCode]]:
        lost = self._lost()
        if lost is not None:
            raise ConnectorError(f"MQTT connection to {self._options.server} lost: {lost}")
        future: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._waiters[(kind, mid)] = future
        return future

    async def _wait(
        self, future: asyncio.Future[list[ReasonCode]], what: str, timeout_s: float
    ) -> list[ReasonCode]:
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as exc:
            raise ConnectorError(
                f"MQTT {self._options.server}: no answer to {what} in {timeout_s:g}s"
            ) from exc

    async def subscribe(self, filters: list[tuple[str, int]], *, retain_if_new: bool) -> None:
        """Subscribe to topic filters with their maximum QoS, and wait for the SUBACK.

        Args:
            filters: ``(topic filter, qos)`` pairs.
            retain_if_new: MQTT 5: retained messages only for a new subscription (not
                again when a resumed session already has it).

        Raises:
            ConnectorError: The broker refused a filter, or the connection failed.
        """
        request: list[tuple[str, Any]]
        if self._options.v5:
            handling = (
                SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
                if retain_if_new
                else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
            )
            request = [(t, SubscribeOptions(qos=q, retainHandling=handling)) for t, q in filters]
        else:
            request = list(filters)
        rc, mid = self._client.subscribe(request)
        self._check(rc, "SUBSCRIBE")
        assert mid is not None
        codes = await self._wait(self._waiter("sub", mid), "SUBSCRIBE", self._options.timeout_s)
        refused = [f"'{t}': {c}" for (t, _), c in zip(filters, codes, strict=False) if failed(c)]
        if refused:
            raise ConnectorError(
                f"MQTT {self._options.server} refused the subscription: {', '.join(refused)}"
            )

    async def unsubscribe(self, topics: list[str]) -> None:
        """Remove subscriptions from the session and wait for the UNSUBACK."""
        rc, mid = self._client.unsubscribe(topics)
        self._check(rc, "UNSUBSCRIBE")
        assert mid is not None
        await self._wait(self._waiter("unsub", mid), "UNSUBSCRIBE", self._options.timeout_s)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, timeout_s: float
    ) -> None:
        """Publish and wait until it is complete (PUBACK, PUBCOMP, or written for QoS 0).

        Raises:
            ConnectorError: The broker refused it, the connection failed, or no
                acknowledgement came within `timeout_s`.
        """
        if not self._connected():
            raise ConnectorError(f"MQTT {self._options.server}: not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        self._check(info.rc, "PUBLISH")
        future = self._waiter("pub", info.mid)
        try:
            codes = await self._wait(future, "PUBLISH", timeout_s)
        finally:
            self._waiters.pop(("pub", info.mid), None)
        if codes and failed(codes[0]):
            raise ConnectorError(f"MQTT {self._options.server} refused the message: {codes[0]}")
