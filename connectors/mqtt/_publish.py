"""The ``mqtt.Publish`` task's runtime: one cached connection per broker, client id and auth.

Connecting costs a TCP (and TLS) handshake and a CONNECT/CONNACK round trip, and part of it
runs in an executor thread; publishing on an open connection costs one PUBLISH/PUBACK
round trip. So connections are kept per event loop (a worker's tasks share its loop) and
per connection options, and reused by the next task; a lost one is replaced. A publisher
connection uses a clean session: it has nothing to resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import weakref
from typing import TYPE_CHECKING, Any

from flows import ConnectorError, RunContext, TaskError

from ._client import AioMqttClient
from ._options import DEFAULT_CONNECT_TIMEOUT_S, ConnectOptions, split_server
from ._serde import SerdeError, serialize
from ._types import MqttVersion

if TYPE_CHECKING:
    from ._types import MqttPublish

_PUBLISH_TIMEOUT_S = 30.0
"""Longest wait for the broker's acknowledgement of one message."""


class _Pool:
    """The connections of one event loop, by connection options."""

    def __init__(self) -> None:
        self.clients: dict[ConnectOptions, AioMqttClient] = {}
        self.locks: dict[ConnectOptions, asyncio.Lock] = {}

    async def get(self, key: ConnectOptions) -> AioMqttClient:
        """The open connection for `key`; a new one if there is none or it was lost.

        A key without client id connects with a random ``kestrel-pub-...`` id.
        """
        async with self.locks.setdefault(key, asyncio.Lock()):
            client = self.clients.get(key)
            if client is not None and client.connected:
                return client
            if client is not None:
                del self.clients[key]
                await client.close()
            options = key
            if not key.client_id:
                options = dataclasses.replace(key, client_id=f"kestrel-pub-{secrets.token_hex(8)}")
            client = AioMqttClient(options)
            await client.connect()
            self.clients[key] = client
            return client

    async def close(self) -> None:
        """Disconnect every connection."""
        clients = list(self.clients.values())
        self.clients.clear()
        for client in clients:
            await client.close()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _Pool()
    return pool


async def close_publish_clients() -> None:
    """Disconnect the ``mqtt.Publish`` connections kept for the running event loop."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


def _pool_key(task: MqttPublish) -> ConnectOptions:
    """Connection options, without client id when the task has none (any id will do)."""
    try:
        host, port, tls = split_server(task.server)
    except ConnectorError as exc:
        raise TaskError(str(exc), retriable=False) from exc
    timeout = task.connection_timeout
    return ConnectOptions(
        host=host,
        port=port,
        tls=tls,
        crt=task.crt,
        verify_hostname=task.https_hostname_verification_enabled is not False,
        v5=task.mqtt_version is MqttVersion.V5,
        client_id=task.client_id or "",
        clean=True,
        session_expiry_s=0,
        receive_maximum=None,
        username=task.username,
        password=task.password,
        timeout_s=timeout.total_seconds() if timeout else DEFAULT_CONNECT_TIMEOUT_S,
    )


async def publish(task: MqttPublish, ctx: RunContext) -> dict[str, Any]:
    """Publish the task's message and wait for the broker's acknowledgement.

    Returns:
        ``{"messagesCount": 1}``.

    Raises:
        TaskError: The payload does not fit ``serdeType`` (not retriable), or the broker
            is unreachable, refused the message or did not acknowledge it in time.
    """
    try:
        payload = serialize(task.from_, task.serde_type)
    except SerdeError as exc:
        raise TaskError(str(exc), retriable=False) from exc
    key = _pool_key(task)
    try:
        client = await _pool().get(key)
        await client.publish(
            task.topic, payload, qos=task.qos, retain=task.retain, timeout_s=_PUBLISH_TIMEOUT_S
        )
    except ConnectorError as exc:
        raise TaskError(f"mqtt.Publish to {task.server} '{task.topic}': {exc}") from exc
    ctx.log("DEBUG", f"published {len(payload)} bytes on '{task.topic}' (qos {task.qos})")
    return {"messagesCount": 1}
