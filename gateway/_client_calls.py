"""More calls of the REST API for the CLI: triggers, KV, dead letters, starts, backfills.

Plain functions over `KestrelClient.request`, so the client class stays small.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._client import API, ClientError, KestrelClient


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json(client: KestrelClient, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    return response.json() if response.content else None


def set_trigger_disabled(
    client: KestrelClient, namespace: str, flow_id: str, trigger_id: str, disabled: bool
) -> dict[str, Any]:
    """Disable (or enable) a trigger; its status after the change."""
    path = f"{API}/triggers/{_seg(namespace)}/{_seg(flow_id)}/{_seg(trigger_id)}"
    found: dict[str, Any] = _json(client, "PUT", path, json={"disabled": disabled})
    return found


def start_execution(
    client: KestrelClient,
    namespace: str,
    flow_id: str,
    inputs: Mapping[str, str],
    *,
    wait: bool = False,
) -> dict[str, Any]:
    """Start a flow with inputs (sent as form fields, typed by the flow's inputs).

    A value ``@path`` uploads that local file (streamed, multipart) for a FILE input.

    Raises:
        ClientError: A ``@path`` file cannot be read, or the server refused.
    """
    path = f"{API}/executions/{_seg(namespace)}/{_seg(flow_id)}"
    params = {"wait": "true"} if wait else None
    fields = {k: v for k, v in inputs.items() if not v.startswith("@")}
    with contextlib.ExitStack() as stack:
        try:
            files = {
                k: (Path(v[1:]).name, stack.enter_context(Path(v[1:]).expanduser().open("rb")))
                for k, v in inputs.items()
                if v.startswith("@")
            }
        except OSError as exc:
            raise ClientError(f"cannot read input file: {exc}") from None
        found: dict[str, Any] = _json(
            client, "POST", path, data=fields, files=files or None, params=params
        )
    return found


def kv_list(client: KestrelClient, namespace: str) -> list[dict[str, Any]]:
    """The keys of a namespace."""
    found: list[dict[str, Any]] = _json(client, "GET", f"{API}/namespaces/{_seg(namespace)}/kv")
    return found


def kv_get(client: KestrelClient, namespace: str, key: str) -> dict[str, Any]:
    """``{"type", "value"}`` of a key."""
    path = f"{API}/namespaces/{_seg(namespace)}/kv/{_seg(key)}"
    found: dict[str, Any] = _json(client, "GET", path)
    return found


def kv_set(
    client: KestrelClient, namespace: str, key: str, value: Any, ttl: str | None = None
) -> dict[str, Any]:
    """Set a key to a JSON value (optionally expiring after an ISO-8601 ``ttl``)."""
    path = f"{API}/namespaces/{_seg(namespace)}/kv/{_seg(key)}"
    params = {"ttl": ttl} if ttl else None
    found: dict[str, Any] = _json(client, "PUT", path, json=value, params=params)
    return found


def kv_delete(client: KestrelClient, namespace: str, key: str) -> None:
    """Delete a key."""
    client.request("DELETE", f"{API}/namespaces/{_seg(namespace)}/kv/{_seg(key)}")


def dead_letters(
    client: KestrelClient, namespace: str | None = None, flow_id: str | None = None, size: int = 50
) -> list[dict[str, Any]]:
    """Dead letters, newest first."""
    params: dict[str, Any] = {"size": size}
    if namespace:
        params["namespace"] = namespace
    if flow_id:
        params["flowId"] = flow_id
    found = _json(client, "GET", f"{API}/deadletters", params=params)
    results: list[dict[str, Any]] = found["results"]
    return results


def dead_letter(client: KestrelClient, letter_id: str) -> dict[str, Any]:
    """One dead letter."""
    found: dict[str, Any] = _json(client, "GET", f"{API}/deadletters/{_seg(letter_id)}")
    return found
