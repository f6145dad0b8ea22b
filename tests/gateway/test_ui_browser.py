"""The web UI in a real browser (Debian's Chromium, driven by Playwright) against the live
server of this package: every step waits with Playwright's auto-waiting ``expect``.

Each test saves screenshots in its own output folder (``tmp_path``); with
``KESTREL_UI_SCREENSHOTS=<dir>`` they are also written there (the README's come from here).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.gateway._flows import deploy, sleepy_flow, wait_state
from tests.gateway.conftest import LiveServer
from tests.polling import eventually

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    """A browser session that gave the UI its API token once, through the UI's prompt."""
    ctx = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 900}
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    page = await ctx.new_page()
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/ui/executions$"))
    prompt = page.get_by_label("API token")
    await expect(prompt).to_be_visible()
    await prompt.fill(live_server.token)
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    await expect(prompt).to_be_hidden()
    await page.close()
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    await opened.close()
    assert not errors, errors


async def shot(page: Page, folder: Path, name: str) -> Path:
    """A screenshot in the test's folder (and in KESTREL_UI_SCREENSHOTS when set)."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 0
    extra = os.environ.get("KESTREL_UI_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


async def editor_text(page: Page, text: str) -> None:
    content = page.locator(".cm-content")
    await content.click()
    await page.keyboard.press("ControlOrMeta+a")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(text)


def greeter(namespace: str, task_type: str = "core.Log") -> str:
    return f"""id: greeter
namespace: {namespace}
inputs:
  - id: name
    type: STRING
  - id: times
    type: INT
    defaults: 2
tasks:
  - id: hello
    type: {task_type}
    message: "hello {{{{ inputs.name }}}} x{{{{ inputs.times }}}}"
  - id: both
    type: flow.Parallel
    tasks:
      - id: short-nap
        type: flow.Sleep
        duration: PT0.2S
      - id: long-nap
        type: flow.Sleep
        duration: PT0.4S
  - id: warn
    type: core.Log
    level: WARN
    message: careful
  - id: bye
    type: core.Log
    message: bye
