"""The trigger view: every deployed trigger's status and counters, switching one off or on.

Realtime and schedule triggers report from the listener hosts that run them; webhooks
are served by the API, so the server reports them from the stored flows and its own
counters.
"""

from __future__ import annotations

import logging

from actors import TriggerInfo, TriggerStats, TriggerStatus
from flows import ConflictError, NotFoundError, Webhook

from ._catalog import FlowCatalog
from ._hosts import ListenerHosts
from ._webhook_intake import WebhookIntake

_log = logging.getLogger("kestrel.runtime")


class TriggerView:
    """Lists the triggers, switches them, and reports their latencies.

    Args:
        catalog: The flows (and which triggers are switched off).
        hosts: The listener hosts.
        webhooks: The webhook intake (its counters).
    """

    def __init__(self, catalog: FlowCatalog, hosts: ListenerHosts, webhooks: WebhookIntake) -> None:
        self._catalog = catalog
        self._hosts = hosts
        self._webhooks = webhooks

    async def triggers(self) -> list[TriggerInfo]:
        """The status of every deployed trigger (webhooks too: the API serves those)."""
        return await self._hosts.triggers() + await self.webhooks()

    async def webhooks(self) -> list[TriggerInfo]:
        """The status and counters of every webhook trigger of the stored flows."""
        out: list[TriggerInfo] = []
        for revision in await self._catalog.revisions():
            flow = await self._catalog.flow(revision.namespace, revision.flow_id, revision.revision)
            for trigger in flow.triggers:
                if not isinstance(trigger, Webhook):
                    continue
                switched_off = (flow.namespace, flow.id, trigger.id) in self._catalog.switched_off
                disabled = trigger.disabled or flow.disabled or switched_off
                stats = self._webhooks.stats.get(f"{flow.uid}/{trigger.id}", TriggerStats())
                out.append(
                    TriggerInfo(
                        namespace=flow.namespace,
                        flow_id=flow.id,
                        trigger_id=trigger.id,
                        type=trigger.type,
                        revision=revision.revision,
                        status=TriggerStatus.STOPPED if disabled else TriggerStatus.RUNNING,
                        last_error=None,
                        last_event_at=stats.last_event_at,
                        events=stats.events,
                        created=stats.created,
                        duplicates=0,
                        dead_letters=0,
                        reconnects=0,
                        disabled=switched_off,
                    )
                )
        return out

    async def set_disabled(
        self, namespace: str, flow_id: str, trigger_id: str, disabled: bool
    ) -> TriggerInfo:
        """Switch a trigger off (its listener stops) or on again (it starts); durable.

        Raises:
            NotFoundError: No such flow or trigger.
            ConflictError: Enabling a trigger its flow's source disables.
        """
        flow = await self._catalog.flow(namespace, flow_id)
        trigger = next((t for t in flow.triggers if t.id == trigger_id), None)
        if trigger is None:
            raise NotFoundError(f"flow {flow.uid} has no trigger '{trigger_id}'")
        if not disabled and (trigger.disabled or flow.disabled):
            raise ConflictError(
                f"trigger '{trigger_id}' is disabled in the source of flow {flow.uid}"
            )
        await self._catalog.switch_trigger(flow, trigger, disabled)
        _log.info("trigger %s/%s %s", flow.uid, trigger_id, "disabled" if disabled else "enabled")
        key = (namespace, flow_id, trigger_id)
        found = [i for i in await self.triggers() if (i.namespace, i.flow_id, i.trigger_id) == key]
        if not found:
            raise NotFoundError(f"trigger '{trigger_id}' of flow {flow.uid} is not deployed")
        return found[0]

    async def latencies(self, kind: str = "created") -> dict[str, list[float]]:
        """Recent latencies (seconds) per trigger: ``created`` or ``first_task``."""
        merged = await self._hosts.latencies(kind)
        for name, stats in self._webhooks.stats.items():
            window = stats.first_task_latency_s if kind == "first_task" else stats.created_latency_s
            merged[name] = list(window)
        return merged
