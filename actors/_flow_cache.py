"""Flow revisions from the store, parsed once per process."""

from __future__ import annotations

from flows import Flow, NotFoundError, parse_flow

from ._store._store import Store


class FlowCache:
    """Parsed flow revisions (a revision never changes, so it is never evicted).

    Args:
        store: The started store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._flows: dict[tuple[str, str, int], Flow] = {}

    async def get(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        """A flow revision (the latest when None).

        Raises:
            NotFoundError: No such flow or revision.
        """
        if revision is not None:
            cached = self._flows.get((namespace, flow_id, revision))
            if cached is not None:
                return cached
        found = await self._store.get_flow(namespace, flow_id, revision, include_deleted=True)
        if found is None:
            at = f" revision {revision}" if revision is not None else ""
            raise NotFoundError(f"flow {namespace}.{flow_id}{at} is not in the store")
        flow = parse_flow(found.source, f"{namespace}.{flow_id}@{found.revision}")
        flow.revision = found.revision
        self._flows[(namespace, flow_id, found.revision)] = flow
        return flow

    async def deploy(self, source: str, file: str = "<string>") -> Flow:
        """Validate a flow's YAML and save it as a new revision when it changed.

        Raises:
            FlowError: The flow is invalid.
        """
        flow = parse_flow(source, file)
        saved = await self._store.save_flow(flow.namespace, flow.id, source)
        flow.revision = saved.flow.revision
        self._flows[(flow.namespace, flow.id, saved.flow.revision)] = flow
        return flow
