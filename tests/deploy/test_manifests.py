"""Static checks of deploy/: every manifest parses, refers to things that exist, and uses
the ``kestrel server`` command line and settings the code actually has.

Pure: no network, no Docker engine, no cluster. ``docker compose config`` (client-side)
runs as an extra check only where the compose plugin is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

from flows import iter_flow_files, parse_flow
from gateway._settings import Settings
from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
RAY_JOIN = DEPLOY / "ray-join.sh"
CLUSTER_FILE = DEPLOY / "ray" / "cluster.yaml"

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "RayCluster"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
VERSION = re.compile(r"\d+\.\d+\.\d+")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_docs(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def load_one(path: Path) -> dict[str, Any]:
    docs = load_docs(path)
    assert len(docs) == 1, f"{rel(path)}: expected one YAML document, got {len(docs)}"
    assert isinstance(docs[0], dict)
    return docs[0]


# ---------------------------------------------------------------- Dockerfile parsing


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base}: no {keyword}"
        return found[-1]


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARG defaults declared before the first FROM
    stages: list[Stage]

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args.get(m.group(1), m.group(0)), text)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise AssertionError(f"Dockerfile has no stage {name!r}")


def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments and blank lines, also inside continued instructions
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued instruction"

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede FROM, got {keyword}"
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


def entrypoint(dockerfile: Dockerfile) -> list[str]:
    value = json.loads(dockerfile.stages[-1].last("ENTRYPOINT"))
    assert isinstance(value, list), "ENTRYPOINT must use the exec (JSON) form"
    return value


def default_cmd(dockerfile: Dockerfile) -> list[str]:
    cmds = dockerfile.stages[-1].all("CMD")
    return json.loads(cmds[-1]) if cmds else []


def server_args(dockerfile: Dockerfile, args: list[str]) -> Any:
    """The ``kestrel`` argv the gateway image runs with `args` appended, as the CLI parses it."""
    argv = entrypoint(dockerfile)
    assert "kestrel" in argv, f"ENTRYPOINT does not run kestrel: {argv}"
    kestrel_argv = argv[argv.index("kestrel") + 1 :] + args
    parsed = build_parser().parse_args(kestrel_argv)
    assert parsed.command == "server"
    return parsed


# ---------------------------------------------------------------- YAML


@pytest.mark.parametrize("path", YAML_FILES, ids=[rel(p) for p in YAML_FILES])
def test_every_yaml_parses(path: Path) -> None:
    assert load_docs(path), f"{rel(path)} is empty"


def test_the_expected_manifests_exist() -> None:
    names = {rel(p) for p in YAML_FILES}
    for expected in (
        "deploy/docker-compose.yml",
        "deploy/ray/cluster.yaml",
        "deploy/k8s/kustomization.yaml",
        "deploy/k8s/ray-cluster.yaml",
        "deploy/k8s/kestrel.yaml",
    ):
        assert expected in names
    assert DOCKERFILE.is_file()
    assert (DEPLOY / "README.md").is_file()


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_gateway_image(dockerfile: Dockerfile) -> None:
    gateway = dockerfile.stages[-1]
    assert gateway.name == "gateway", "the gateway must be the last (default) stage"
    assert gateway.base == "python:3.11-slim"
    assert any("pip install" in run for run in gateway.all("RUN"))
    user = gateway.last("USER").split(":")[0]
    assert user not in {"root", "0"}, "the gateway must not run as root"
    assert "8080" in gateway.last("EXPOSE").split()
    healthcheck = gateway.last("HEALTHCHECK")
    assert "/health" in healthcheck
    assert "8080" in healthcheck
    assert entrypoint(dockerfile)[-4:] == ["kestrel", "server", "--host", "0.0.0.0"]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "binding all interfaces is right" in text, "say why 0.0.0.0 is right here"


def test_dockerfile_builds_the_package_once_as_a_wheel(dockerfile: Dockerfile) -> None:
    wheel = dockerfile.stage("wheel")
    assert any(
        run.startswith("pip wheel") and run.rstrip().endswith(" .") for run in wheel.all("RUN")
    )
    for stage in (dockerfile.stage("ray"), dockerfile.stage("gateway")):
        installs = [run for run in stage.all("RUN") if "pip install" in run]
        assert any("from=wheel" in run and "/wheels/*.whl" in run for run in installs)


def test_dockerfile_ray_image(dockerfile: Dockerfile) -> None:
    ray_stage = dockerfile.stage("ray")
    assert re.fullmatch(r"rayproject/ray:\d+\.\d+\.\d+-py311", dockerfile.expand(ray_stage.base))


def test_dockerfile_copies_exist_and_pass_the_dockerignore(dockerfile: Dockerfile) -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the dockerignore should exclude everything not listed"
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            parts = [p for p in copy.split() if not p.startswith("--")]
            if "--from=" in copy:
                continue
            for source in parts[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
                top = source.rstrip("/")
                assert top in allowed, f"COPY {source} is excluded by Dockerfile.dockerignore"


def test_ray_join_script(tmp_path: Path) -> None:
    assert os.access(RAY_JOIN, os.X_OK), "deploy/ray-join.sh must be executable"
    assert subprocess.run(["sh", "-n", str(RAY_JOIN)], check=False).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = f'#!/bin/sh\necho "$(basename "$0") $*" >> {calls}\nexit "${{FAKE_RAY_RC:-0}}"\n'
    for name in ("ray", "kestrel"):
        (bin_dir / name).write_text(fake, encoding="utf-8")
        (bin_dir / name).chmod(0o755)

    def run(*args: str, **env: str) -> tuple[int, list[str]]:
        calls.unlink(missing_ok=True)
        environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
        proc = subprocess.run(["sh", str(RAY_JOIN), *args], env=environ, check=False)
        lines = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
        return proc.returncode, lines

    join = "--num-cpus=0 --num-gpus=0 --disable-usage-stats"
    server = ("kestrel", "server", "--host", "0.0.0.0")
    assert run(*server, "--ray-address", "ray-head:6379") == (
        0,
        [
            f"ray start --address=ray-head:6379 {join}",
            "kestrel server --host 0.0.0.0 --ray-address ray-head:6379",
        ],
    )
    assert run(*server, "--ray-address=h:1")[1][0] == f"ray start --address=h:1 {join}"
    assert run(*server, KESTREL_RAY_ADDRESS="env-head:6379")[1][0] == (
        f"ray start --address=env-head:6379 {join}"
    )
    assert run(*server) == (0, ["kestrel server --host 0.0.0.0"])
    assert run(*server, "--ray-address", "ray://h:10001")[1] == [
        "kestrel server --host 0.0.0.0 --ray-address ray://h:10001"
    ]
    code, lines = run(
        *server, "--ray-address", "h:1", FAKE_RAY_RC="1", KESTREL_RAY_JOIN_ATTEMPTS="1"
    )
    assert code == 1
    assert lines == [f"ray start --address=h:1 {join}"], (
        "must not start kestrel after a failed join"
    )


# ---------------------------------------------------------------- docker compose

COMPOSE_TOP_LEVEL = {"name", "services", "volumes", "networks", "configs", "secrets"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_one(COMPOSE_FILE)


def check_healthcheck(name: str, healthcheck: dict[str, Any]) -> None:
    test = healthcheck.get("test")
    assert test, f"service {name}: healthcheck without test"
    if isinstance(test, list):
        assert test[0] in {"CMD", "CMD-SHELL", "NONE"}, f"service {name}: healthcheck test {test}"
        assert test[0] == "NONE" or len(test) > 1
    else:
        assert isinstance(test, str)


def check_depends_on(name: str, depends: Any, services: dict[str, Any]) -> None:
    items = (
        {d: {"condition": "service_started"} for d in depends}
        if isinstance(depends, list)
        else depends
    )
    for dep, spec in items.items():
        assert dep in services, f"service {name} depends on unknown service {dep}"
        condition = spec.get("condition", "service_started")
        assert condition in DEPENDS_CONDITIONS, f"service {name}: condition {condition}"
        if condition == "service_healthy":
            assert "healthcheck" in services[dep] or services[dep].get("build"), (
                f"service {name} waits for {dep} to be healthy, which has no healthcheck"
            )


def check_volume(name: str, volume: Any, named: set[str]) -> None:
    assert isinstance(volume, str), f"service {name}: use the short volume syntax"
    source = volume.split(":")[0]
    if source.startswith((".", "/")):
        assert (DEPLOY / source).exists(), f"service {name}: bind mount {source} does not exist"
    else:
        assert source in named, f"service {name}: volume {source} is not declared"


def check_build(name: str, build: Any) -> None:
    build = {"context": build} if isinstance(build, str) else build
    context = (DEPLOY / build["context"]).resolve()
    assert context.is_dir(), f"service {name}: build context {context}"
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file(), f"service {name}: no {dockerfile}"
    if "target" in build:
        stages = {stage.name for stage in parse_dockerfile(dockerfile).stages}
        assert build["target"] in stages, f"service {name}: no stage {build['target']}"


def test_compose_structure(compose: dict[str, Any]) -> None:
    assert set(compose) <= COMPOSE_TOP_LEVEL, set(compose) - COMPOSE_TOP_LEVEL
    services: dict[str, Any] = compose["services"]
    named_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service or "build" in service, f"service {name}: no image or build"
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"service {name}: pin {image!r}"
        if "build" in service:
            check_build(name, service["build"])
        for port in service.get("ports", []):
            assert isinstance(port, str), f"service {name}: port {port!r} must be a string"
            assert port.startswith("127.0.0.1:"), f"service {name}: {port} is not loopback-only"
        check_depends_on(name, service.get("depends_on", {}), services)
        if "healthcheck" in service:
            check_healthcheck(name, service["healthcheck"])
        for volume in service.get("volumes", []):
            check_volume(name, volume, named_volumes)
        assert isinstance(service.get("profiles", []), list)
    _docker_compose_config_when_available()


def _docker_compose_config_when_available() -> None:
    """``docker compose config -q``: the compose plugin's own validation, client-side only.

    Run where the plugin exists (this machine has the Docker CLI without it); the
    structural checks above are what always runs.
    """
    docker = shutil.which("docker")
    if docker is None:
        return
    version = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        return
    profiles = ["--profile", "brokers", "--profile", "ray-workers"]
    proc = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), *profiles, "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_core_services(compose: dict[str, Any], dockerfile: Dockerfile) -> None:
    services = compose["services"]
    for core in ("postgres", "ray-head", "kestrel"):
        assert "profiles" not in services[core], f"{core} must start by default"
    assert services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in services["postgres"]

    head = services["ray-head"]
    head_cmd = head["command"]
    assert head_cmd[:3] == ["ray", "start", "--head"]
    assert {"--block", "--include-dashboard=false"} <= set(head_cmd)
    assert any(arg.startswith("--num-cpus=") for arg in head_cmd)
    head_port = next(arg.split("=")[1] for arg in head_cmd if arg.startswith("--port="))

    kestrel = services["kestrel"]
    assert kestrel["ports"] == ["127.0.0.1:8080:8080"]
    assert "../examples/quickstart:/flows:ro" in kestrel["volumes"]
    assert kestrel["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "ray-head": {"condition": "service_healthy"},
    }
    args = server_args(dockerfile, kestrel["command"])
    assert args.host == "0.0.0.0"
    assert args.ray_address == f"ray-head:{head_port}"
    assert args.flows == "/flows"
    assert args.db.startswith("postgresql://")
    assert "@postgres:5432/" in args.db


def test_compose_brokers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for broker in ("nats", "mosquitto", "kafka"):
        assert services[broker].get("profiles") == ["brokers"], broker
        assert "healthcheck" in services[broker], broker
    assert "-js" in services["nats"]["command"]
    conf = DEPLOY / "mosquitto" / "mosquitto.conf"
    assert any(
        v.startswith("./mosquitto/mosquitto.conf:") for v in services["mosquitto"]["volumes"]
    )
    assert re.search(r"^listener 1883$", conf.read_text(encoding="utf-8"), re.M)
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.8.0"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        assert item.split("://")[0] in listeners


# ---------------------------------------------------------------- Kubernetes


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_docs(path)
    ]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for _, obj in k8s_objects() if obj["kind"] == kind]


def only(kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in of_kind(kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_templates(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod templates an object creates pods from."""
    if obj["kind"] == "RayCluster":
        yield obj["spec"]["headGroupSpec"]["template"]
        for group in obj["spec"].get("workerGroupSpecs", []):
            yield group["template"]
    elif obj["kind"] in POD_OWNERS:
        yield obj["spec"]["template"]


