"""FILE inputs go to the internal storage; the execution keeps their ``kestra:///`` URIs.

A FILE input arrives as bytes (an upload or a ``data:`` URI), as a local ``file://``
URI (``kestrel run -i f=@path``), or as a stored URI. Bytes and local files are written
to ``kestra:///<ns>/<flow>/executions/<id>/inputs/<input>/<name>`` before the execution
row is inserted; a ``kestra:///`` URI must name a file of the flow's own namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse
from urllib.request import url2pathname

from flows import (
    KESTRA_SCHEME,
    Flow,
    InputError,
    InputType,
    Storage,
    StorageError,
    input_file_uri,
    is_storage_uri,
    storage_key,
)

_CHUNK = 1024 * 1024


def _file_inputs(flow: Flow) -> list[str]:
    return [
        spec.id
        for spec in flow.inputs
        if spec.type is InputType.FILE
        or (spec.type is InputType.ARRAY and spec.item_type is InputType.FILE)
    ]


def needs_storing(flow: Flow, inputs: dict[str, Any]) -> bool:
    """Whether some FILE input holds bytes or a local file to store."""
    for name in _file_inputs(flow):
        value = inputs.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bytes) or (isinstance(item, str) and item.startswith("file:")):
                return True
    return False


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, _CHUNK):
        yield chunk


def check_own_namespace(flow: Flow, uri: str) -> None:
    """A stored URI given as an input must be a file of the flow's namespace.

    Raises:
        StorageError: Another namespace's file, or a bad URI.
    """
    own = storage_key(f"{KESTRA_SCHEME}/{flow.namespace.replace('.', '/')}") + "/"
    if not storage_key(uri).startswith(own):
        raise StorageError(f"{uri} is not a file of namespace '{flow.namespace}'", uri=uri)


def check_file_inputs(flow: Flow, inputs: dict[str, Any]) -> None:
    """Every stored URI among the FILE inputs is a file of the flow's namespace.

    Raises:
        InputError: Naming each input that points elsewhere.
    """
    errors: dict[str, str] = {}
    for name in _file_inputs(flow):
        value = inputs.get(name)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not is_storage_uri(item):
                continue
            try:
                check_own_namespace(flow, item)
            except StorageError as exc:
                errors[name] = str(exc)
    if errors:
        raise InputError(errors)


async def _store_one(
    storage: Storage, flow: Flow, execution_id: str, name: str, index: int | None, item: Any
) -> Any:
    suffix = "" if index is None else f"-{index}"
    if isinstance(item, bytes):
        uri = input_file_uri(flow.namespace, flow.id, execution_id, name, f"{name}{suffix}")
        await storage.put(uri, item)
        return uri
    if isinstance(item, str) and item.startswith("file:"):
        path = Path(url2pathname(urlparse(item).path))
        uri = input_file_uri(flow.namespace, flow.id, execution_id, name, path.name)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await storage.put(uri, _chunks(handle))
        finally:
            handle.close()
        return uri
    return item


async def store_input_files(
    storage: Storage, flow: Flow, inputs: dict[str, Any], execution_id: str
) -> dict[str, Any]:
    """Inputs with every FILE value stored and replaced by its URI.

    Raises:
        InputError: A file could not be stored, or names another namespace's file.
    """
    out = dict(inputs)
    errors: dict[str, str] = {}
    for name in _file_inputs(flow):
        value = inputs.get(name)
        try:
            if isinstance(value, list):
                out[name] = [
                    await _store_one(storage, flow, execution_id, name, i, item)
                    for i, item in enumerate(value)
                ]
            elif value is not None:
                out[name] = await _store_one(storage, flow, execution_id, name, None, value)
        except (StorageError, OSError) as exc:
            errors[name] = str(exc)
    if errors:
        raise InputError(errors)
    return out