"""


async def test_editor_validate_save_run_watch_logs_and_replay(
    page: Page, api: httpx.AsyncClient, namespace: str, tmp_path: Path
) -> None:
    await page.goto("/ui/flows/new")
    await expect(page.locator(".cm-content")).to_be_visible()
    # A bad type on line 11: the server's marker lands on that line while typing.
    await editor_text(page, greeter(namespace, task_type="core.Nope"))
    problem = page.get_by_test_id("problems").locator("li")
    await expect(problem).to_have_count(1)
    await expect(problem).to_have_attribute("data-line", "11")
    await expect(problem).to_contain_text("core.Nope")
    marked = page.locator(".cm-lintRange-error")
    await expect(marked).to_have_text("core.Nope")
    await shot(page, tmp_path, "editor")

    await editor_text(page, greeter(namespace))
    await expect(problem).to_have_count(0)
    # Completion from the flow's JSON Schema (a top-level key).
    await page.keyboard.press("ControlOrMeta+End")
    await page.keyboard.type("descr")
    completion = page.locator(".cm-tooltip-autocomplete")
    await expect(completion).to_contain_text("description")
    await page.keyboard.press("Escape")
    for _ in range(5):
        await page.keyboard.press("Backspace")
    # Hover docs from the schema.
    await page.locator(".cm-line").nth(1).get_by_text("namespace", exact=True).hover()
    await expect(page.locator(".cm-tooltip-hover")).to_contain_text("string")
    await page.keyboard.press("ControlOrMeta+s")
    await expect(page).to_have_url(re.compile(rf"/ui/flows/{namespace}/greeter$"))
    await expect(page.get_by_test_id("save-status")).to_have_text("saved revision 1")

    # A second revision (Ctrl/Cmd+S), then its diff with the first, and a restore.
    await expect(page.locator(".cm-content")).to_contain_text("message: bye")
    await editor_text(page, greeter(namespace).replace("message: bye", "message: farewell"))
    await page.keyboard.press("ControlOrMeta+s")
    await expect(page.get_by_test_id("save-status")).to_have_text("saved revision 2")
    await page.get_by_role("tab", name="Revisions").click()
    await expect(page.locator(".cm-mergeView")).to_contain_text("farewell")
    await expect(page.locator(".cm-mergeView .cm-changedLine").first).to_be_visible()
    await shot(page, tmp_path, "revisions")
    await page.get_by_role("button", name="Restore revision 1").click()
    await expect(page.get_by_test_id("save-status")).to_have_text("saved revision 3")
    await expect(page.locator(".cm-content")).to_contain_text("message: bye")

    # The flows list: the namespace tree and the search find it.
    await page.goto("/ui/flows")
    await page.get_by_label("search flows").fill("greeter")
    listed = page.locator(f'tr[data-flow="{namespace}/greeter"]')
    await expect(listed).to_contain_text("3")  # the revision
    await page.goto(f"/ui/flows/{namespace}/greeter")

    # Topology: every task and the start/end are drawn, from the editor's text as it is
    # (an unsaved task shows at once).
    await expect(page.locator(".cm-content")).to_contain_text("message: bye")
    unsaved = greeter(namespace) + "  - id: extra\n    type: core.Log\n    message: more\n"
    await editor_text(page, unsaved)
    await page.get_by_role("tab", name="Topology").click()
    await expect(page.locator('[data-node="extra"]')).to_be_visible()
    await shot(page, tmp_path, "topology")
    for node in ("hello", "both", "both/short-nap", "both/long-nap", "warn", "bye", "__end"):
        await expect(page.locator(f'[data-node="{node}"]')).to_be_visible()

    # Run from the form generated from the inputs: a field error first, then a run.
    await page.get_by_role("tab", name="Run").click()
    await page.get_by_label("times").fill("two")
    await page.get_by_role("button", name="Execute").click()
    await expect(page.locator('[data-field="times"] .field-error')).to_have_text(
        "must be a whole number"
    )
    await shot(page, tmp_path, "run-form")
    await page.get_by_label("times").fill("3")
    await page.get_by_label("name").fill("Ada")
    await page.get_by_role("button", name="Execute").click()
    await expect(page).to_have_url(re.compile(r"/ui/executions/[^/]+$"))
    first_url = page.url

    # It finishes live (SSE), with its three task runs on the Gantt.
    await expect(page.locator("h1 .badge")).to_have_text("SUCCESS")
    await expect(page.locator(".gantt-row")).to_have_count(6)
    await shot(page, tmp_path, "execution")

    # Logs, then the level filter.
    await page.get_by_role("tab", name="Logs").click()
    logs = page.get_by_role("log")
    await expect(logs).to_contain_text("hello Ada x3")
    await expect(logs).to_contain_text("careful")
    await page.get_by_label("log level").select_option("WARN")
    await expect(logs.locator(".log-line")).to_have_count(1)
    await expect(logs).to_contain_text("careful")

    # One task's logs: click its row on the Gantt.
    await page.get_by_label("log level").select_option("")
    await page.get_by_role("tab", name="Gantt").click()
    await page.locator('.gantt-label:text-is("bye")').click()
    details = page.get_by_test_id("task-run")
    await expect(details).to_contain_text("Task run bye")
    await expect(details.locator("tbody tr")).to_have_count(1)  # one attempt
    await details.get_by_role("button", name="Logs of this task").click()
    await expect(logs.locator(".log-line")).to_have_count(1)
    await expect(logs).to_contain_text("bye")

    # Replay from the "warn" task run: a new execution linked to the first.
    await page.get_by_role("tab", name="Gantt").click()
    await page.locator('.gantt-row:has(.gantt-label:text-is("warn")) button').click()
    await expect(page).not_to_have_url(first_url)
    await expect(page.get_by_text("replay of")).to_be_visible()
    await expect(page.locator("h1 .badge")).to_have_text("SUCCESS")

    # The executions list, filtered by a deep link, shows both, and new ones live.
    await page.goto(f"/ui/executions?namespace={namespace}")
    rows = page.locator("tr[data-execution]")
    await expect(rows).to_have_count(2)
    started = await api.post(f"/api/v1/executions/{namespace}/greeter", json={"name": "Bo"})
    assert started.status_code == 200, started.text
    await expect(rows).to_have_count(3)
    await expect(page.locator(f'tr[data-execution="{started.json()["id"]}"] .badge')).to_have_text(
        "SUCCESS"
    )
    await shot(page, tmp_path, "executions")
    await page.goto("/ui/flows")
    await page.get_by_role("button", name=namespace.split(".")[0]).click()
    await expect(listed.locator(".badge")).to_have_text("SUCCESS")  # its last execution
    await shot(page, tmp_path, "flows")
    await page.goto(f"/ui/executions?namespace={namespace}")
    # Bulk: select all, replay them all.
    await page.get_by_label("select all").check()
    await page.get_by_role("button", name="Replay").click()
    await expect(page.get_by_text("replay: 3 done")).to_be_visible()
    await expect(rows).to_have_count(6)


async def test_kv_entry_edited_with_type_and_ttl(
    page: Page, api: httpx.AsyncClient, namespace: str, tmp_path: Path
) -> None:
    put = await api.put(f"/api/v1/namespaces/{namespace}/kv/limit", json=10)
    assert put.status_code == 200, put.text
    await page.goto(f"/ui/kv?namespace={namespace}")
    await page.get_by_role("button", name="limit").click()
    await expect(page.get_by_label("value")).to_have_value("10")
    await page.get_by_label("value").fill("25")
    await page.get_by_label("ttl").fill("PT1H")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("saved limit")).to_be_visible()
    await expect(page.locator('tr[data-kv="limit"]')).not_to_contain_text("never")
    got = (await api.get(f"/api/v1/namespaces/{namespace}/kv/limit")).json()
    assert got == {"type": "NUMBER", "value": 25}
    keys = (await api.get(f"/api/v1/namespaces/{namespace}/kv")).json()
    assert keys[0]["expirationDate"] is not None
    await shot(page, tmp_path, "kv")


def approval_flow(namespace: str) -> str:
    return f"""id: approval
