"""SECRET inputs are never shown in clear, and transforms cannot launder them.

The API masks SECRET inputs (execution detail, search, webhooks, event streams); logs and
outputs mask the value; a template that transforms a secret (``|reverse``, ``|upper``,
``|list|join(' ')``, slicing, ``.lower()``) fails its task with a clear error instead of
storing a form the mask would miss.
"""

from __future__ import annotations

import uuid

import pytest

from flows import ExpressionEngine, ExpressionError, SecretValue
from tests.chaos.conftest import ChaosServer

pytestmark = pytest.mark.integration

NAMESPACE = "tests.chaos.secrets"
SECRET = "hunter2-Kestrel-xyz"
TRANSFORMS = {
    "reverse": "{{ inputs.pw | reverse }}",
    "upper": "{{ inputs.pw | upper }}",
    "list join": "{{ inputs.pw | list | join(' ') }}",
    "slice": "{{ inputs.pw[1:] }}",
    "item": "{{ inputs.pw[0] }}",
    "method": "{{ inputs.pw.lower() }}",
    "replace filter": "{{ inputs.pw | replace('-', '') }}",
    "secret() upper": "{{ secret('PW') | upper }}",
}
LAUNDERED = {SECRET[::-1], SECRET.upper(), " ".join(SECRET), SECRET[1:], SECRET.lower()}


def flow(flow_id: str, value: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n"
        "inputs:\n  - {id: pw, type: SECRET}\n  - {id: who, type: STRING}\n"
        "tasks:\n"
        f'  - {{id: shown, type: core.Return, value: "{value}"}}\n'
        '  - {id: said, type: core.Log, message: "{{ inputs.who }} used {{ inputs.pw }}"}\n'
    )


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transforms_of_a_secret_are_refused(name: str) -> None:
    engine = ExpressionEngine(secret_lookup=lambda _name: SECRET)
    context = {"inputs": {"pw": SecretValue(SECRET)}}
    with pytest.raises(ExpressionError, match="secret value is not allowed"):
        engine.render(TRANSFORMS[name], context)


def test_a_secret_as_it_is_still_renders() -> None:
    engine = ExpressionEngine(secret_lookup=lambda _name: SECRET)
    context = {"inputs": {"pw": SecretValue(SECRET)}}
    assert engine.render("Bearer {{ inputs.pw }}", context) == f"Bearer {SECRET}"
    assert engine.render("{{ inputs.pw | tojson }}", context) == f'"{SECRET}"'
    assert engine.render("{{ inputs.pw | length }}", context) == str(len(SECRET))
    assert engine.render("{{ secret('PW') }}", context) == SECRET


async def run(server: ChaosServer, value: str) -> tuple[dict[str, object], str]:
    flow_id = f"secret-{uuid.uuid4().hex[:8]}"
    async with server.client() as client:
        created = await client.post(
            "/api/v1/flows",
            content=flow(flow_id, value),
            headers={"Content-Type": "application/x-yaml"},
        )
        assert created.status_code == 201, created.text
        started = await client.post(
            f"/api/v1/executions/{NAMESPACE}/{flow_id}?wait=true",
            json={"pw": SECRET, "who": "ada"},
        )
        assert started.status_code == 200, started.text
        execution_id = started.json()["id"]
        detail = await client.get(f"/api/v1/executions/{execution_id}")
        logs = await client.get(f"/api/v1/logs/{execution_id}")
        listed = await client.get("/api/v1/executions/search", params={"namespace": NAMESPACE})
    seen = started.text + detail.text + logs.text + listed.text
    return detail.json(), seen


async def test_secret_inputs_are_masked_in_the_api_logs_and_outputs(
    chaos_server: ChaosServer,
) -> None:
    detail, seen = await run(chaos_server, "{{ inputs.pw }}")
    assert detail["state"]["current"] == "SUCCESS"
    assert detail["inputs"] == {"pw": "******", "who": "ada"}
    assert SECRET not in seen
    assert "ada used ******" in seen


@pytest.mark.parametrize("name", ["reverse", "upper", "list join", "slice"])
async def test_a_transformed_secret_fails_its_task_and_leaks_nothing(
    chaos_server: ChaosServer, name: str
) -> None:
    detail, seen = await run(chaos_server, TRANSFORMS[name])
    assert detail["state"]["current"] == "FAILED"
    assert "secret value is not allowed" in seen
    assert SECRET not in seen
    assert not [form for form in LAUNDERED if form in seen]
