"""The type registry: short names, Kestra aliases, closest names, entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows import REGISTRY, RegistryError, Task, TypeRegistry


def test_every_builtin_type_has_a_short_name_and_docstring() -> None:
    for info in REGISTRY.types():
        assert "." in info.name and not info.name.startswith("io.kestra")
        assert info.cls.__doc__, info.name
        assert all(alias.startswith("io.kestra.") for alias in info.aliases), info.name


def test_alias_and_short_name_resolve_to_one_class() -> None:
    short = REGISTRY.resolve("flow.Parallel")
    alias = REGISTRY.resolve("io.kestra.plugin.core.flow.Parallel")
    assert short is alias
    assert short.kind == "task"


def test_resolve_unknown_suggests_closest() -> None:
    with pytest.raises(RegistryError, match=r"did you mean flow\.Parallel"):
        REGISTRY.resolve("flow.Paralel")


def test_kind_mismatch_is_unknown() -> None:
    with pytest.raises(RegistryError, match=r"unknown trigger 'core\.Log'"):
        REGISTRY.resolve("core.Log", "trigger")


def test_a_name_cannot_be_taken_twice() -> None:
    registry = TypeRegistry()

    class One(Task):
        """One."""

    class Two(Task):
        """Two."""

    registry.add("x.One", One, "task")
    with pytest.raises(RegistryError, match="already registered"):
        registry.add("x.One", Two, "task")


def test_third_party_plugin_registers_through_entry_points(tmp_path: Path) -> None:
    (tmp_path / "acme_kestrel.py").write_text(
        textwrap.dedent(
            '''
            """A third-party plugin."""
            from flows import RunnableTask, register_type

            @register_type("acme.Hello")
            class Hello(RunnableTask):
                """Say hello."""

                who: str
            '''
        )
    )
    dist = tmp_path / "acme_kestrel-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-kestrel\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kestrel.plugins]\nacme = acme_kestrel\n")
    script = textwrap.dedent(
        """
        from flows import REGISTRY, parse_flow
        flow = parse_flow("id: a\\nnamespace: n\\ntasks:\\n  - {id: h, type: acme.Hello, who: me}\\n")
        print(type(flow.tasks[0]).__name__, flow.tasks[0].who, REGISTRY.resolve("acme.Hello").kind)
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello me task"
