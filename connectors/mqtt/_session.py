"""What an MQTT trigger keeps in its cursor: its session's subscriptions and open keys.

The broker keeps a persistent session per client id; the cursor records which filters
that session holds (so a resumed session is not subscribed again, which would resend
retained messages under MQTT 3.1.1) and the dedupe keys of deliveries not PUBACKed
(`DeliveryKeys`), for the next listener of the trigger.
"""

from __future__ import annotations

from typing import Any

from flows import ConnectorError, ListenerContext

from ._client import AioMqttClient
from ._keys import DeliveryKeys


def _subscriptions(saved: Any) -> list[list[Any]] | None:
    """The ``subscriptions`` part of a saved cursor (``[[filter, qos], ...]``), or None."""
    if not isinstance(saved, list):
        return None
    pairs = [
        p
        for p in saved
        if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and p[1] in (0, 1, 2)
    ]
    return pairs if len(pairs) == len(saved) else None


class SessionCursor:
    """Loads, saves and applies one trigger's cursor.

    Args:
        ctx: The host's context (the cursor's storage).
        keys: The trigger's dedupe keys (taken over on load, saved on close).
    """

    def __init__(self, ctx: ListenerContext, keys: DeliveryKeys) -> None:
        self._ctx = ctx
        self._keys = keys
        self._cursor: dict[str, Any] | None = None
        self._saved: dict[str, Any] = {}

    @property
    def loaded(self) -> bool:
        """Whether the cursor was loaded (so there is something to save)."""
        return self._cursor is not None

    async def load(self) -> None:
        """Load the cursor once; take over the keys it holds.

        Raises:
            ConnectorError: The cursor could not be read.
        """
        if self._cursor is not None:
            return
        try:
            cursor = await self._ctx.load_cursor()
        except Exception as exc:
            raise ConnectorError(f"cannot load the trigger's cursor: {exc}") from exc
        self._cursor = dict(cursor) if isinstance(cursor, dict) else {}
        self._saved = dict(self._cursor)
        self._keys.take_over(self._cursor.get("open"))
        subscriptions = _subscriptions(self._cursor.get("subscriptions"))
        self._cursor.pop("subscriptions", None)
        if subscriptions is not None:
            self._cursor["subscriptions"] = subscriptions

    async def save(self, *, with_open: bool) -> None:
        """Save the cursor if it changed (on connect without, on close with the keys).

        Raises:
            ConnectorError: The cursor could not be written.
        """
        cursor = {k: v for k, v in (self._cursor or {}).items() if k != "open"}
        open_keys = self._keys.dump()
        if with_open and open_keys:
            cursor["open"] = open_keys
        if cursor == self._saved:
            return
        try:
            await self._ctx.save_cursor(cursor)
        except Exception as exc:
            raise ConnectorError(f"cannot save the trigger's cursor: {exc}") from exc
        self._saved = cursor

    async def subscribe(
        self,
        client: AioMqttClient,
        topics: list[str],
        qos: int,
        *,
        session_present: bool,
    ) -> None:
        """Subscribe what the session lacks; drop subscriptions the flow no longer has."""
        wanted = {topic: qos for topic in topics}
        saved = (self._cursor or {}).get("subscriptions")
        before: dict[str, int] = {t: q for t, q in saved} if session_present and saved else {}
        gone = [topic for topic in before if topic not in wanted]
        if gone:
            await client.unsubscribe(gone)
        # MQTT 3.1.1 sends retained messages again on every SUBSCRIBE: skip the filters the
        # resumed session has. MQTT 5 asks for retained messages only for new ones.
        v5 = client.options.v5
        todo = [(t, q) for t, q in wanted.items() if v5 or saved is None or before.get(t) != q]
        if todo:
            await client.subscribe(todo, retain_if_new=True)
        self._cursor = {
            **(self._cursor or {}),
            "subscriptions": [[t, q] for t, q in sorted(wanted.items())],
        }
