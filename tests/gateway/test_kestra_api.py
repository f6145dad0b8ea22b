"""Kestra behaviours through the REST API: webhook conditions, load-time template checks."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway._flows import deploy, wait_state

pytestmark = pytest.mark.integration

KEY = "kestra-key-0123456789"


async def test_webhook_expression_condition_decides_whether_an_execution_starts(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(
        api,
        f"""\
id: guarded
namespace: {namespace}
tasks:
  - {{id: said, type: io.kestra.plugin.core.debug.Return, format: "{{{{ trigger.body.hello }}}}"}}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
    conditions:
      - type: io.kestra.plugin.core.condition.ExpressionCondition
        expression: "{{{{ trigger.body.hello == 'world' }}}}"
""",
    )
    url = f"/api/v1/executions/webhook/{namespace}/guarded/{KEY}"
    refused = await anonymous.post(url, json={"hello": "moon"})
    assert refused.status_code == 404
    assert "conditions not met" in refused.text
    accepted = await anonymous.post(url, json={"hello": "world"})
    assert accepted.status_code == 200, accepted.text
    final = await wait_state(api, accepted.json()["id"])
    assert final["state"]["current"] == "SUCCESS"


async def test_api_refuses_templates_that_fail_every_run(
    api: httpx.AsyncClient, namespace: str
) -> None:
    source = f"""\
id: broken
namespace: {namespace}
tasks:
  - id: a
    type: core.Log
    message: "{{{{ inputs.nope "
  - id: b
    type: core.Log
    message: "{{{{ inputs.undeclared }}}}"
"""
    response = await api.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 422, response.text
    text = response.text
    assert "syntax error" in text and "inputs.undeclared" in text
    assert "6:" in text and "9:" in text  # each problem at its line
