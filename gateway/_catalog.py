"""The flow catalog: deploy and delete flows, one cache of parsed revisions, kept true.

Every write (deploy, delete, a trigger switched off or on) goes through the catalog,
which updates its cache, redeploys the flow's triggers on this server's listener hosts
and tells the other servers on the database (``NOTIFY``, `actors.FLOW_CHANNEL`); a
change another server made reaches `on_change` (``LISTEN``, `actors.FlowChanges`), which
drops the cached revision and redeploys here. See docs/architecture.md, "Several
gateways, one Postgres".
"""

from __future__ import annotations

import asyncio
import logging

from actors import FLOW_CHANNEL, FlowChange, FlowRevision, Store
from flows import ConflictError, Flow, KestrelError, NotFoundError, Trigger, Webhook, parse_flow

from ._hosts import ListenerHosts

_log = logging.getLogger("kestrel.runtime")

TriggerKey = tuple[str, str, str]
"""``(namespace, flow_id, trigger_id)``."""


class FlowCatalog:
    """The stored flows as this server sees them, and every change to them.

    Args:
        store: The started store.
        hosts: Where the flows' triggers run.
        origin: This server's name (its own change notifications are skipped).
        folder_files: ``(namespace, flow_id)`` → the flows-folder file of the flow (kept
            by the folder sync): those are not deleted through the API.
    """

    def __init__(
        self,
        store: Store,
        hosts: ListenerHosts,
        origin: str,
        folder_files: dict[tuple[str, str], str],
    ) -> None:
        self._store = store
        self._hosts = hosts
        self._origin = origin
        self.folder_files = folder_files
        self._parsed: dict[tuple[str, str, int], Flow] = {}
        # The current revision of each flow, parsed; dropped on every write, here or
        # (through `on_change`) on another server.
        self._current: dict[tuple[str, str], Flow] = {}
        self._writes = 0
        self._lock = asyncio.Lock()
        self.switched_off: set[TriggerKey] = set()
        """Triggers switched off through the API (webhooks are checked against it)."""

    async def load(self) -> None:
        """Read which triggers are switched off (at start)."""
        self.switched_off = await self._store.disabled_triggers()

    async def revisions(self) -> list[FlowRevision]:
        """The current revision of every stored flow, unparsed."""
        return await self._store.list_flows()

    async def flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        """A stored flow revision, parsed (the current one from memory once read).

        Raises:
            NotFoundError: No such flow or revision.
        """
        if revision is None:
            current = self._current.get((namespace, flow_id))
            if current is not None:
                return current
        writes = self._writes
        found = await self._store.get_flow(namespace, flow_id, revision)
        if found is None:
            raise NotFoundError(f"flow {namespace}.{flow_id} not found")
        key = (namespace, flow_id, found.revision)
        flow = self._parsed.get(key)
        if flow is None:  # revisions never change: parse each once
            flow = parse_flow(found.source, f"{namespace}.{flow_id}")
            flow.revision = found.revision
            self._parsed[key] = flow
        if revision is None and writes == self._writes:
            # No flow was written while we read: this is still the current revision.
            self._current[(namespace, flow_id)] = flow
        return flow

    async def deploy(
        self, source: str, file: str = "<api>", *, from_folder: bool = False
    ) -> tuple[Flow, bool]:
        """Validate and save a flow; deploy its triggers when it changed.

        Args:
            source: The flow's YAML.
            file: Where it comes from, for error positions.
            from_folder: `file` is in the flows folder (the API will not delete the flow).

        Returns:
            The flow (with its revision) and whether a new revision was made.

        Raises:
            FlowError: The flow is invalid; nothing changes.
        """
        flow = parse_flow(source, file)
        if from_folder:  # before the flow is visible: a DELETE never slips in between
            self.folder_files[(flow.namespace, flow.id)] = file
        async with self._lock:
            saved = await self._store.save_flow(flow.namespace, flow.id, source)
            flow.revision = saved.flow.revision
            self._writes += 1
            self._current[(flow.namespace, flow.id)] = flow
            self._parsed[(flow.namespace, flow.id, flow.revision)] = flow
            if saved.changed:
                await self._hosts.deploy(flow)
                await self.tell_peers(flow.namespace, flow.id)
                _log.info("flow %s is at revision %d", flow.uid, flow.revision)
        return flow, saved.changed

    async def delete(self, namespace: str, flow_id: str, *, from_folder: bool = False) -> None:
        """Delete (disable) a flow: its triggers stop; its history stays.

        Args:
            namespace: The flow's namespace.
            flow_id: The flow's id.
            from_folder: The flows-folder sync deletes it (its file is gone).

        Raises:
            NotFoundError: No such flow.
            ConflictError: The flow comes from a file of the flows folder (and would come
                back from it on the next start): delete the file instead.
        """
        file = self.folder_files.get((namespace, flow_id))
        if file is not None and not from_folder:
            raise ConflictError(
                f"flow {namespace}.{flow_id} comes from the flows folder ({file}): "
                "delete the file instead"
            )
        async with self._lock:
            deleted = await self._store.delete_flow(namespace, flow_id)
            self._writes += 1
            self._current.pop((namespace, flow_id), None)
            if not deleted:
                raise NotFoundError(f"flow {namespace}.{flow_id} not found")
            await self._hosts.undeploy(namespace, flow_id)
            await self.tell_peers(namespace, flow_id)
        _log.info("flow %s.%s deleted; its triggers stopped", namespace, flow_id)

    async def switch_trigger(self, flow: Flow, trigger: Trigger, disabled: bool) -> None:
        """Switch a trigger off (its listener stops) or on again (it starts), durably."""
        key = (flow.namespace, flow.id, trigger.id)
        async with self._lock:  # ordered with deploys of the same flow
            await self._store.set_trigger_disabled(*key, disabled)
            if disabled:
                self.switched_off.add(key)
            else:
                self.switched_off.discard(key)
            if not isinstance(trigger, Webhook):  # webhooks are checked on each call
                await self._hosts.deploy(flow)
            await self.tell_peers(flow.namespace, flow.id)

    async def tell_peers(self, namespace: str, flow_id: str) -> None:
        """Tell the other servers on this database that a flow changed (NOTIFY)."""
        change = FlowChange(namespace, flow_id, origin=self._origin)
        try:
            await self._store.notify(FLOW_CHANNEL, change.payload())
        except KestrelError as exc:  # the write is durable; peers resync on reconnect
            _log.warning("could not tell other servers about %s.%s: %s", namespace, flow_id, exc)

    async def on_change(self, change: FlowChange) -> None:
        """Another server changed a flow: forget our copy, redeploy its triggers here."""
        if change.origin == self._origin:
            return
        if change.namespace is None or change.flow_id is None:  # resync everything
            keys = {(r.namespace, r.flow_id) for r in await self._store.list_flows()}
            keys |= set(self._current)
        else:
            keys = {(change.namespace, change.flow_id)}
        async with self._lock:
            self.switched_off = await self._store.disabled_triggers()
            for namespace, flow_id in sorted(keys):
                self._writes += 1
                self._current.pop((namespace, flow_id), None)
                if await self._store.get_flow(namespace, flow_id) is None:
                    await self._hosts.undeploy(namespace, flow_id)
                    continue
                await self._hosts.deploy(await self.flow(namespace, flow_id))
        _log.info("flows changed by another server: %s", ", ".join(f"{n}.{f}" for n, f in keys))
