"""A small synchronous client of the Kestrel REST API (what the ``kestrel`` CLI uses)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import yaml

DEFAULT_SERVER = "http://127.0.0.1:8080"
API = "/api/v1"


class ClientError(Exception):
    """A request that failed: the server's message, or why the server could not be reached.

    Attributes:
        message: What to tell the user.
        status: The HTTP status, or None when there was no answer.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _segment(value: str) -> str:
    return quote(value, safe="")


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = response.text.strip()
    return f"HTTP {response.status_code}" + (f": {text[:500]}" if text else "")


def parse_sse(lines: Iterator[str]) -> Iterator[Any]:
    """The JSON ``data`` of each server-sent event in `lines`."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield json.loads("\n".join(data))
                data = []
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield json.loads("\n".join(data))


class KestrelClient:
    """Calls a Kestrel server's ``/api/v1``.

    Args:
        server: The server's base URL, e.g. ``http://127.0.0.1:8080``.
        api_token: Sent as ``Authorization: Bearer <token>`` when set.
        timeout: Seconds to wait for an answer (streams wait for as long as they last).
    """

    def __init__(
        self, server: str = DEFAULT_SERVER, api_token: str | None = None, timeout: float = 60.0
    ) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- plumbing ----

    def _unreachable(self, exc: httpx.HTTPError) -> ClientError:
        return ClientError(f"cannot reach the Kestrel server at {self.server}: {exc}")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a ClientError with the server's message unless it succeeded.

        Raises:
            ClientError: The server answered with an error, or could not be reached.
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.is_error:
            raise ClientError(_server_message(response), response.status_code)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    def stream_events(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """The JSON events of a server-sent-events endpoint, until the server ends it.

        Raises:
            ClientError: The server answered with an error, or could not be reached.
        """
        try:
            with self._http.stream(
                "GET",
                path,
                params=params,
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(self._http.timeout.connect, read=None),
            ) as response:
                if response.is_error:
                    response.read()
                    raise ClientError(_server_message(response), response.status_code)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    # ---- flows ----

    def flows(self, namespace: str | None = None, q: str | None = None) -> list[dict[str, Any]]:
        """Every live flow (optionally under a namespace / matching text)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "size": 1000}
            if namespace:
                params["namespace"] = namespace
            if q:
                params["q"] = q
            found = self._json("GET", f"{API}/flows/search", params=params)
            out.extend(found["results"])
            if len(out) >= found["total"] or not found["results"]:
                return out
            page += 1

    def flow(self, namespace: str, flow_id: str) -> dict[str, Any]:
        """A flow with its source."""
        result: dict[str, Any] = self._json(
            "GET", f"{API}/flows/{_segment(namespace)}/{_segment(flow_id)}"
        )
        return result

    def deploy(self, source: str) -> tuple[dict[str, Any], str]:
        """Create or update a flow from its YAML.

        Returns:
            The flow, and ``created``, ``updated`` or ``unchanged``.
        """
        headers = {"Content-Type": "application/x-yaml"}
        try:
            created: dict[str, Any] = self._json(
                "POST", f"{API}/flows", content=source.encode(), headers=headers
            )
            return created, "created"
        except ClientError as exc:
            if exc.status != 409:
                raise
        doc = yaml.safe_load(source)
        namespace, flow_id = str(doc["namespace"]), str(doc["id"])
        before = self.flow(namespace, flow_id).get("revision")
        path = f"{API}/flows/{_segment(namespace)}/{_segment(flow_id)}"
        updated: dict[str, Any] = self._json("PUT", path, content=source.encode(), headers=headers)
        return updated, "unchanged" if updated.get("revision") == before else "updated"

    def delete_flow(self, namespace: str, flow_id: str) -> None:
        """Delete a flow."""
        self.request("DELETE", f"{API}/flows/{_segment(namespace)}/{_segment(flow_id)}")

    # ---- executions ----

    def executions(
        self,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Sequence[str] = (),
        size: int = 25,
        page: int = 1,
    ) -> dict[str, Any]:
        """A page of executions, newest first: ``{"results", "total"}``."""
        params: list[tuple[str, str | int]] = [("size", size), ("page", page)]
        if namespace:
            params.append(("namespace", namespace))
        if flow_id:
            params.append(("flowId", flow_id))
        params.extend(("state", s.upper()) for s in states)
        result: dict[str, Any] = self._json("GET", f"{API}/executions/search", params=params)
        return result

    def execution(self, execution_id: str) -> dict[str, Any]:
        """An execution with its task runs."""
        result: dict[str, Any] = self._json("GET", f"{API}/executions/{_segment(execution_id)}")
        return result

    def logs(self, execution_id: str) -> list[dict[str, Any]]:
        """Every log line of an execution."""
        result: list[dict[str, Any]] = self._json("GET", f"{API}/logs/{_segment(execution_id)}")
        return result

    def follow_logs(self, execution_id: str) -> Iterator[dict[str, Any]]:
        """Log lines as they are written, until the execution ended."""
        yield from self.stream_events(f"{API}/logs/{_segment(execution_id)}/follow")

    def follow_execution(self, execution_id: str) -> Iterator[dict[str, Any]]:
        """The execution at every state change, until it ended."""
        yield from self.stream_events(f"{API}/executions/{_segment(execution_id)}/follow")

    def _action(self, method: str, execution_id: str, action: str, **kwargs: Any) -> Any:
        return self._json(method, f"{API}/executions/{_segment(execution_id)}/{action}", **kwargs)

    def replay(self, execution_id: str, task_run_id: str | None = None) -> dict[str, Any]:
        """A new execution replaying this one (from a task run)."""
        params = {"taskRunId": task_run_id} if task_run_id else None
        result: dict[str, Any] = self._action("POST", execution_id, "replay", params=params)
        return result

    def restart(self, execution_id: str) -> dict[str, Any]:
        """Re-run an ended execution's failed task runs."""
        result: dict[str, Any] = self._action("POST", execution_id, "restart")
        return result

    def kill(self, execution_id: str) -> dict[str, Any]:
        """Kill a running execution."""
        result: dict[str, Any] = self._action("DELETE", execution_id, "kill")
        return result

    def resume(self, execution_id: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume a paused execution, with its Pause task's ``onResume`` inputs."""
        result: dict[str, Any] = self._action("POST", execution_id, "resume", json=inputs or {})
        return result

    def pause(self, execution_id: str) -> dict[str, Any]:
        """Pause a running execution."""
        result: dict[str, Any] = self._action("POST", execution_id, "pause")
        return result

    # ---- triggers ----

    def triggers(self) -> list[dict[str, Any]]:
        """Every deployed trigger's status."""
        found = self._json("GET", f"{API}/triggers")
        results: list[dict[str, Any]] = found["results"]
        return results
