"""Built-in triggers that need no external system: Schedule, Webhook and Flow."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from croniter import croniter
from pydantic import Field, field_validator

from ._durations import Duration
from ._model import KestrelModel, Trigger
from ._registry import register_type
from ._states import State

_K = "io.kestra.plugin.core.trigger"

_CRON_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def expand_cron(expression: str) -> str:
    """Resolve a nickname such as ``@daily`` to its 5-field form."""
    return _CRON_NICKNAMES.get(expression.strip().lower(), expression.strip())


class RecoverMissedSchedules(StrEnum):
    """What a Schedule does about intervals it missed while Kestrel was down."""

    ALL = "ALL"
    LAST = "LAST"
    NONE = "NONE"


class Backfill(KestrelModel):
    """Replay the schedule's intervals between ``start`` and ``end`` (default: now)."""

    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


_K_OLD = "io.kestra.core.models.triggers.types"


@register_type("trigger.Schedule", aliases=(f"{_K}.Schedule", f"{_K_OLD}.Schedule"))
class Schedule(Trigger):
    """Start an execution on a cron schedule: 5 fields, or 6 with seconds first."""

    cron: str
    timezone: str = "UTC"
    with_seconds: bool = False
    recover_missed_schedules: RecoverMissedSchedules = RecoverMissedSchedules.ALL
    backfill: Backfill | None = None
    stop_after: list[State] = Field(default_factory=list)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        expr = expand_cron(value)
        fields = len(expr.split())
        if fields not in (5, 6):
            raise ValueError(f"cron '{value}' has {fields} fields; expected 5, or 6 with seconds")
        ok = (
            croniter.is_valid(expr, second_at_beginning=True)
            if fields == 6
            else (croniter.is_valid(expr))
        )
        if not ok:
            raise ValueError(f"'{value}' is not a valid cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone '{value}' (use an IANA name, e.g. Europe/Paris)"
            ) from None
        return value


class WebhookSignature(KestrelModel):
    """An HMAC-SHA256 signature over the raw body, checked before anything else."""

    header: str = "X-Kestrel-Signature"
    secret: str
    prefix: str = "sha256="


@register_type("trigger.Webhook", aliases=(f"{_K}.Webhook", f"{_K_OLD}.Webhook"))
class Webhook(Trigger):
    """Start an execution from an HTTP call to ``/api/v1/executions/webhook/{ns}/{flow}/{key}``."""

    key: Annotated[str, Field(min_length=8, max_length=256)]
    signature: WebhookSignature | None = None
    wait: bool = False
    return_outputs: bool = False


class UpstreamFlow(KestrelModel):
    """One flow whose end can start this one (Kestra's ``preconditions.flows`` entry)."""

    namespace: str
    flow_id: str | None = None
    states: list[State] = Field(default_factory=lambda: [State.SUCCESS])


class Preconditions(KestrelModel):
    """Kestra's ``preconditions``: every listed flow must have ended in one of its states."""

    id: str | None = None
    flows: list[UpstreamFlow] = Field(default_factory=list)
    time_window: dict[str, Any] | None = None


@register_type("trigger.Flow", aliases=(f"{_K}.Flow", f"{_K_OLD}.Flow"))
class FlowTrigger(Trigger):
    """Start when another flow's execution ends in one of ``states``.

    Filter with ``namespace``/``flowId`` (a namespace matches itself and its children),
    or with Kestra's ``preconditions``.
    """

    namespace: str | None = None
    flow_id: str | None = None
    states: list[State] = Field(
        default_factory=lambda: [State.SUCCESS, State.WARNING, State.FAILED]
    )
    preconditions: Preconditions | None = None
    debounce: Duration | None = None
