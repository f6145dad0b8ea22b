"""Every flow under examples/ loads, and together they cover the whole flow language."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows import REGISTRY, Flow, InputType, iter_flow_files, load_flow, walk_tasks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KESTRA = EXAMPLES / "kestra"
FILES = list(iter_flow_files([EXAMPLES]))
KESTRA_FILES = [f for f in FILES if f.parent == KESTRA]

# Properties Kestrel adds on top of Kestra's plugins: a Kestra-only flow must not use them.
KESTREL_ONLY = {
    "maxInFlight", "deadLetterAfter", "autoOffsetReset", "startSequence", "stream",
    "queueGroup", "msgId", "jetstream", "payload", "cleanSession", "sessionExpiryInterval",
    "cursorColumn", "pollInterval", "resources", "signature", "debounce",
}  # fmt: skip


def _name(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))


@pytest.fixture(scope="module")
def flows() -> dict[str, Flow]:
    return {_name(path): load_flow(path) for path in FILES}


def test_there_are_enough_examples() -> None:
    assert len(FILES) >= 15
    assert len(KESTRA_FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_example_loads(path: Path) -> None:
    flow = load_flow(path)  # raises FlowError with file:line:col on any problem
    assert flow.namespace.startswith("kestrel.examples")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "an example starts with a comment saying what it shows"


def test_flow_ids_are_unique(flows: dict[str, Flow]) -> None:
    uids = [flow.uid for flow in flows.values()]
    assert len(uids) == len(set(uids))


def _types_of(flow: Flow) -> set[str]:
    names = {type(task).type_name for _, task in walk_tasks(flow)}
    return names | {type(trigger).type_name for trigger in flow.triggers}


def test_examples_use_every_registered_type(flows: dict[str, Flow]) -> None:
    used = set().union(*(_types_of(flow) for flow in flows.values()))
    # Types a test may have registered in this process (defined in a tests module) aside.
    ours = {info.name for info in REGISTRY.types() if not info.cls.__module__.startswith("tests")}
    assert used == ours


def test_examples_use_every_input_type(flows: dict[str, Flow]) -> None:
    used = {i.type for flow in flows.values() for i in flow.inputs}
    assert used == set(InputType) - {InputType.BOOL}


def test_hello_is_the_simplest_flow(flows: dict[str, Flow]) -> None:
    hello = flows["hello.yaml"]
    assert hello.namespace == "kestrel.examples"
    assert hello.triggers == []
    assert all(not i.required or i.defaults is not None for i in hello.inputs)
    assert [task.type for task in hello.tasks] == ["core.Log", "core.Return"]


def test_named_examples_exist(flows: dict[str, Flow]) -> None:
    for name in (
        "hello.yaml",
        "iot-sensor-alerts.yaml",
        "kafka-order-alerts.yaml",
        "nightly-report.yaml",
        "webhook-github.yaml",
    ):
        assert name in flows


def _typed_items(node: Any, top: bool = True) -> Iterator[dict[str, Any]]:
    """Every task or trigger mapping of a raw flow document (inputs/outputs skipped)."""
    if isinstance(node, dict):
        if not top and "id" in node and "type" in node:
            yield node
        for key, value in node.items():
            if top and key in ("inputs", "outputs"):
                continue
            yield from _typed_items(value, top=False)
    elif isinstance(node, list):
        for item in node:
            yield from _typed_items(item, top=False)


@pytest.mark.parametrize("path", KESTRA_FILES, ids=_name)
def test_kestra_examples_use_only_kestra_names(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = list(_typed_items(doc))
    assert items
    for item in items:
        assert item["type"].startswith("io.kestra."), item["type"]
        assert REGISTRY.get(item["type"]) is not None
        extras = KESTREL_ONLY & set(item)
        assert not extras, f"{item['id']} uses Kestrel-only properties {extras}"
