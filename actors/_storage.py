"""Internal storage backends: a local folder or an S3-compatible bucket, through obstore.

`StorageConfig` says where the storage is; it is small, picklable and travels with every
attempt sent to a Ray worker (``TaskInvocation.storage``), so a task on any node opens
the storage itself (`open_storage`, one client cached per config and process) instead
of going through the driver. With S3 the config carries the credentials it was given
(the usual AWS environment variables on the server); its ``repr`` masks them.

Both backends are one class, `ObjectStorage`, over obstore's `LocalStore` / `S3Store`:
streaming puts and gets, listing and deletes are obstore's. The local backend also
refuses any key whose real path leaves the root (a symlink planted in the folder).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import obstore
import platformdirs
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, S3Store

from flows import (
    FileInfo,
    FileTooLargeError,
    StorageError,
    StorageFileNotFoundError,
    storage_key,
    storage_uri,
)

__all__ = [
    "ObjectStorage",
    "StorageConfig",
    "StorageFileReader",
    "default_storage_dir",
    "open_storage",
]

_CHUNK = 1024 * 1024
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "token",
    "AWS_REGION": "region",
    "AWS_DEFAULT_REGION": "region",
    "AWS_ENDPOINT_URL": "endpoint",
    "AWS_ENDPOINT_URL_S3": "endpoint",
}
_SECRET_OPTIONS = {"secret_access_key", "token"}

DEFAULT_INLINE_OUTPUTS_BYTES = 256 * 1024
"""Task outputs bigger than this (as JSON) go to the storage by default."""


def default_storage_dir() -> Path:
    """``<user data dir>/kestrel/storage``: the embedded default."""
    return Path(platformdirs.user_data_dir("kestrel")) / "storage"


@dataclass(frozen=True)
class StorageConfig:
    """Where the internal storage is.

    Attributes:
        url: ``file:///abs/path`` (a local folder) or ``s3://bucket/prefix``.
        options: S3 settings: ``endpoint``, ``region``, ``access_key_id``,
            ``secret_access_key``, ``token``.
        inline_outputs_bytes: Task outputs bigger than this (as JSON) are written to the
            storage; the store keeps a reference.
    """

    url: str
    options: Mapping[str, str] = field(default_factory=dict)
    inline_outputs_bytes: int = DEFAULT_INLINE_OUTPUTS_BYTES

    def __repr__(self) -> str:
        shown = {k: ("******" if k in _SECRET_OPTIONS else v) for k, v in self.options.items()}
        return (
            f"StorageConfig(url={self.url!r}, options={shown!r}, "
            f"inline_outputs_bytes={self.inline_outputs_bytes})"
        )

    @classmethod
    def local(cls, folder: str | Path | None = None) -> StorageConfig:
        """A local folder (the default folder when None)."""
        path = Path(folder) if folder is not None else default_storage_dir()
        return cls(path.expanduser().resolve().as_uri())

    @classmethod
    def parse(cls, url: str | None, env: Mapping[str, str] | None = None) -> StorageConfig:
        """From ``--storage``: None or a path → local; ``s3://bucket/prefix`` → S3.

        S3 credentials, region and endpoint come from the usual AWS environment
        variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
        ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``).

        Raises:
            StorageError: An unsupported scheme or an S3 URL without a bucket.
        """
        if url is None or not url.strip():
            return cls.local()
        parsed = urlparse(url)
        if parsed.scheme in ("", "file"):
            return cls.local(parsed.path if parsed.scheme else url)
        if parsed.scheme != "s3":
            raise StorageError(f"storage must be a folder, file:// or s3:// URL, not {url!r}")
        if not parsed.netloc:
            raise StorageError(f"an s3:// storage URL needs a bucket: {url!r}")
        source = os.environ if env is None else env
        options: dict[str, str] = {}
        for name, key in _AWS_ENV.items():
            value = source.get(name)
            if value and key not in options:
                options[key] = value
        return cls(url, options)

    @property
    def is_local(self) -> bool:
        """Whether this is a local folder."""
        return self.url.startswith("file:")

    def describe(self) -> str:
        """The location without credentials, for logs."""
        endpoint = self.options.get("endpoint")
        return f"{self.url} at {endpoint}" if endpoint else self.url


def _store_for(config: StorageConfig) -> tuple[Any, Path | None]:
    parsed = urlparse(config.url)
    if config.is_local:
        root = Path(parsed.path)
        root.mkdir(parents=True, exist_ok=True)
        return LocalStore(root, automatic_cleanup=True), root.resolve()
    prefix = parsed.path.strip("/") or None
    options = dict(config.options)
    endpoint = options.get("endpoint", "")
    extra: dict[str, Any] = {}
    if endpoint:
        extra["virtual_hosted_style_request"] = False
    store = S3Store(
        parsed.netloc,
        prefix=prefix,
        client_options={"allow_http": endpoint.startswith("http://")},
        **options,  # type: ignore[arg-type]
        **extra,
    )
    return store, None


class _Counted:
    """Pass chunks through, stopping once more than `limit` bytes came."""

    def __init__(self, source: AsyncIterable[bytes], limit: int | None) -> None:
        self._source = source
        self._limit = limit
        self.size = 0
        self.too_large = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            if not chunk:
                continue
            self.size += len(chunk)
            if self._limit is not None and self.size > self._limit:
                self.too_large = True
                raise FileTooLargeError(self._limit)
            yield chunk


class ObjectStorage:
    """The internal storage over an obstore store (local folder or S3 bucket).

    Implements `flows.Storage`.

    Args:
        config: Where the storage is.
    """

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        try:
            self._store, self._root = _store_for(config)
        except (OSError, ObstoreError, ValueError) as exc:
            raise StorageError(f"cannot open the storage {config.describe()}: {exc}") from exc

    async def check(self) -> None:
        """Fail now, with a clear message, when the storage cannot be reached or read.

        Raises:
            StorageError: The folder or bucket is not usable with these settings.
        """
        try:
            await self.exists(storage_uri(".kestrel/probe"))
        except StorageError as exc:
            where = self.config.describe()
            raise StorageError(f"the storage {where} is not usable: {exc}") from exc

    def __repr__(self) -> str:
        return f"ObjectStorage({self.config.describe()!r})"

    def _key(self, uri: str) -> str:
        key = storage_key(uri)
        if self._root is not None:
            real = Path(os.path.realpath(self._root / key))
            if real != self._root and self._root not in real.parents:
                raise StorageError(f"{uri!r} leads outside the storage folder", uri=uri)
        return key

    async def put(
        self,
        uri: str,
        data: bytes | AsyncIterable[bytes],
        *,
        limit: int | None = None,
    ) -> int:
        """Write a file, streaming `data`; returns its size (see `flows.Storage.put`)."""
        key = self._key(uri)
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            if limit is not None and len(body) > limit:
                raise FileTooLargeError(limit, uri=uri)
            await self._call(uri, obstore.put_async(self._store, key, body))
            return len(body)
        counted = _Counted(data, limit)
        try:
            await obstore.put_async(self._store, key, counted.__aiter__(), chunk_size=5 * _CHUNK)
        except BaseException as exc:
            if counted.too_large:
                await self.delete(uri)
                raise FileTooLargeError(limit or 0, uri=uri) from None
            if isinstance(exc, ObstoreError):
                raise StorageError(f"cannot write {uri}: {_first_line(exc)}", uri=uri) from exc
            raise
        return counted.size

    async def get(self, uri: str) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk."""
        key = self._key(uri)
        result = await self._call(uri, obstore.get_async(self._store, key))
        try:
            async for chunk in result.stream(min_chunk_size=_CHUNK):
                yield bytes(chunk)
        except ObstoreError as exc:
            raise StorageError(f"cannot read {uri}: {_first_line(exc)}", uri=uri) from exc

    async def read_bytes(self, uri: str, *, limit: int | None = None) -> bytes:
        """The whole file; `FileTooLargeError` beyond `limit`."""
        if limit is not None and await self.size(uri) > limit:
            raise FileTooLargeError(limit, uri=uri)
        key = self._key(uri)
        result = await self._call(uri, obstore.get_async(self._store, key))
        return bytes(await result.bytes_async())

    async def size(self, uri: str) -> int:
        """The file's size in bytes."""
        meta = await self._call(uri, obstore.head_async(self._store, self._key(uri)))
        return int(meta["size"])

    async def exists(self, uri: str) -> bool:
        """Whether a file is stored at `uri`."""
        try:
            await self.size(uri)
        except StorageFileNotFoundError:
            return False
        return True

    async def delete(self, uri: str) -> bool:
        """Delete one file; True when it existed."""
        if not await self.exists(uri):
            return False
        await self._call(uri, obstore.delete_async(self._store, self._key(uri)))
        return True

    async def list(self, prefix: str) -> list[FileInfo]:
        """Every file under a URI prefix, sorted by URI."""
        key = self._key(prefix.rstrip("/"))
        try:
            metas = await obstore.list(self._store, key + "/").collect_async()
        except (NotFoundError, FileNotFoundError):
            return []
        except ObstoreError as exc:
            raise StorageError(f"cannot list {prefix}: {_first_line(exc)}", uri=prefix) from exc
        files = [
            FileInfo(storage_uri(m["path"]), int(m["size"]), m.get("last_modified")) for m in metas
        ]
        return sorted(files, key=lambda f: f.uri)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every file under a URI prefix; returns how many."""
        files = await self.list(prefix)
        keys = [storage_key(f.uri) for f in files]
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            await self._call(prefix, obstore.delete_async(self._store, batch))
        return len(keys)

    def read_sync(self, uri: str, limit: int) -> bytes:
        """The whole file, blocking (expressions); `FileTooLargeError` beyond `limit`."""
        key = self._key(uri)
        try:
            if int(obstore.head(self._store, key)["size"]) > limit:
                raise FileTooLargeError(limit, uri=uri)
            return bytes(obstore.get(self._store, key).bytes())
        except (NotFoundError, FileNotFoundError):
            raise StorageFileNotFoundError(f"no file at {uri}", uri=uri) from None
        except ObstoreError as exc:
            raise StorageError(f"storage failed on {uri}: {_first_line(exc)}", uri=uri) from exc

    def size_sync(self, uri: str) -> int | None:
        """The file's size, blocking; None when missing."""
        key = self._key(uri)
        try:
            return int(obstore.head(self._store, key)["size"])
        except (NotFoundError, FileNotFoundError):
            return None
        except ObstoreError as exc:
            raise StorageError(f"storage failed on {uri}: {_first_line(exc)}", uri=uri) from exc

    async def _call(self, uri: str, call: Any) -> Any:
        try:
            return await call
        except (NotFoundError, FileNotFoundError):
            raise StorageFileNotFoundError(f"no file at {uri}", uri=uri) from None
        except ObstoreError as exc:
            raise StorageError(f"storage failed on {uri}: {_first_line(exc)}", uri=uri) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class StorageFileReader:
    """`flows.FileReader` over the storage of a config, opened on first use."""

    def __init__(self, config: StorageConfig | None) -> None:
        self._config = config

    def read(self, uri: str, limit: int) -> bytes:
        """The whole file (see `flows.FileReader.read`)."""
        return open_storage(self._config).read_sync(uri, limit)

    def size(self, uri: str) -> int | None:
        """The file's size; None when missing."""
        return open_storage(self._config).size_sync(uri)


_OPEN: dict[tuple[str, tuple[tuple[str, str], ...]], ObjectStorage] = {}


def open_storage(config: StorageConfig | None = None) -> ObjectStorage:
    """The storage for `config` (the default local folder when None), one per process."""
    config = config or StorageConfig.local()
    key = (config.url, tuple(sorted(config.options.items())))
    storage = _OPEN.get(key)
    if storage is None:
        storage = _OPEN[key] = ObjectStorage(config)
    return storage