namespace: {namespace}
tasks:
  - id: before
    type: core.Log
    message: asking
  - id: wait
    type: flow.Pause
    onResume:
      - id: approver
        type: STRING
        description: Who approved it
  - id: after
    type: core.Log
    message: "approved by {{{{ outputs.wait.onResume.approver }}}}"
"""


async def test_pause_then_resume_with_the_on_resume_form(
    page: Page, api: httpx.AsyncClient, namespace: str, tmp_path: Path
) -> None:
    await deploy(api, approval_flow(namespace))
    started = await api.post(f"/api/v1/executions/{namespace}/approval", json={})
    execution_id = started.json()["id"]
    await page.goto(f"/ui/executions/{execution_id}")
    await expect(page.locator("h1 .badge")).to_have_text("PAUSED")
    form = page.locator(".resume-panel")
    await expect(form.locator('[data-field="approver"]')).to_contain_text("Who approved it")
    await form.get_by_label("approver").fill("dba-on-call")
    await shot(page, tmp_path, "paused")
    await form.get_by_role("button", name="Resume").click()
    # The page follows the execution live to its end.
    await expect(page.locator("h1 .badge")).to_have_text("SUCCESS")
    await expect(page.locator(".resume-panel")).to_have_count(0)
    await expect(page.locator('.gantt-row[data-state="SUCCESS"]')).to_have_count(3)
    # The value typed in the form reached the flow as the Pause task's onResume output.
    await page.get_by_role("tab", name="Logs").click()
    await expect(page.get_by_role("log")).to_contain_text("approved by dba-on-call")


def nats_flow(namespace: str, nats_url: str, subject: str, serde: str) -> str:
    return f"""id: inbox
namespace: {namespace}
tasks:
  - id: show
    type: core.Log
    message: "got {{{{ trigger.data }}}}"
triggers:
  - id: messages
    type: nats.RealtimeTrigger
    url: {nats_url}
    subject: {subject}
    deserializer: {serde}