def all_pod_templates() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(obj, t) for _, obj in k8s_objects() for t in pod_templates(obj)]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_k8s_objects_have_identity() -> None:
    objects = k8s_objects()
    assert objects
    seen: set[tuple[str, str]] = set()
    for path, obj in objects:
        where = f"{path.name}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        assert obj.get("apiVersion"), where
        assert obj.get("kind"), where
        name = obj.get("metadata", {}).get("name")
        assert name and DNS_LABEL.match(name), where
        assert "namespace" not in obj["metadata"], f"{where}: kustomization sets the namespace"
        key = (obj["kind"], name)
        assert key not in seen, f"{where}: defined twice"
        seen.add(key)


def test_kustomization_lists_exactly_the_files_present() -> None:
    kustomization = load_one(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    present = {p.name for p in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(listed) == present
    namespace = kustomization["namespace"]
    assert only("Namespace", namespace)


def test_k8s_containers() -> None:
    for obj, template in all_pod_templates():
        for container in containers(template):
            where = f"{obj['kind']} {obj['metadata']['name']}: container {container['name']}"
            image = container.get("image", "")
            assert ":" in image and not image.endswith(":latest"), f"{where}: pin {image!r}"
            assert "resources" in container, f"{where}: no resources"
            if obj["kind"] == "RayCluster":
                continue  # KubeRay adds the Ray containers' probes itself
            ports = {p.get("name") for p in container.get("ports", [])}
            assert ports, f"{where}: no ports"
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{where}: no {probe}"
                port = container[probe].get("httpGet", {}).get("port")
                assert port is None or port in ports or isinstance(port, int), f"{where}: {probe}"


def test_workload_selectors_match_their_templates() -> None:
    for obj in of_kind("Deployment") + of_kind("StatefulSet"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        selector = obj["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), obj["metadata"]["name"]
    for statefulset in of_kind("StatefulSet"):
        assert only("Service", statefulset["spec"]["serviceName"])


def test_services_select_existing_pods() -> None:
    templates = all_pod_templates()
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        assert selector, f"Service {service['metadata']['name']} selects nothing"
        matches = [t for _, t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert matches, f"Service {service['metadata']['name']}: no pod carries {selector}"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for template in matches:
                declared = [p for c in containers(template) for p in c.get("ports", [])]
                assert any(target in (p.get("name"), p["containerPort"]) for p in declared), (
                    f"Service {service['metadata']['name']}: targetPort {target} not declared"
                )


def test_references_to_secrets_and_configmaps_exist() -> None:
    secrets = {s["metadata"]["name"]: s for s in of_kind("Secret")}
    configmaps = {c["metadata"]["name"] for c in of_kind("ConfigMap")}
    for obj, template in all_pod_templates():
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, obj["metadata"]["name"]
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, obj["metadata"]["name"]
        for container in containers(template):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = secrets[ref["name"]]
                    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
                    assert ref["key"] in keys, f"Secret {ref['name']} has no key {ref['key']}"


def gateway_container() -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = only("Deployment", "kestrel")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "kestrel"]
    return spec, container


def test_k8s_gateway(dockerfile: Dockerfile) -> None:
    pod, container = gateway_container()
    env = {e["name"]: e for e in container["env"]}
    ray_cluster = of_kind("RayCluster")
    assert len(ray_cluster) == 1
    head_service = f"{ray_cluster[0]['metadata']['name']}-head-svc"
    assert env["KESTREL_RAY_ADDRESS"]["value"] == f"{head_service}:6379"
    assert env["KESTREL_DB"]["valueFrom"]["secretKeyRef"]["key"] == "KESTREL_DB"
    assert env["KESTREL_FLOWS"]["value"] == "/flows"

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "configMap" in volumes[mounts["/flows"]], "the flows ConfigMap is mounted at /flows"

    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    # Service links would inject KESTREL_PORT=tcp://... for the `kestrel` Service, which
    # Settings reads as the server's own port.
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True

    args = server_args(dockerfile, container.get("args", []))
    assert args.host == "0.0.0.0"
    assert only("Service", "kestrel")["spec"]["ports"][0]["port"] == 8080


def test_k8s_database_secret_points_at_the_postgres_service() -> None:
    secret = only("Secret", "kestrel-db")["stringData"]
    dsn = secret["KESTREL_DB"]
    match = re.fullmatch(r"postgresql://([^:]+):([^@]+)@([^:/]+):(\d+)/(\w+)", dsn)
    assert match, dsn
    user, password, host, port, db = match.groups()
    assert (user, password, db) == (
        secret["POSTGRES_USER"],
        secret["POSTGRES_PASSWORD"],
        secret["POSTGRES_DB"],
    )
    service = only("Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    statefulset = only("StatefulSet", "postgres")
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == "postgres:16"
    assert statefulset["spec"]["volumeClaimTemplates"]


def test_k8s_ray_cluster() -> None:
    (cluster,) = of_kind("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
    groups = spec["workerGroupSpecs"]
    assert groups
    images = {head["image"]}
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
        for container in group["template"]["spec"]["containers"]:
            images.add(container["image"])
            assert container["resources"]["requests"] and container["resources"]["limits"]
    assert len(images) == 1, f"head and workers must share one image: {images}"
    assert all(isinstance(v, str) for v in spec["headGroupSpec"]["rayStartParams"].values())


def test_k8s_flows_configmap_holds_valid_flows() -> None:
    (configmap,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "kestrel-flows"]
    ids = set()
    for key, text in configmap["data"].items():
        assert key.endswith((".yaml", ".yml"))
        flow = parse_flow(text, f"kestrel-flows/{key}")
        ids.add((flow.namespace, flow.id))
    assert len(ids) == len(configmap["data"]), "two entries define the same flow"


def test_flows_folder_loads_a_configmap_volume_once(tmp_path: Path) -> None:
    # The layout the kubelet writes for a ConfigMap volume.
    data = tmp_path / "..2025_01_01_00_00_00.000000001"
    data.mkdir()
    (data / "hello.yaml").write_text("id: hello\n", encoding="utf-8")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "hello.yaml").symlink_to("..data/hello.yaml")
    assert list(iter_flow_files([tmp_path])) == [tmp_path / "hello.yaml"]


# ---------------------------------------------------------------- settings and versions


def kestrel_env_names() -> set[str]:
    names = set()
    services = load_one(COMPOSE_FILE)["services"]
    for service in services.values():
        environment = service.get("environment") or {}
        names |= set(
            environment if isinstance(environment, dict) else (e.split("=")[0] for e in environment)
        )
    for _, template in all_pod_templates():
        for container in containers(template):
            names |= {e["name"] for e in container.get("env", [])}
    return {name for name in names if name.startswith("KESTREL_")}


def test_kestrel_environment_variables_are_settings() -> None:
    script_vars = set(re.findall(r"\bKESTREL_[A-Z_]+", RAY_JOIN.read_text(encoding="utf-8")))
    settings_vars = {f"KESTREL_{name.upper()}" for name in Settings.model_fields}
    unknown = kestrel_env_names() - settings_vars - script_vars
    assert not unknown, f"not Settings fields: {sorted(unknown)}"
    _, container = gateway_container()
    literal = {
        e["name"].removeprefix("KESTREL_").lower(): e["value"]
        for e in container["env"]
        if "value" in e and e["name"].removeprefix("KESTREL_").lower() in Settings.model_fields
    }
    Settings(**literal)  # the values validate


def ray_versions(dockerfile: Dockerfile) -> dict[str, str]:
    versions = {"Dockerfile ARG RAY_VERSION": dockerfile.args["RAY_VERSION"]}
    (cluster,) = of_kind("RayCluster")
    versions["RayCluster rayVersion"] = cluster["spec"]["rayVersion"]
    for i, command in enumerate(load_one(CLUSTER_FILE)["setup_commands"]):
        for found in re.findall(r"ray(?:\[[\w,]+\])?==(\S+?)[\"'\s]", command + " "):
            versions[f"cluster.yaml setup_commands[{i}]"] = found
    for path in YAML_FILES:
        for found in re.findall(r"rayproject/ray:([\w.]+?)(?:-py\d+)?\b", path.read_text()):
            versions[f"{rel(path)} image"] = found
    return versions


def test_ray_versions_agree_with_the_installed_ray(dockerfile: Dockerfile) -> None:
    versions = ray_versions(dockerfile)
    assert len(versions) >= 3, versions
    assert len(set(versions.values())) == 1, f"Ray versions differ: {versions}"
    (version,) = set(versions.values())
    assert VERSION.fullmatch(version), version
    installed = ray.__version__.split(".")[:2]
    assert version.split(".")[:2] == installed, (
        f"deploy/ uses Ray {version}, this environment has {ray.__version__}"
    )


def test_python_versions_agree(dockerfile: Dockerfile) -> None:
    gateway = dockerfile.stages[-1].base
    ray_base = dockerfile.expand(dockerfile.stage("ray").base)
    assert gateway.startswith("python:3.11")
    assert ray_base.endswith("-py311")


# ---------------------------------------------------------------- Ray cluster launcher


def test_ray_cluster_launcher_config(dockerfile: Dockerfile) -> None:
    config = load_one(CLUSTER_FILE)
    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.validate(config, schema)

    provider = config["provider"]
    assert provider["type"] == "local"
    assert isinstance(provider["head_ip"], str)
    assert provider["worker_ips"]
    assert config.get("max_workers", len(provider["worker_ips"])) <= len(provider["worker_ips"])
    assert any("kestrel-flow" in cmd for cmd in config["setup_commands"])
    assert any("ray start --head" in cmd for cmd in config["head_start_ray_commands"])
    assert any(
        "ray start --address=$RAY_HEAD_IP:" in cmd for cmd in config["worker_start_ray_commands"]
    )
    for local in config["file_mounts"].values():
        if local != "./dist":  # built by `pip wheel -w dist .` before `ray up`
            assert (ROOT / local).exists(), local

    # The documented gateway command line parses.
    commands = re.findall(r"'(kestrel server [^']+)'", CLUSTER_FILE.read_text(encoding="utf-8"))
    assert commands
    for command in commands:
        parsed = build_parser().parse_args(command.split()[1:])
        assert parsed.command == "server"
        assert parsed.ray_address


def test_two_gateways_on_one_database(compose: dict[str, Any], dockerfile: Dockerfile) -> None:
    """docker-compose and KubeRay run two gateways on one Postgres and one Ray cluster,
    sharing one API token (trigger leases and LISTEN/NOTIFY make that safe)."""
    services = compose["services"]
    gateways = [s for s in services.values() if s.get("image") == services["kestrel"]["image"]]
    assert len(gateways) == 2
    args = [server_args(dockerfile, g["command"]) for g in gateways]
    assert len({(a.db, a.ray_address) for a in args}) == 1, "one database, one Ray cluster"
    assert len({p for g in gateways for p in g["ports"]}) == 2, "each on its own host port"
    assert len({g["environment"]["KESTREL_API_TOKEN"] for g in gateways}) == 1

    deployment = only("Deployment", "kestrel")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    _, container = gateway_container()
    env = {e["name"]: e for e in container["env"]}
    token = env["KESTREL_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = only("Secret", token["name"])
    assert token["key"] in secret["stringData"]
