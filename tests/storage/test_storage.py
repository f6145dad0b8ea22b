"""The internal storage, against both backends: a local folder and a real S3 server."""

from __future__ import annotations

import os
import resource
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors import ObjectStorage, StorageConfig, open_storage
from flows import (
    FileTooLargeError,
    Storage,
    StorageError,
    StorageFileNotFoundError,
    namespace_file_uri,
    safe_relative_path,
    storage_key,
    task_file_uri,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
def storage(storage_config: StorageConfig) -> ObjectStorage:
    return open_storage(storage_config)


async def _chunks(count: int, size: int = MIB, byte: bytes = b"x") -> AsyncIterator[bytes]:
    block = byte * size
    for _ in range(count):
        yield block


async def test_round_trip_list_and_delete(storage: ObjectStorage) -> None:
    assert isinstance(storage, Storage)
    uri = task_file_uri("shop.orders", "etl", "exec1", "transform", "run1", "out/result.csv")
    assert uri == "kestra:///shop/orders/etl/executions/exec1/tasks/transform/run1/out/result.csv"
    assert await storage.put(uri, b"a,b\n1,2\n") == 8
    assert await storage.exists(uri)
    assert await storage.size(uri) == 8
    assert await storage.read_bytes(uri) == b"a,b\n1,2\n"
    assert b"".join([c async for c in storage.get(uri)]) == b"a,b\n1,2\n"
    other = task_file_uri("shop.orders", "etl", "exec1", "transform", "run1", "b.txt")
    await storage.put(other, _chunks(3, 10))
    listed = await storage.list("kestra:///shop/orders/etl/executions/exec1/")
    assert [(f.uri, f.size) for f in listed] == [(other, 30), (uri, 8)]
    assert await storage.delete(uri) is True
    assert await storage.delete(uri) is False
    assert not await storage.exists(uri)
    with pytest.raises(StorageFileNotFoundError):
        await storage.read_bytes(uri)
    assert await storage.delete_prefix("kestra:///shop/orders/etl/executions/exec1/") == 1
    assert await storage.list("kestra:///shop/orders/etl/executions/exec1/") == []


async def test_streams_a_large_file_in_bounded_memory(storage: ObjectStorage) -> None:
    """128 MiB goes in and out while the process's peak memory grows far less than that."""
    uri = namespace_file_uri("big", f"{uuid.uuid4().hex}.bin")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert await storage.put(uri, _chunks(128)) == 128 * MIB
    total = 0
    async for chunk in storage.get(uri):
        assert chunk.count(b"x") == len(chunk)
        total += len(chunk)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert total == 128 * MIB
    assert grew < 64 * MIB, f"peak memory grew by {grew / MIB:.0f} MiB"


async def test_size_limit_refuses_and_keeps_nothing(storage: ObjectStorage) -> None:
    uri = namespace_file_uri("limits", "too-big.bin")
    with pytest.raises(FileTooLargeError) as caught:
        await storage.put(uri, _chunks(3), limit=2 * MIB)
    assert caught.value.limit == 2 * MIB
    assert not await storage.exists(uri)
    with pytest.raises(FileTooLargeError):
        await storage.put(uri, b"12345", limit=4)
    assert not await storage.exists(uri)
    await storage.put(uri, b"1234", limit=4)
    with pytest.raises(FileTooLargeError):
        await storage.read_bytes(uri, limit=3)


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///ns/../../etc/passwd",
        "kestra:///ns/./x",
        "kestra:////etc/passwd",
        "kestra:///ns/%2e%2e/%2e%2e/etc/passwd",
        "kestra:///ns/a%2F..%2F..%2F..%2Fetc/passwd",
        "kestra:///ns/a%5C..%5Cb",
        "kestra:///ns/a\\..\\b",
        "kestra:///ns/x?y=1",
        "file:///etc/passwd",
        "/etc/passwd",
        "s3://other-bucket/key",
    ],
)
async def test_path_traversal_is_refused(storage: ObjectStorage, uri: str) -> None:
    with pytest.raises(StorageError):
        await storage.put(uri, b"nope")
    with pytest.raises(StorageError):
        await storage.read_bytes(uri)


@pytest.mark.parametrize("path", ["../x", "/abs", "a/../../b", "a//b", "%2e%2e/x", "a/%2F/b", ""])
def test_relative_paths_stay_below_their_folder(path: str) -> None:
    with pytest.raises(StorageError):
        safe_relative_path(path)
    with pytest.raises(StorageError):
        namespace_file_uri("ns", path if path.startswith("/") is False else "a/../" + path)


def test_keys_of_good_uris() -> None:
    assert storage_key("kestra:///a/b/c.txt") == "a/b/c.txt"
    assert storage_key("kestra:///a/with%20space.txt") == "a/with space.txt"
    assert namespace_file_uri("a.b", "/dir/f.txt") == "kestra:///a/b/_files/dir/f.txt"


async def test_a_symlink_out_of_the_local_folder_is_refused(tmp_path: Path) -> None:
    """Someone plants a link inside the storage folder: reads and writes through it fail."""
    root = tmp_path / "storage"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    storage = ObjectStorage(StorageConfig.local(root))
    (root / "ns").mkdir(parents=True)
    os.symlink(outside, root / "ns" / "link")
    with pytest.raises(StorageError, match="outside"):
        await storage.read_bytes("kestra:///ns/link/secret.txt")
    with pytest.raises(StorageError, match="outside"):
        await storage.put("kestra:///ns/link/planted.txt", b"x")
    assert not (outside / "planted.txt").exists()


def test_s3_config_reads_aws_variables_and_masks_secrets() -> None:
    config = StorageConfig.parse(
        "s3://bucket/prefix",
        env={
            "AWS_ACCESS_KEY_ID": "AKIA1",
            "AWS_SECRET_ACCESS_KEY": "s3cr3t",
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        },
    )
    assert config.options["access_key_id"] == "AKIA1"
    assert config.options["region"] == "eu-west-1"
    assert "s3cr3t" not in repr(config)
    assert StorageConfig.parse(None).is_local
    with pytest.raises(StorageError):
        StorageConfig.parse("ftp://host/x")
    with pytest.raises(StorageError):
        StorageConfig.parse("s3:///no-bucket")
