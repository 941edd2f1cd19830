"""End to end through the Dagster UI: a real `dagster-webserver` on a free loopback port, driven by Debian's
headless Chromium (Playwright's Python package with `executable_path`; Playwright's own browser download is
never used) and by the webserver's GraphQL endpoint.

What an operator sees is asserted in the rendered pages, and each test saves a screenshot into
<repo>/test-artifacts/ (git-ignored): the asset graph, a materialized asset, the Launchpad of a close, and
the run page of a refused close with its reason.

The instance runs launched runs at once (DefaultRunCoordinator), so no daemon is started: the project's
dagster.yaml leaves the default QueuedRunCoordinator, whose queue only the daemon drains, and the daemon
would also tick the sensors and the schedule (a new_file_sensor import or a period_closed_sensor
close_outputs run in the middle of the test). The test launches its runs one after another.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from revrec_pipelines_tests.support import free_port, require

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
SAMPLE_DATA = REPO / "revrec_pipelines" / "sample_data"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
REVREC_ASSETS = (
    "order_lines", "rate_answers", "invoice_events", "held_lines", "line_series", "line_periods", "journal_lines",
    "invoice_register", "orders", "unearned_revenue_rollforward", "revenue_waterfall", "deferred_revenue_balance",
    "revenue_backlog", "deferred_expenses",
)
GROUPS = ("ingest", "rillet", "revrec", "close", "exports", "posting")
RUN_TIMEOUT = 120  # seconds; each run on the sample data takes under 15 s
UI_TIMEOUT = 30_000  # milliseconds, for an element to render

# An instance that executes launched runs without a daemon (see the module docstring).
RUN_AT_ONCE = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""


class GraphQLError(Exception):
    """A query the webserver rejected, with its words."""


class Dagster:
    """The webserver under test: its URL, its GraphQL endpoint and the code location it serves."""

    def __init__(self, url: str, log: Path):
        self.url = url
        self.log = log
        self.http = httpx.Client(base_url=url, timeout=30)
        self.location = ""

    def gql(self, query: str, **variables: object) -> dict:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200 or "errors" in response.json():
            raise GraphQLError(response.text[:2000])
        body = response.json()
        return body["data"]

    def launch(self, job: str, run_config: dict | None = None) -> str:
        data = self.gql(
            """mutation Launch($params: ExecutionParams!) {
                 launchRun(executionParams: $params) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on RunConfigValidationInvalid { errors { message } }
                   ... on Error { message }
                 }
               }""",
            params={
                "selector": {"repositoryLocationName": self.location, "repositoryName": "__repository__", "jobName": job},
                "runConfigData": run_config or {},
            },
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def wait_for_run(self, run_id: str) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            status = self.gql(
                "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id
            )["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} did not finish in {RUN_TIMEOUT} s")

    def failure_messages(self, run_id: str) -> list[str]:
        events = self.gql(
            """query Events($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection { events {
                 __typename
                 ... on ExecutionStepFailureEvent { error { message } }
                 ... on RunFailureEvent { error { message } }
               } } } } }""",
            id=run_id,
        )["runOrError"]["eventConnection"]["events"]
        return [e["error"]["message"] for e in events if e.get("error")]


def _wait_until_loaded(dagster: Dagster, server: subprocess.Popen, deadline: float) -> None:
    """Until the code location has loaded; its load error (a broken import) fails the fixture with its words."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster-webserver exited ({server.returncode}):\n{dagster.log.read_text()[-3000:]}")
        try:
            workspace = dagster.gql(
                """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
                     __typename
                     ... on RepositoryLocation { repositories { name jobs { name } } }
                     ... on PythonError { message }
                   } } } } }"""
            )["workspaceOrError"]
        except httpx.HTTPError:
            time.sleep(0.3)
            continue
        for entry in workspace.get("locationEntries", []):
            location = entry["locationOrLoadError"]
            if location and location["__typename"] == "PythonError":
                pytest.fail(f"code location {entry['name']} failed to load: {location['message']}")
            if entry["loadStatus"] == "LOADED" and location:
                jobs = {j["name"] for r in location["repositories"] for j in r["jobs"]}
                if "close_period" in jobs:
                    dagster.location = entry["name"]
                    return
        time.sleep(0.3)
    pytest.fail(f"dagster-webserver did not load the code location in time:\n{dagster.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    """`dagster-webserver -w workspace.yaml` on a fresh instance, warehouse, inbox (the sample data) and exports."""
    webserver = Path(sys.executable).parent / "dagster-webserver"
    require(webserver.exists(), "dagster-webserver (the project's dependency)")
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text() + RUN_AT_ONCE)
    shutil.copytree(SAMPLE_DATA, root / "inbox")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVREC_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        REVREC_WAREHOUSE=str(root / "warehouse.duckdb"),
        REVREC_SOURCE=(root / "inbox").as_uri(),
        REVREC_EXPORT_DEST=(root / "exports").as_uri(),
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    log = root / "webserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(webserver), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    dagster = Dagster(f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_loaded(dagster, server, time.monotonic() + 90)
        yield dagster
    finally:
        dagster.http.close()
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """The webserver, its code server and any run it launched share one process group."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser():
    require(importlib.util.find_spec("playwright") is not None, "the playwright Python package")
    require(bool(shutil.which("chromium")) or Path(CHROMIUM).exists(), "Debian chromium (.ci/install-browser.sh)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, dagster: Dagster, request: pytest.FixtureRequest):
    context = browser.new_context(base_url=dagster.url, viewport={"width": 1600, "height": 1000})
    # Dismiss the "Join the Dagster community" dialog shown on a first visit; it would cover the screenshots.
    context.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:  # what the browser showed when the test failed
        page.screenshot(path=str(ARTIFACTS / f"ui-failed-{request.node.name}.png"))
    context.close()


@pytest.fixture(scope="module")
def imported(dagster: Dagster) -> str:
    """The sample data imported by the import_files job (raw_inputs and every revrec asset): its run id."""
    run_id = dagster.launch("import_files")
    assert dagster.wait_for_run(run_id) == "SUCCESS", dagster.failure_messages(run_id)
    return run_id


def _screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"))


def test_asset_graph_lists_the_revrec_assets(page, dagster: Dagster):
    page.goto("/asset-groups")  # the "Lineage" entry of the navigation: the global asset lineage
    page.get_by_text("Global asset lineage").wait_for()
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.wait_for()

    # The revrec group alone: the sidebar lists its assets by full name, the graph draws a node for each.
    page.goto("/asset-groups~group%3Arevrec/")
    for asset in REVREC_ASSETS:
        page.get_by_text(asset, exact=True).first.wait_for()
    assert page.get_by_text("raw_inputs", exact=True).count() == 0

    # Every group expanded (the graph's "Expand all groups", ⌥E) and laid out top to bottom, which fits the
    # window; the browser keeps both, and a reload fits the graph to the window again, for the artifact.
    page.goto("/asset-groups")
    page.get_by_text("Global asset lineage").wait_for()
    page.get_by_text("revrec", exact=True).first.wait_for()
    page.evaluate("window.localStorage.setItem('asset-graph-direction', '\"vertical\"')")
    page.keyboard.press("Alt+e")
    page.get_by_text("line_periods", exact=True).first.wait_for()
    page.reload()
    for asset in ("raw_inputs", "line_periods", "journal_lines", "closed_periods"):
        page.get_by_text(asset, exact=True).first.wait_for()
    _screenshot(page, "asset-graph")


def test_an_import_run_materializes_line_periods(page, dagster: Dagster, imported: str):
    latest = dagster.gql(
        """{ assetOrError(assetKey: {path: ["line_periods"]}) { ... on Asset {
             assetMaterializations(limit: 1) { runId metadataEntries { label ... on IntMetadataEntry { intValue } } }
           } } }"""
    )["assetOrError"]["assetMaterializations"]
    assert latest and latest[0]["runId"] == imported
    rows = {e["label"]: e.get("intValue") for e in latest[0]["metadataEntries"]}["dagster/row_count"]
    assert rows > 0

    page.goto("/assets/line_periods")
    page.get_by_text("Latest materialization").wait_for()
    page.get_by_text("Row count").wait_for()
    page.get_by_text(f"{rows:,}", exact=True).first.wait_for()
    page.get_by_text("totals_by_period", exact=True).wait_for()
    _screenshot(page, "line_periods")


def test_a_controller_closes_a_period_from_the_launchpad_and_sees_why_a_close_is_refused(
    page, dagster: Dagster, imported: str
):
    # Close 202501 as a controller would: the Launchpad of the close_period job scaffolds the config; the
    # controller types one line, the period, under closed_periods (the rest of the scaffold stays valid).
    launchpad = _open_close_launchpad(page, dagster)
    editor = launchpad.locator(".CodeMirror").first
    scaffold = editor.evaluate("(editor) => editor.CodeMirror.getValue()")
    under = "  closed_periods:\n    config:\n"
    assert under in scaffold, scaffold
    editor.evaluate(
        "(editor, yaml) => editor.CodeMirror.setValue(yaml)",
        scaffold.replace(under, under + '      period: "202501"\n', 1),
    )
    launchpad.get_by_text("No errors").wait_for()
    _screenshot(page, "launchpad-close")
    launchpad.get_by_role("button", name=re.compile(r"\bMaterialize$")).click()

    run_id = _latest_run_from_ui(dagster, "close_period")
    assert dagster.wait_for_run(run_id) == "SUCCESS", dagster.failure_messages(run_id)

    # 202503 skips the first open period, 202502: refused, and the run says why.
    refused = dagster.launch("close_period", {"ops": {"closed_periods": {"config": {"period": "202503"}}}})
    assert dagster.wait_for_run(refused) == "FAILURE"
    messages = dagster.failure_messages(refused)
    assert any("first open period is 202502" in m for m in messages), messages

    page.goto(f"/runs/{refused}?logs=step%3Aclosed_periods")
    page.get_by_text("Failure", exact=True).first.wait_for()
    page.get_by_text("202503 cannot close: the first open period is 202502", exact=False).first.wait_for()
    _screenshot(page, "refused-close")


def _open_close_launchpad(page, dagster: Dagster):
    """The close_period job's page → "Materialize all", which opens the Launchpad since closed_periods needs config."""
    from playwright.sync_api import expect

    page.goto(f"/locations/{dagster.location}/jobs/close_period")
    page.get_by_text("Close a period (config: ops.closed_periods.config.period").wait_for()
    expect(page.get_by_text("fetching statuses")).to_have_count(0, timeout=UI_TIMEOUT)
    page.get_by_role("button", name="Materialize all").first.click()
    launchpad = page.get_by_role("dialog").filter(has_text="Launchpad (configure assets)")
    # With no Rillet sync yet, the UI first warns that rillet_objects (upstream of order_lines) was never
    # materialized; a controller who imports files only confirms.
    confirm = page.get_by_role("dialog").filter(has_text="Are you sure?")
    launchpad.or_(confirm).first.wait_for()
    if confirm.is_visible():
        confirm.get_by_role("button", name="Confirm").click()
    launchpad.wait_for()
    launchpad.get_by_text('Missing required config entry "period"').wait_for()
    return launchpad


def _latest_run_from_ui(dagster: Dagster, job: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = dagster.gql(
            """query Runs($job: String!) { runsOrError(
                 filter: {pipelineName: $job, tags: [{key: "dagster/from_ui", value: "true"}]}, limit: 1
               ) { ... on Runs { results { runId } } } }""",
            job=job,
        )["runsOrError"]["results"]
        if runs:
            return runs[0]["runId"]
        time.sleep(0.3)
    raise AssertionError(f"no {job} run was launched from the Launchpad")
