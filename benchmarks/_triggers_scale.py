"""Scale of triggers: 1,000 idle realtime triggers on listener hosts (by default one, as
``kestrel server`` runs with its default ``KESTREL_LISTENER_HOSTS=1``).

The mix is NATS core, NATS JetStream, MQTT QoS 1, Kafka and Postgres LISTEN/NOTIFY.
Postgres NOTIFY triggers are capped at 50, so the mix stays comparable with earlier runs
(they used to hold a database connection each; a listener host's NOTIFY triggers now
share one per database, see ``postgres_connections`` in the results).

Measured: the extra memory (RSS, and USS which does not double-count shared pages) of
all Ray worker processes, before the hosts exist and after every trigger is RUNNING;
their number; idle CPU (% of one core) over a window, for our processes and, for
context, for the brokers and Postgres; and the status of every trigger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psutil
import ray

from actors import Store, listener_host_class
from actors._listener_host import host_index

from ._servers import Brokers, Postgres
from ._sources import TASKS

NAMESPACE = "bench.scale"
SERVER_NAMES = ("nats-server", "mosquitto", "tansu", "postgres")
PG_NOTIFY_MAX = 50


@dataclass
class ScaleOptions:
    """How many triggers, on how many hosts, the settling time and the idle window."""

    triggers: int = 1000
    hosts: int = 1  # the server's default listener_hosts; --hosts N spreads them
    idle_seconds: float = 30.0
    settle_seconds: float = 20.0
    """After every trigger is RUNNING, before measuring: startup is not idleness (Kafka
    consumer groups still joining, idle Kafka listeners parking after 2 s)."""
    mix: dict[str, float] = field(
        default_factory=lambda: {"nats": 0.30, "jetstream": 0.25, "mqtt": 0.25, "kafka": 0.15}
    )
    pg_notify: int = PG_NOTIFY_MAX

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ScaleOptions:
        opts = (
            cls(triggers=100, hosts=2, idle_seconds=5, settle_seconds=2, pg_notify=5)
            if args.quick
            else cls()
        )
        if args.triggers:
            opts.triggers = args.triggers
            opts.pg_notify = min(PG_NOTIFY_MAX, max(1, args.triggers // 20))
        if args.hosts:
            opts.hosts = args.hosts
        if args.idle_seconds:
            opts.idle_seconds = args.idle_seconds
        return opts

    def counts(self) -> dict[str, int]:
        rest = self.triggers - self.pg_notify
        total = sum(self.mix.values())
        out = {k: int(rest * v / total) for k, v in self.mix.items()}
        out["nats"] += rest - sum(out.values())
        out["pg-notify"] = self.pg_notify
        return out


class Flows:
    """Makes the flow of trigger i of each kind; sets up the shared stream and topic."""

    def __init__(self, brokers: Brokers, dsn: str) -> None:
        self.brokers = brokers
        self.dsn = dsn
        self.tag = uuid.uuid4().hex[:6]
        self.stream = f"SCALE{self.tag.upper()}"
        self.topic = f"scale-{self.tag}"

    async def open(self) -> None:
        import nats
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        client = await nats.connect(str(self.brokers.nats_url))
        try:
            await client.jetstream().add_stream(
                name=self.stream, subjects=[f"scale.js.{self.tag}.>"]
            )
        finally:
            await client.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.brokers.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.topic, num_partitions=1, replication_factor=1)]
            )
        finally:
            await admin.close()

    async def close(self) -> None:
        import nats

        with contextlib.suppress(Exception):
            client = await nats.connect(str(self.brokers.nats_url))
            try:
                await client.jetstream().delete_stream(self.stream)
            finally:
                await client.close()

    def trigger(self, kind: str, i: int) -> str:
        head = "triggers:\n  - id: events\n"
        if kind == "nats":
            return (f"{head}    type: nats.RealtimeTrigger\n    url: {self.brokers.nats_url}\n"
                    f"    subject: 'scale.core.{self.tag}.{i}'\n")  # fmt: skip
        if kind == "jetstream":
            return (f"{head}    type: nats.RealtimeTrigger\n    url: {self.brokers.nats_url}\n"
                    f"    subject: 'scale.js.{self.tag}.{i}'\n    stream: {self.stream}\n"
                    f"    durableId: scale-{self.tag}-{i}\n")  # fmt: skip
        if kind == "mqtt":
            return (f"{head}    type: mqtt.RealtimeTrigger\n    server: {self.brokers.mqtt_url}\n"
                    f"    topic: scale/{self.tag}/{i}\n    qos: 1\n"
                    f"    clientId: scale-{self.tag}-{i}\n")  # fmt: skip
        if kind == "kafka":
            # Idle consumers: Kafka's default fetch wait (500 ms); a 6 s session (tansu
            # answers a JoinGroup after session/2) with 2 s heartbeats.
            props = {"bootstrap.servers": self.brokers.kafka_bootstrap,
                     "session.timeout.ms": "6000", "heartbeat.interval.ms": "2000"}  # fmt: skip
            return (
                f"{head}    type: kafka.RealtimeTrigger\n    topic: {self.topic}\n"
                f"    groupId: scale-{self.tag}-{i}\n    properties: {json.dumps(props)}\n"
            )
        return (f'{head}    type: postgres.RealtimeTrigger\n    url: "{self.dsn}"\n'
                f"    channel: scale_{self.tag}_{i}\n")  # fmt: skip

    def flow(self, kind: str, i: int) -> tuple[str, str]:
        flow_id = f"{kind}-{i}"
        return flow_id, f"id: {flow_id}\nnamespace: {NAMESPACE}\n{TASKS}{self.trigger(kind, i)}"


def _cmdline(proc: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(proc.cmdline())
    return ""


RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _ours() -> list[psutil.Process]:
    """This run's processes: descendants of this driver (a local Ray, the brokers) and
    the benchmark's own Postgres (``pg_ctl`` detaches it), never other users of the box.
    """
    found = {p.pid: p for p in psutil.Process().children(recursive=True)}
    for proc in psutil.process_iter():
        if "kestrel-bench-pg-" in _cmdline(proc):  # the postmaster; its backends follow
            found[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                found.update({c.pid: c for c in proc.children(recursive=True)})
    return list(found.values())


def ray_workers() -> dict[int, psutil.Process]:
    """Ray worker processes of this run's Ray (``ray::...`` titles, ``default_worker.py``)."""
    found = {}
    for proc in _ours():
        line = _cmdline(proc)
        if line.startswith(RAY_AGENTS):
            continue
        if line.startswith("ray::") or (
            line.split(" ")[0].endswith("python") and ("default_worker.py" in line)
        ):
            found[proc.pid] = proc
    return found


