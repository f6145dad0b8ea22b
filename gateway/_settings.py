"""Server settings: command-line options over ``KESTREL_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows import DEFAULT_MAX_FILE_BYTES

LOOPBACK = "127.0.0.1"


def default_flows_dir() -> Path:
    """``./flows`` when it exists, else the bundled quickstart examples."""
    local = Path("flows")
    if local.is_dir() and any(local.glob("*.y*ml")):
        return local
    return Path(__file__).resolve().parent.parent / "examples" / "quickstart"


class Settings(BaseSettings):
    """Everything ``kestrel server`` can be told; each field is also ``KESTREL_<NAME>``.

    Attributes:
        db: ``postgresql://...``; None starts the embedded Postgres.
        data_dir: Where the embedded Postgres keeps its data (``<data_dir>/postgres``) and
            the generated API token is kept; None: the user's data directory.
        keep_db: Leave the embedded Postgres running when the server stops.
        ray_address: A Ray cluster to join; None starts a local Ray.
        host: Interface to bind (loopback unless told otherwise).
        port: HTTP port.
        flows: Folder of flow files to load and watch.
        api_token: Every endpoint but ``/health`` and webhooks needs ``Bearer <token>``.
            When not set, ``kestrel server`` uses the token it generated in `data_dir`.
        no_auth: Serve the API without a token (an explicit choice, logged at start).
        log_level: DEBUG, INFO, WARNING or ERROR.
        log_format: ``text`` or ``json``.
        execution_actors: Warm execution actors at start (the pool grows from there).
        max_execution_actors: The most execution actors the pool creates.
        listener_hosts: Actors hosting trigger listeners.
        webhook_executions: Webhook executions run in the server process itself, up to
            this many at once (no actor hop); beyond that, and with 0, on the pool.
        webhook_workers: Warm worker actors for the runnable tasks of those executions.
        sync_interval_s: How often the flows folder is checked.
        storage: Internal storage: a folder or ``s3://bucket/prefix`` (credentials from
            the usual AWS environment variables); None is ``<data dir>/storage``.
        max_file_bytes: The largest file accepted by an upload (HTTP 413 beyond).
        inline_outputs_bytes: Task outputs bigger than this (as JSON) go to the storage.
        kv_purge_interval_s: How often expired KV entries are deleted.
        otel_endpoint: An OTLP/HTTP traces URL (``http://127.0.0.1:4318/v1/traces``):
            trace every execution with OpenTelemetry (needs the ``otel`` extra).
    """

    model_config = SettingsConfigDict(env_prefix="KESTREL_", extra="ignore")

    db: str | None = None
    data_dir: Path | None = None
    keep_db: bool = False
    ray_address: str | None = None
    host: str = LOOPBACK
    port: int = Field(default=8080, ge=0, le=65535)
    flows: Path | None = None
    api_token: str | None = None
    no_auth: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    execution_actors: int = Field(default=1, ge=1)
    max_execution_actors: int = Field(default=4, ge=1)
    listener_hosts: int = Field(default=1, ge=1)
    webhook_executions: int = Field(default=200, ge=0)
    webhook_workers: int = Field(default=1, ge=1)
    sync_interval_s: float = Field(default=0.25, gt=0)
    storage: str | None = None
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, ge=1)
    inline_outputs_bytes: int = Field(default=256 * 1024, ge=0)
    kv_purge_interval_s: float = Field(default=60.0, gt=0)
    otel_endpoint: str | None = None

    def flows_dir(self) -> Path:
        """The flows folder to use."""
        return self.flows if self.flows is not None else default_flows_dir()