"""


async def trigger_status(api: httpx.AsyncClient, namespace: str) -> dict[str, object] | None:
    found = (await api.get("/api/v1/triggers")).json()["results"]
    return next((t for t in found if t["namespace"] == namespace), None)


async def test_poison_message_dead_letter_redriven_after_fixing_the_flow(
    page: Page, api: httpx.AsyncClient, namespace: str, nats_url: str, tmp_path: Path
) -> None:
    import nats

    subject = f"ui.{uuid.uuid4().hex}"
    await deploy(api, nats_flow(namespace, nats_url, subject, "JSON"))

    async def running() -> bool:
        status = await trigger_status(api, namespace)
        return status is not None and status["status"] == "RUNNING"

    await eventually(running, what="the NATS trigger is running")
    client = await nats.connect(nats_url)
    try:
        await client.publish(subject, b"{oops, not json")
        await client.flush()
    finally:
        await client.close()

    # The triggers view shows it with its counters.
    await page.goto("/ui/triggers")
    row = page.locator(f'tr[data-trigger="{namespace}.inbox/messages"]')
    await expect(row.get_by_test_id("trigger-status")).to_have_text("RUNNING")
    await expect(row.locator("td").nth(6)).to_have_text("1")  # dead letters
    await shot(page, tmp_path, "triggers")

    await page.goto(f"/ui/deadletters?namespace={namespace}")
    letter = page.locator("tr[data-dead-letter]")
    await expect(letter).to_have_count(1)
    await expect(letter).to_contain_text("JSON")
    await letter.get_by_role("button", name="Payload").click()
    await page.get_by_label("text").check()
    await expect(page.get_by_test_id("payload")).to_have_text("{oops, not json")
    await page.get_by_label("hex").check()
    await expect(page.get_by_test_id("payload")).to_contain_text("7b 6f 6f 70 73")
    await letter.get_by_role("button", name="Re-drive").click()
    await expect(page.get_by_role("alert")).to_contain_text("still not JSON")
    await shot(page, tmp_path, "deadletters")

    fixed = await api.put(
        f"/api/v1/flows/{namespace}/inbox",
        content=nats_flow(namespace, nats_url, subject, "STRING"),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert fixed.status_code == 200, fixed.text
    await letter.get_by_role("button", name="Re-drive").click()
    link = page.get_by_test_id("redriven")
    await expect(link).to_be_visible()
    await page.reload()  # kept by the server: still marked after a reload
    await expect(link).to_contain_text("re-driven")
    await link.click()
    await expect(page.locator("h1 .badge")).to_have_text("SUCCESS")
    await page.get_by_role("tab", name="Logs").click()
    await expect(page.get_by_role("log")).to_contain_text("got {oops, not json")


async def test_dashboard_counts_and_rates(
    page: Page, api: httpx.AsyncClient, namespace: str, tmp_path: Path
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    done = await api.post(f"/api/v1/executions/{namespace}/sleepy?wait=true", json={})
    assert done.json()["state"]["current"] == "SUCCESS"
    await deploy(api, approval_flow(namespace))
    started = await api.post(f"/api/v1/executions/{namespace}/approval", json={})
    execution_id = started.json()["id"]
    await wait_state(api, execution_id, {"PAUSED"})
    await page.goto("/ui/dashboard")
    running_now = page.get_by_test_id("running-now")
    await expect(running_now).to_have_text(re.compile(r"^\d+$"))
    before = int(await running_now.inner_text())
    assert before >= 1
    await expect(page.get_by_role("img", name="executions per minute")).to_be_visible()
    await expect(page.get_by_test_id("success-rate")).to_have_text(re.compile(r"\d+\.\d %"))
    await shot(page, tmp_path, "dashboard")
    assert (await api.post(f"/api/v1/executions/{execution_id}/kill")).status_code == 200

    async def shows_the_running_count() -> bool:
        stats = (await api.get("/api/v1/stats/executions")).json()
        return await running_now.inner_text() == str(stats["running"])

    # Live: the card follows the store (one fewer running, unless another one started).
    await eventually(shows_the_running_count, what="the dashboard shows the running count")


def kv_webhook_flow(namespace: str, key: str) -> str:
    return f"""id: hooked
