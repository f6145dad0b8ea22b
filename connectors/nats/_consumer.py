"""The JetStream consumer a trigger pulls from: found or created, checked, updated.

The consumer (``durableId``, or `default_durable`) is created when missing, with
explicit acks, ``deliverPolicy``/``since``/``startSequence``, ``ackWait`` and
``max_ack_pending = maxInFlight``; an existing one is reused (only its filter subject,
``ackWait`` and a too small ``max_ack_pending`` are updated).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from flows import ConnectorError, ListenerContext

from ._connection import describe
from ._types import DeliverPolicy

if TYPE_CHECKING:
    from ._types import NatsRealtimeTrigger

DEFAULT_ACK_WAIT = 30.0
"""Seconds JetStream waits for an ack when the consumer does not say (the server default)."""
_STREAM_NOT_FOUND = 10059  # JetStream API error code
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_POLICIES = {
    DeliverPolicy.ALL: api.DeliverPolicy.ALL,
    DeliverPolicy.LAST: api.DeliverPolicy.LAST,
    DeliverPolicy.NEW: api.DeliverPolicy.NEW,
    DeliverPolicy.BY_START_SEQUENCE: api.DeliverPolicy.BY_START_SEQUENCE,
    DeliverPolicy.BY_START_TIME: api.DeliverPolicy.BY_START_TIME,
    DeliverPolicy.LAST_PER_SUBJECT: api.DeliverPolicy.LAST_PER_SUBJECT,
}


def default_durable(ctx: ListenerContext) -> str:
    """The consumer name used without ``durableId``: stable for a flow's trigger.

    ``kestrel_<namespace>_<flow>_<trigger>_<hash>``, with anything but letters, digits,
    ``_`` and ``-`` replaced by ``_``; the hash of the exact ids keeps ``a.b`` and
    ``a_b`` apart.
    """
    ids = (ctx.namespace, ctx.flow_id, ctx.trigger_id)
    readable = _UNSAFE.sub("_", "_".join(ids))[:150]
    digest = hashlib.sha256("/".join(ids).encode()).hexdigest()[:8]
    return f"kestrel_{readable}_{digest}"


async def find_stream(js: JetStreamContext, subject: str) -> str:
    """The stream that captures ``subject``.

    Raises:
        ConnectorError: No stream does.
    """
    try:
        return str(await js.find_stream_name_by_subject(subject))
    except NotFoundError as exc:
        raise ConnectorError(
            f"no JetStream stream captures subject '{subject}': set 'stream' or create one"
        ) from exc


class Consumer:
    """Makes sure the trigger's durable pull consumer exists as the trigger needs it.

    Args:
        trigger: The trigger (rendered).
        ctx: The host's context (for logs).
        durable: The consumer's name.
        name: The trigger, as logs name it.
    """

    def __init__(
        self, trigger: NatsRealtimeTrigger, ctx: ListenerContext, durable: str, name: str
    ) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self.durable = durable
        self._name = name

    def config(self) -> api.ConsumerConfig:
        """The configuration a new consumer is created with."""
        trigger = self._trigger
        return api.ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            description=f"Kestrel trigger {self._name}",
            deliver_policy=_POLICIES[trigger.deliver_policy],
            opt_start_seq=trigger.start_sequence,
            opt_start_time=trigger.since,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=trigger.ack_wait.total_seconds() if trigger.ack_wait else None,
            max_ack_pending=trigger.max_in_flight,
            filter_subject=trigger.subject,
        )

    async def ensure(self, js: JetStreamContext, stream: str) -> api.ConsumerInfo:
        """Create the consumer on ``stream``, or check and update the existing one.

        Raises:
            ConnectorError: The stream is missing, the consumer is a push consumer or
                does not ack explicitly, or it cannot take the changes the trigger needs.
        """
        try:
            info: api.ConsumerInfo = await js.consumer_info(stream, self.durable)
        except NotFoundError as exc:
            if exc.err_code == _STREAM_NOT_FOUND:
                raise ConnectorError(f"JetStream stream '{stream}' not found") from exc
            self._ctx.log(
                "INFO",
                f"creating JetStream consumer '{self.durable}' on "
                f"stream '{stream}' ({self._trigger.deliver_policy.value})",
            )
            created: api.ConsumerInfo = await js.add_consumer(stream, self.config())
            return created
        config = info.config
        if config.deliver_subject:
            raise ConnectorError(
                f"JetStream consumer '{self.durable}' on '{stream}' is a "
                "push consumer; the trigger needs a pull consumer (another "
                "durableId, or delete it)"
            )
        if config.ack_policy not in (None, api.AckPolicy.EXPLICIT):
            raise ConnectorError(
                f"JetStream consumer '{self.durable}' acks '{config.ack_policy}'"
                "; the trigger needs explicit acks"
            )
        changes = self._changes(config)
        if not changes:
            return info
        self._ctx.log("INFO", f"updating JetStream consumer '{self.durable}': {changes}")
        try:
            updated: api.ConsumerInfo = await js.add_consumer(stream, config.evolve(**changes))
        except Exception as exc:
            raise ConnectorError(
                f"JetStream consumer '{self.durable}' exists on "
                f"'{stream}' and cannot take {changes}: {describe(exc)} "
                "(delete it or choose another durableId)"
            ) from exc
        return updated

    def _changes(self, config: api.ConsumerConfig) -> dict[str, object]:
        trigger = self._trigger
        changes: dict[str, object] = {}
        filters = config.filter_subjects or (
            [config.filter_subject] if config.filter_subject else []
        )
        if filters != [trigger.subject]:
            changes["filter_subject"] = trigger.subject
            changes["filter_subjects"] = None
        pending = config.max_ack_pending
        if pending is not None and 0 < pending < trigger.max_in_flight:
            changes["max_ack_pending"] = trigger.max_in_flight
        wanted = trigger.ack_wait.total_seconds() if trigger.ack_wait else None
        if wanted is not None and abs((config.ack_wait or DEFAULT_ACK_WAIT) - wanted) > 1e-3:
            changes["ack_wait"] = wanted
        return changes
