"""Webhook intake: a webhook call becomes an execution in the server process itself.

As a listener host runs its triggers' executions, the server runs its webhooks': the
call is answered once the execution is durably created (under this process's lease),
and its runnable tasks go to a warm worker actor. When this process is busy, the
overflow goes to the execution pool (one actor hop more). If the server dies, the lease
lapses and a pool actor resumes the execution.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from actors import TRIGGER_LABEL, Execution, ExecutionService, TriggerStats, off_loop
from flows import (
    ExpressionEngine,
    Flow,
    NotFoundError,
    Webhook,
    build_context,
    event_conditions_hold,
)

from ._catalog import FlowCatalog
from ._control import ExecutionControl
from ._settings import Settings

_CONDITIONS_ENGINE = ExpressionEngine()
"""Evaluates webhook trigger conditions (the request is data in its context)."""


class WebhookIntake:
    """Checks webhook calls and creates their executions; keeps the webhooks' counters.

    Args:
        catalog: The flows.
        local: This process's execution service.
        control: Where the overflow goes (the pool) and executions are read.
        settings: The server settings (``webhook_executions``: executions this process
            runs at once before sending calls to the pool; read on every call).
    """

    def __init__(
        self,
        catalog: FlowCatalog,
        local: ExecutionService,
        control: ExecutionControl,
        settings: Settings,
    ) -> None:
        self._catalog = catalog
        self._local = local
        self._control = control
        self._settings = settings
        self.stats: dict[str, TriggerStats] = {}
        """Counters per webhook trigger (``namespace.flow/trigger``)."""

    def stats_of(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerStats | None:
        """A webhook trigger's counters (for `actors.FirstTaskLatency`)."""
        return self.stats.get(f"{namespace}.{flow_id}/{trigger_id}")

    async def call(
        self,
        namespace: str,
        flow_id: str,
        key: str,
        *,
        raw_body: bytes,
        body: Any,
        headers: Mapping[str, str],
        parameters: Mapping[str, Any],
    ) -> tuple[Webhook, Execution]:
        """Start a flow from a webhook call, after checking its key (and signature).

        Raises:
            NotFoundError: Unknown flow, no webhook trigger, or wrong key/signature (all
                the same answer, so callers learn nothing about which flows exist).
        """
        received = time.time()
        try:
            flow = await self._catalog.flow(namespace, flow_id)
        except NotFoundError:
            raise NotFoundError("webhook not found") from None
        trigger = matching_webhook(flow, key, raw_body, headers)
        if (
            trigger is None
            or flow.disabled
            or (flow.namespace, flow.id, trigger.id) in self._catalog.switched_off
        ):
            raise NotFoundError("webhook not found")
        stats = self.stats.setdefault(f"{flow.uid}/{trigger.id}", TriggerStats())
        stats.events += 1
        stats.last_event_at = dt.datetime.fromtimestamp(received, dt.UTC)
        variables = {"body": body, "headers": dict(headers), "parameters": dict(parameters)}
        # Conditions are templates: rendered on the render threads, never on the server's loop.
        if trigger.conditions and not await off_loop(
            event_conditions_hold,
            trigger.conditions,
            _CONDITIONS_ENGINE,
            build_context(flow=flow, trigger=variables, envs={}),
            dt.datetime.fromtimestamp(received, dt.UTC),
        ):
            raise NotFoundError("webhook conditions not met: no execution created")
        labels = {**trigger.labels, TRIGGER_LABEL: trigger.id}
        if len(self._local.running_ids()) >= self._settings.webhook_executions:
            # Busy: the elastic pool takes the overflow (one more actor hop).
            execution = await self._control.execute(
                namespace,
                flow_id,
                trigger.inputs,
                labels=labels,
                trigger=variables,
                wait=trigger.wait,
                flow=flow,
            )
            stats.created += 1
            return trigger, execution

        result = await self._local.create(
            flow, trigger.inputs, trigger=variables, labels=labels, event_at=received
        )
        stats.observe_created(time.time() - received)
        stats.created += 1
        execution = result.execution
        if trigger.wait:
            await self._local.wait(execution.id)
            execution = await self._control.execution(execution.id)
        elif flow.concurrency is not None:
            execution = await self._control.execution(execution.id)  # QUEUED, CANCELLED?
        return trigger, execution


def matching_webhook(
    flow: Flow, key: str, raw_body: bytes, headers: Mapping[str, str]
) -> Webhook | None:
    """The flow's enabled webhook trigger with this key (and a valid signature), if any."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for trigger in flow.triggers:
        if not isinstance(trigger, Webhook) or trigger.disabled:
            continue
        if not hmac.compare_digest(trigger.key.encode(), key.encode()):
            continue
        if trigger.signature is not None:
            sent = lowered.get(trigger.signature.header.lower(), "")
            digest = hmac.new(
                trigger.signature.secret.encode(), raw_body, hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(
                sent.encode(), f"{trigger.signature.prefix}{digest}".encode()
            ):
                continue
        return trigger
    return None
