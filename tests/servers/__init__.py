"""Real servers for tests (README: the tests start their own servers on free ports).

Each ``*_server()`` context manager yields an address: the matching ``KESTREL_TEST_*``
environment variable when it is set (after checking the server answers), otherwise a
private server started on a free 127.0.0.1 port, stopped and cleaned up on exit. The
pytest fixtures in ``tests/conftest.py`` wrap these; benchmarks can use them directly.
"""

from tests.servers._kafka import ENV_BOOTSTRAP as KAFKA_ENV
from tests.servers._kafka import (
    check_kafka,
    consumer_group_options,
    kafka_server,
    kafka_server_advertising,
)
from tests.servers._kestrel import KestrelServer, kestrel_server, start_kestrel_server
from tests.servers._mqtt import ENV_URL as MQTT_ENV
from tests.servers._mqtt import check_mqtt, find_mosquitto, mqtt_server, parse_mqtt_url
from tests.servers._multinode import MultiNodeCluster, multinode_cluster
from tests.servers._nats import ENV_URL as NATS_ENV
from tests.servers._nats import check_nats, nats_server
from tests.servers._postgres import ENV_DSN as POSTGRES_ENV
from tests.servers._postgres import (
    check_postgres,
    create_database,
    drop_database,
    dsn_with_database,
    new_database_name,
    postgres_server,
)
from tests.servers._process import (
    STARTUP_SECONDS,
    ServerStartError,
    free_port,
    run_async,
    wait_until,
)
from tests.servers._ray import ENV_ADDRESS as RAY_ENV
from tests.servers._ray import RayCluster, ray_session
from tests.servers._s3 import ENV_URL as S3_ENV
from tests.servers._s3 import S3Server, check_s3, s3_server, seaweedfs_server

__all__ = [
    "KAFKA_ENV",
    "MQTT_ENV",
    "NATS_ENV",
    "POSTGRES_ENV",
    "RAY_ENV",
    "S3_ENV",
    "STARTUP_SECONDS",
    "KestrelServer",
    "MultiNodeCluster",
    "RayCluster",
    "S3Server",
    "ServerStartError",
    "check_kafka",
    "check_mqtt",
    "check_nats",
    "check_postgres",
    "check_s3",
    "consumer_group_options",
    "create_database",
    "drop_database",
    "dsn_with_database",
    "find_mosquitto",
    "free_port",
    "kafka_server",
    "kafka_server_advertising",
    "kestrel_server",
    "mqtt_server",
    "multinode_cluster",
    "nats_server",
    "new_database_name",
    "parse_mqtt_url",
    "postgres_server",
    "ray_session",
    "run_async",
    "s3_server",
    "seaweedfs_server",
    "start_kestrel_server",
    "wait_until",
]