def server_processes() -> dict[int, psutil.Process]:
    """This run's brokers and Postgres (server and backends)."""
    found = {}
    for proc in _ours():
        with contextlib.suppress(psutil.Error):
            name, line = proc.name(), _cmdline(proc)
            if any(n in name or line.startswith(n) for n in SERVER_NAMES):
                found[proc.pid] = proc
    return found


def _title(proc: psutil.Process) -> str:
    return _cmdline(proc).split(" ")[0][:60] or "?"


def memory(procs: dict[int, psutil.Process]) -> tuple[int, int]:
    """Sum of RSS and of USS."""
    rss = uss = 0
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            rss += info.rss
            uss += info.uss
    return rss, uss


def _titles(procs: dict[int, psutil.Process]) -> dict[str, int]:
    out: dict[str, int] = {}
    for proc in procs.values():
        title = _title(proc)
        out[title] = out.get(title, 0) + 1
    return out


def cpu_by_process(procs: dict[int, psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each process so far."""
    out = {}
    for pid, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[pid] = times.user + times.system
    return out


def busy_pct(
    procs: dict[int, psutil.Process], t0: dict[int, float], t1: dict[int, float], window: float
) -> dict[str, float]:
    """% of one core over the window, per process title."""
    out: dict[str, float] = {}
    for pid, proc in procs.items():
        if pid in t0 and pid in t1:
            title = _title(proc)
            out[title] = out.get(title, 0.0) + 100 * (t1[pid] - t0[pid]) / window
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


async def _statuses(hosts: list[Any]) -> dict[str, int]:
    infos = await asyncio.gather(*(h.triggers.remote() for h in hosts))
    out: dict[str, int] = {}
    for info in (i for group in infos for i in group):
        out[str(info.status)] = out.get(str(info.status), 0) + 1
    return out


async def _wait_running(hosts: list[Any], n: int, within: float) -> dict[str, int]:
    deadline = time.monotonic() + within
    while True:
        statuses = await _statuses(hosts)
        if statuses.get("RUNNING", 0) >= n or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.5)


async def _pg_connections(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_stat_activity"))
    finally:
        await conn.close()


def _port(address: str | None) -> int | None:
    """The port of ``nats://h:p``, ``tcp://h:p``, ``h:p`` or a DSN (first server)."""
    if not address:
        return None
    first = address.split(",")[0]
    parts = urlsplit(first if "://" in first else f"tcp://{first}")
    return parts.port


def host_sockets(pids: list[int], brokers: Brokers, pg_dsn: str) -> dict[str, int]:
    """TCP connections the listener hosts hold, per server (what sharing saves)."""
    ports = {
        "nats": _port(brokers.nats_url),
        "mqtt": _port(brokers.mqtt_url),
        "kafka": _port(brokers.kafka_bootstrap),
        "postgres": _port(pg_dsn),
    }
    out = dict.fromkeys(ports, 0)
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                remote = conn.raddr.port if conn.raddr else None
                for name, port in ports.items():
                    if port is not None and remote == port:
                        out[name] += 1
    return out


def _busy(times: Any) -> float:
    """Non-idle CPU seconds of the whole machine (nice included: Ray workers run niced)."""
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


Procs = dict[int, psutil.Process]


def part_workers(before: dict[int, str]) -> tuple[Procs, Procs]:
    """This part's Ray worker processes (the hosts and their warm workers) and the others.

    Ours are the workers that appeared, or changed title (an idle worker Ray pre-started
    that became a host or a warm worker), since `before` (pid → title, taken before the
    hosts were made). The others are Ray's idle pool and anything an earlier part of the
    same ``python -m benchmarks`` run left: reported beside, not counted as the triggers'.
    """
    ours: Procs = {}
    others: Procs = {}
    for pid, proc in ray_workers().items():
        (others if before.get(pid) == _title(proc) else ours)[pid] = proc
    return ours, others


async def idle_window(seconds: float, before: dict[int, str]) -> dict[str, Any]:
    """CPU (% of one core) of this part's Ray workers, the others, and servers."""
    workers, others = part_workers(before)
    servers = server_processes()
    watched = {**workers, **others, **servers}
    cpu0, machine0, t0 = cpu_by_process(watched), psutil.cpu_times(), time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window itself
    cpu1, machine1, t1 = cpu_by_process(watched), psutil.cpu_times(), time.monotonic()
    window = t1 - t0
    busy = _busy(machine1) - _busy(machine0)
    by_worker = busy_pct(workers, cpu0, cpu1, window)
    by_other = busy_pct(others, cpu0, cpu1, window)
    by_server = busy_pct(servers, cpu0, cpu1, window)
    return {
        "window_s": round(window, 1),
        "ours_pct": round(sum(by_worker.values()), 2),
        "other_ray_workers_pct": round(sum(by_other.values()), 2),
        "servers_pct": round(sum(by_server.values()), 2),
        "ray_workers_by_title": by_worker,
        "other_ray_workers_by_title": by_other,
        "servers_by_title": by_server,
        "machine_pct_of_one_core": round(100 * busy / window, 2),
    }


async def _deploy(
    dsn: str, flows: Flows, counts: dict[str, int], n_hosts: int
) -> tuple[list[Any], float]:
    """Save every flow, then start the hosts (each deploys its share); seconds to ready."""
    async with Store(dsn) as store:
        for kind, count in counts.items():
            for i in range(count):
                flow_id, source = flows.flow(kind, i)
                await store.save_flow(NAMESPACE, flow_id, source)
    started = time.monotonic()
    prefix = f"scale-host-{flows.tag}"
    hosts = [
        listener_host_class()
        .options(name=f"{prefix}-{i}")
        .remote(dsn, f"{prefix}-{i}", index=i, count=n_hosts, warm_workers=1)
        for i in range(n_hosts)
    ]
    await asyncio.gather(*(h.ready.remote() for h in hosts))
    return hosts, time.monotonic() - started


async def _undeploy_kind(hosts: list[Any], kind: str, count: int) -> None:
    calls = []
    for i in range(count):
        flow_id = f"{kind}-{i}"
        host = hosts[host_index(NAMESPACE, flow_id, len(hosts))]
        calls.append(host.undeploy.remote(NAMESPACE, flow_id))
    await asyncio.gather(*calls)


async def run(brokers: Brokers, pg: Postgres, opts: ScaleOptions) -> dict[str, Any]:
    dsn = await pg.new_database()
    flows = Flows(brokers, dsn)
    counts = opts.counts()
    print(f"triggers: {opts.triggers} idle triggers on {opts.hosts} hosts: {counts}", flush=True)
    await flows.open()
    before = ray_workers()
    before_titles = _titles(before)
    before_by_pid = {pid: _title(proc) for pid, proc in before.items()}
    rss_before, uss_before = memory(before)
    pg_before = await _pg_connections(pg.admin_dsn)
    hosts: list[Any] = []
    try:
        started = time.monotonic()
        hosts, deployed_s = await _deploy(dsn, flows, counts, opts.hosts)
        statuses = await _wait_running(hosts, opts.triggers, within=180)
        running_s = time.monotonic() - started
        print(f"  hosts ready in {deployed_s:.1f}s, {statuses} after {running_s:.1f}s", flush=True)
        after = ray_workers()
        after_titles = _titles(after)
        rss_after, uss_after = memory(after)
        pg_after = await _pg_connections(pg.admin_dsn)
        host_pids = [(await h.load.remote()).pid for h in hosts]
        sockets = host_sockets(host_pids, brokers, dsn)
        print(f"  listener hosts' connections per server: {sockets}", flush=True)
        print(f"  settling {opts.settle_seconds:g}s, then idle CPU over {opts.idle_seconds:g}s",
              flush=True)  # fmt: skip
        await asyncio.sleep(opts.settle_seconds)  # measurement method, not synchronisation
        idle = await idle_window(opts.idle_seconds, before_by_pid)
        final = await _statuses(hosts)
        kafka = counts.get("kafka", 0)
        print(f"  idle CPU over {opts.idle_seconds:g}s without the {kafka} Kafka triggers",
              flush=True)  # fmt: skip
        await _undeploy_kind(hosts, "kafka", kafka)
        await asyncio.sleep(min(opts.settle_seconds, 5.0))  # the undeploys themselves settle
        idle_no_kafka = await idle_window(opts.idle_seconds, before_by_pid)
    finally:
        for host in hosts:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(host.shutdown.remote(), 60)
            ray.kill(host, no_restart=True)
        await flows.close()
    return {
        "options": asdict(opts),
        "mix": counts,
        "deployed": opts.triggers,
        "running": final.get("RUNNING", 0),
        "statuses": final,
        "seconds_to_hosts_ready": round(deployed_s, 1),
        "seconds_to_all_running": round(running_s, 1),
        "memory": {
            "before_rss_bytes": rss_before,
            "after_rss_bytes": rss_after,
            "extra_rss_bytes": rss_after - rss_before,
            "extra_uss_bytes": uss_after - uss_before,
            "before_processes": len(before),
            "after_processes": len(after),
            "before_titles": before_titles,
            "after_titles": after_titles,
            "host_pids": host_pids,
        },
        "idle_cpu": idle,
        "idle_cpu_without_kafka": {**idle_no_kafka, "triggers": opts.triggers - kafka},
        "postgres_connections": {"before": pg_before, "after": pg_after},
        "host_sockets": sockets,
        "note": "CPU: % of one core; ours = this part's Ray worker processes (the listener "
        "hosts and their warm workers); other_ray_workers = Ray's idle pool and what earlier "
        "parts of the run left; "
        "servers = this run's brokers and Postgres; machine = the whole box, other users "
        "included. Kafka triggers use Kafka's default fetch.max.wait.ms (500 ms).",
    }
