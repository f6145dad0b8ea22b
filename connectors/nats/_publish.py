"""The ``nats.Publish`` runtime: core or JetStream publishing on a shared connection."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nats.errors import BadHeaderError, BadSubjectError
from nats.js.errors import NoStreamResponseError
from pydantic import ValidationError

from flows import ConnectorError, RunContext, TaskError

from ._connection import Endpoint, describe, round_trip, shared_connection
from ._serde import encode_body, encode_headers
from ._types import NatsMessage

if TYPE_CHECKING:
    from ._types import NatsPublish

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream drops a message whose id it has seen within the stream's duplicate window."""

Outgoing = tuple[bytes, dict[str, str]]


def _from_text(text: str) -> list[NatsMessage]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TaskError(
            "'from' rendered to text that is not JSON (a message {headers, data} or a list "
            f"of them); internal-storage URIs are not supported: {text[:100]!r}",
            retriable=False,
        ) from exc
    items = value if isinstance(value, list) else [value]
    try:
        return [NatsMessage.model_validate(item) for item in items]
    except ValidationError as exc:
        raise TaskError(
            f"'from' is not a message or a list of messages: {exc}", retriable=False
        ) from exc


def outgoing(task: NatsPublish) -> list[Outgoing]:
    """The bodies and headers to send, from ``from`` or ``payload``/``headers``.

    Raises:
        TaskError: ``from`` is not messages, or ``msgId`` is given for several messages.
    """
    source = task.from_
    if source is None:
        messages = [
            NatsMessage.model_validate({"headers": task.headers or {}, "data": task.payload})
        ]
    elif isinstance(source, NatsMessage):
        messages = [source]
    elif isinstance(source, list):
        messages = source
    else:
        messages = _from_text(source)
    if task.msg_id is not None and len(messages) > 1:
        raise TaskError(f"'msgId' names one message, 'from' gave {len(messages)}", retriable=False)
    out: list[Outgoing] = []
    for message in messages:
        headers = encode_headers(message.headers)
        if task.msg_id is not None:
            headers[MSG_ID_HEADER] = task.msg_id
        out.append((encode_body(message.data), headers))
    return out


async def publish(task: NatsPublish, ctx: RunContext) -> dict[str, Any]:
    """Publish the task's messages; see `NatsPublish.run`."""
    messages = outgoing(task)
    endpoint = Endpoint(task.url, task.username, task.password, task.token, task.creds)
    try:
        client = await shared_connection(endpoint)
    except ConnectorError as exc:
        raise TaskError(str(exc)) from exc
    sequences: list[int] = []
    try:
        if task.jetstream:
            js = client.jetstream()
            for body, headers in messages:
                ack = await js.publish(task.subject, body, headers=headers or None)
                sequences.append(ack.seq)
        else:
            for body, headers in messages:
                await client.publish(task.subject, body, headers=headers or None)
            await round_trip(client)  # on the server before the task reports success
    except NoStreamResponseError as exc:
        raise TaskError(
            f"no JetStream stream captures subject '{task.subject}' (on {endpoint.display})",
            retriable=False,
        ) from exc
    except (BadHeaderError, BadSubjectError) as exc:
        raise TaskError(
            f"cannot publish to '{task.subject}': {describe(exc)}", retriable=False
        ) from exc
    except Exception as exc:
        raise TaskError(
            f"publishing to '{task.subject}' on {endpoint.display} failed: {describe(exc)}"
        ) from exc
    mode = "JetStream" if task.jetstream else "NATS"
    ctx.log("INFO", f"published {len(messages)} message(s) to {mode} subject '{task.subject}'")
    result: dict[str, Any] = {"messagesCount": len(messages)}
    if task.jetstream:
        result["sequences"] = sequences
    return result
