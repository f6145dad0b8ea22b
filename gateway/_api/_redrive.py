"""``/api/v1/deadletters/{id}``: read one, re-drive it into an execution, or delete it.

A re-drive reads the stored payload the way the flow's trigger reads it *now* (after the
flow was fixed), and creates the execution under the dedupe key ``deadletter:{id}``:
calling it again returns the same execution, never a second one.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Response

from actors import TRIGGER_LABEL, DeadLetter
from flows import ConflictError, Flow, NotFoundError

from .._runtime import Runtime
from ._deps import RuntimeDep
from ._models import DeadLetterBody, ErrorBody, ExecutionBody, dead_letter_body, detail_body

router = APIRouter(prefix="/deadletters", tags=["dead letters"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

DEDUPE_PREFIX = "deadletter:"

# trigger type (short name suffix) -> (variable that holds the payload, deserializer field)
_PAYLOADS: dict[str, tuple[str, str | None]] = {
    "kafka.RealtimeTrigger": ("value", "value_deserializer"),
    "kafka.Trigger": ("value", "value_deserializer"),
    "nats.RealtimeTrigger": ("data", "deserializer"),
    "nats.Trigger": ("data", "deserializer"),
    "mqtt.RealtimeTrigger": ("payload", "serde_type"),
    "mqtt.Trigger": ("payload", "serde_type"),
    "postgres.RealtimeTrigger": ("payload", "deserializer"),
}


def decode_payload(raw: bytes, serde: str) -> Any:
    """`raw` read as ``STRING``, ``JSON`` or ``BYTES`` (base64 text).

    Raises:
        ConflictError: It still cannot be read that way, or the format is not one of those.
    """
    serde = serde.upper()
    if serde == "BYTES":
        return base64.b64encode(raw).decode("ascii")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConflictError("the payload is not UTF-8 text: fix the flow first") from None
    if serde == "STRING":
        return text
    if serde == "JSON":
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise ConflictError(
                f"the payload is still not JSON ({exc.msg}): fix the flow first"
            ) from None
    raise ConflictError(f"payloads read as {serde} cannot be re-driven")


def trigger_variables(flow: Flow, letter: DeadLetter) -> dict[str, Any]:
    """The trigger variables the flow's trigger would give this payload now.

    Raises:
        ConflictError: The flow has no such trigger, or its payload still cannot be read.
    """
    trigger = next((t for t in flow.triggers if t.id == letter.trigger_id), None)
    if trigger is None:
        raise ConflictError(f"flow {flow.uid} has no trigger '{letter.trigger_id}' any more")
    short = next((k for k in _PAYLOADS if trigger.type.endswith(k)), None)
    variable, serde_field = _PAYLOADS.get(short or "", ("payload", None))
    serde = getattr(trigger, serde_field, "STRING") if serde_field else "STRING"
    value = decode_payload(letter.payload, str(getattr(serde, "value", serde)))
    return {**letter.metadata, variable: value, "redrivenFrom": letter.id}


def redrive_key(letter_id: str) -> str:
    """The dedupe key of the execution a dead letter's re-drive creates."""
    return f"{DEDUPE_PREFIX}{letter_id}"


async def with_redrives(runtime: Runtime, bodies: list[DeadLetterBody]) -> list[DeadLetterBody]:
    """`bodies` with ``redrivenExecutionId`` set on those already re-driven (one query)."""
    found = await runtime.store.executions_by_dedupe_keys([redrive_key(b.id) for b in bodies])
    for body in bodies:
        body.redriven_execution_id = found.get(redrive_key(body.id))
    return bodies


async def _letter(runtime: Runtime, letter_id: str) -> DeadLetter:
    letter = await runtime.store.get_dead_letter(letter_id)
    if letter is None:
        raise NotFoundError(f"dead letter {letter_id} not found")
    return letter


@router.get("/{letter_id}", responses=_ERRORS)
async def get_dead_letter(letter_id: str, runtime: RuntimeDep) -> DeadLetterBody:
    """One dead letter (payload as base64, with a UTF-8 preview)."""
    (body,) = await with_redrives(runtime, [dead_letter_body(await _letter(runtime, letter_id))])
    return body


@router.post("/{letter_id}/redrive", responses=_ERRORS)
async def redrive_dead_letter(letter_id: str, runtime: RuntimeDep) -> ExecutionBody:
    """Create the execution from the stored payload, once; again, the same execution.

    409 when the flow still cannot read the payload (fix the flow, then re-drive).
    """
    dedupe_key = redrive_key(letter_id)
    existing = await runtime.store.get_execution_by_dedupe_key(dedupe_key)
    if existing is None:
        letter = await _letter(runtime, letter_id)
        if letter.namespace is None or letter.flow_id is None:
            raise ConflictError(f"dead letter {letter_id} names no flow to re-drive into")
        flow = await runtime.catalog.flow(letter.namespace, letter.flow_id)
        if flow.disabled:
            raise ConflictError(f"flow {flow.uid} is disabled")
        variables = trigger_variables(flow, letter)
        trigger = next(t for t in flow.triggers if t.id == letter.trigger_id)
        started = await runtime.pool.create(
            flow.namespace,
            flow.id,
            trigger.inputs,
            revision=flow.revision,
            trigger=variables,
            labels={**trigger.labels, TRIGGER_LABEL: trigger.id},
            dedupe_key=dedupe_key,
        )
        execution_id = started.execution_id
    else:
        execution_id = existing.id
    detail = await runtime.store.execution_detail(execution_id)
    if detail is None:  # pragma: no cover - just created
        raise NotFoundError(f"execution {execution_id} not found")
    return detail_body(detail)


@router.delete("/{letter_id}", status_code=204, responses=_ERRORS)
async def delete_dead_letter(letter_id: str, runtime: RuntimeDep) -> Response:
    """Delete a dead letter; 404 when there is none."""
    if not await runtime.store.delete_dead_letter(letter_id):
        raise NotFoundError(f"dead letter {letter_id} not found")
    return Response(status_code=204)
