"""JSON Schema of the flow language, for editors' YAML language servers."""

from __future__ import annotations

from typing import Any

from ._model import Flow
from ._registry import REGISTRY

SCHEMA_ID = "https://kestrel.dev/schemas/flow.json"


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every valid flow document satisfies."""
    REGISTRY.load()
    schema = Flow.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Kestrel flow"
    return schema