namespace: {namespace}
tasks:
  - id: remember
    type: kv.Set
    key: last
    value: "{{{{ trigger.body.x }}}}"
triggers:
  - id: hook
    type: trigger.Webhook
    key: {key}
"""


async def test_trigger_latency_then_disable_and_enable_it(
    page: Page, api: httpx.AsyncClient, namespace: str, tmp_path: Path
) -> None:
    await deploy(api, kv_webhook_flow(namespace, "ui-disable-key-123"))
    hook = f"/api/v1/executions/webhook/{namespace}/hooked/ui-disable-key-123"
    for x in range(3):
        fired = await api.post(hook, json={"x": x})
        assert fired.status_code == 200, fired.text
        await wait_state(api, fired.json()["id"])
    await page.goto("/ui/triggers")
    row = page.locator(f'tr[data-trigger="{namespace}.hooked/hook"]')
    await expect(row.get_by_test_id("trigger-status")).to_have_text("RUNNING")
    # Event → first task latency: p50/p99 over the three events, and their histogram.
    await expect(row.get_by_test_id("first-task-latency")).to_contain_text("(3)")
    await expect(row.get_by_test_id("first-task-latency")).to_contain_text(re.compile(r"p50 \d"))
    histogram = page.locator(f'tr[data-trigger-latency="{namespace}.hooked/hook"]')
    await expect(histogram.get_by_role("img", name=re.compile("latency histogram"))).to_be_visible()
    await expect(row.get_by_test_id("created-latency")).to_contain_text("p99")
    await shot(page, tmp_path, "triggers-latency")
    await row.get_by_role("button", name="Disable").click()
    await expect(row.get_by_test_id("trigger-status")).to_have_text("STOPPED")
    await expect(row.get_by_role("button", name="Enable")).to_be_visible()
    await shot(page, tmp_path, "trigger-disabled")
    assert (await api.post(hook, json={"x": 1})).status_code == 404  # switched off
    await row.get_by_role("button", name="Enable").click()
    await expect(row.get_by_test_id("trigger-status")).to_have_text("RUNNING")
    assert (await api.post(hook, json={"x": 1})).status_code == 200


def wide_flow(namespace: str, count: int) -> str:
    return f"""id: wide
namespace: {namespace}
tasks:
  - id: each
    type: flow.ForEach
    values: "{{{{ range({count}) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: item
        type: core.Log
        message: "item {{{{ taskrun.value }}}}"
"""


async def test_gantt_of_a_thousand_task_runs(
    page: Page, api: httpx.AsyncClient, namespace: str, tmp_path: Path
) -> None:
    await deploy(api, wide_flow(namespace, 1000))
    done = await api.post(f"/api/v1/executions/{namespace}/wide?wait=true", json={}, timeout=120)
    body = done.json()
    assert body["state"]["current"] == "SUCCESS", body["state"]
    runs = len(body["taskRunList"])
    assert runs >= 1000
    await page.goto(f"/ui/executions/{body['id']}")
    await expect(page.locator(".gantt")).to_have_attribute("data-rows", str(runs))
    await expect(page.locator(".gantt-row")).to_have_count(runs)
    # Still responsive: the logs tab opens and shows the last item's line.
    await page.get_by_role("tab", name="Logs").click()
    await expect(page.get_by_role("log")).to_contain_text("item 999")
    await shot(page, tmp_path, "gantt-1000")


async def test_pause_a_running_execution_then_resume_it(
    page: Page, api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT3S"))  # time to click Pause
    started = await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})
    await page.goto(f"/ui/executions/{started.json()['id']}")
    await expect(page.locator("h1 .badge")).to_have_text("RUNNING")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("h1 .badge")).to_have_text("PAUSED")
    await page.locator(".resume-panel").get_by_role("button", name="Resume").click()
    await expect(page.locator("h1 .badge")).to_have_text("SUCCESS")
    await expect(page.locator('.gantt-row[data-state="SUCCESS"]')).to_have_count(3)
