"""`forgetlab ui` as a researcher meets it: every way into MLflow's UI, in a real browser, from a fresh profile.

One store for the module: the synthetic study (ranks 1, 2, 4, 8 × seeds 0, 1), its runs nested
under a sweep's run as `forgetlab sweep` leaves them, and a fit of them by `forgetlab fit`; one
`forgetlab ui` serves it. The first test reads what the server sends (no browser needed); the
others drive Chromium through Playwright, each in a new browser context (a fresh profile: empty
local storage), and are skipped where no Chromium or no Playwright is installed. The UI polls, so
every check waits for an element to appear (generous timeouts, no fixed sleeps).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from importlib.util import find_spec
from pathlib import Path

import pytest
from mlflow_server import free_port
from synthetic_store import build_store

from forgetlab.mlflow_ui import RUN_COLUMNS, TRAINING_KIND, VIEW_KEY, VIEW_NAME, VIEW_TAG, view_state_of
from forgetlab.tracking.names import MLFLOW_EXPERIMENT_KIND as EXPERIMENT_KIND_TAG

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    not CHROMIUM or find_spec("playwright") is None,
    reason="needs Chromium (apt-get install chromium) and Playwright (pip install playwright)",
)
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 120_000  # a cold page on a busy 2-core machine: the UI's bundle is 4 MB of JavaScript


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _forgetlab(folder: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "forgetlab", *args], cwd=folder, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The store and `forgetlab ui` over it: its URL, the experiments, the sweep's run, two of its points, the fit."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("ui-study")
    client = MlflowClient(f"sqlite:///{build_store(folder)}")
    experiment_id = client.get_experiment_by_name("forgetlab").experiment_id
    sweep = client.create_run(
        experiment_id, run_name="study", tags={"forgetlab.kind": "sweep", "forgetlab.sweep": "study"}
    )
    points = client.search_runs([experiment_id], "tags.`forgetlab.kind` = 'run'", order_by=["attributes.run_name"])
    for point in points:
        client.set_tag(point.info.run_id, "mlflow.parentRunId", sweep.info.run_id)
    client.set_terminated(sweep.info.run_id, "FINISHED")
    _forgetlab(folder, "fit", "--law", "linear-rank", "-B", "20", "--no-validation")
    fits_id = client.get_experiment_by_name("forgetlab-fits").experiment_id
    [fit] = client.search_runs([fits_id])

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab", "ui", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        printed = [process.stdout.readline()]
        while not printed[-1].startswith("forgetlab's view") and printed[-1] and len(printed) < 50:
            printed.append(process.stdout.readline())
        yield {
            "url": f"http://127.0.0.1:{port}",
            "printed": printed,
            "experiment": experiment_id,
            "fits": fits_id,
            "sweep": sweep.info.run_id,
            "points": [point.info.run_id for point in points[:2]],
            "fit": fit,
            "client": client,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_the_server_sends_training_mode_the_view_and_no_avoidable_errors(study):
    url, experiment_id = study["url"], study["experiment"]
    assert (
        study["printed"][-2].strip()
        == f"runs of 'forgetlab': {url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    )
    assert study["printed"][-1].strip().endswith(f"runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")
    # Both experiments carry the kind MLflow's own selector writes for "Machine learning" and the saved view.
    for each in (experiment_id, study["fits"]):
        tags = study["client"].get_experiment(each).tags
        assert tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
        state = json.loads(view_state_of(tags[VIEW_TAG]))
        assert state["selectedColumns"][: len(RUN_COLUMNS)] == [f"{kind}.`{name}`" for kind, name in RUN_COLUMNS]
    # The page loads forgetlab's script before MLflow's code; the script seeds mode and views.
    status, page = _get(f"{url}/")
    assert status == 200 and page.index('<script src="forgetlab-ui.js">') < page.index("static-files/static/js/main")
    status, script = _get(f"{url}/forgetlab-ui.js")
    assert status == 200 and '"mlflow.workflowType_v1": "\\"machine_learning\\""' in script
    for each in (experiment_id, study["fits"]):
        assert f'ExperimentPage-[\\"{each}\\"]-ReactComponentState' in script
    # What the UI asks on every page, and with no metric chosen yet: answers instead of a 404 and a 400.
    assert _get(f"{url}/ajax-api/2.0/mlflow/users/current") == (200, "{}\n")
    bulk = f"{url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?"
    status, empty = _get(bulk + urllib.parse.urlencode({"run_ids": study["points"][0], "metric_key": ""}))
    assert (status, json.loads(empty)) == (200, {"metrics": []})
    status, curve = _get(bulk + urllib.parse.urlencode({"run_ids": study["points"][0], "metric_key": "ft_loss"}))
    assert status == 200 and len(json.loads(curve)["metrics"]) == 11  # MLflow's own answer otherwise


@pytest.fixture(scope="module")
def browser(study):
    if not CHROMIUM or find_spec("playwright") is None:
        pytest.skip("needs Chromium and Playwright")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)  # every assertion waits as long as a cold page may take (default 5 s)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        yield launched
        launched.close()


class FreshProfile:
    """A new browser context (empty local storage) recording the console's errors and failed requests."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 2400, "height": 1200})
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.url = url
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on(
            "response",
            lambda response: (
                self.errors.append(f"{response.status} {response.url}") if response.status >= 400 else None
            ),
        )

    def open(self, route: str):
        self.page.goto(f"{self.url}/{route}")
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def fresh(browser, study):
    profile = FreshProfile(browser, study["url"])
    yield profile
    profile.close()


def assert_training_mode(page, experiment: bool = False) -> None:
    """The sidebar of model training: the model registry, none of GenAI's prompts, gateway or evaluation runs."""
    from playwright.sync_api import expect

    sidebar = page.locator("aside").first
    expect(sidebar).to_contain_text("Model registry", timeout=WAIT_MS)
    if experiment:
        expect(sidebar.get_by_role("link", name="Runs", exact=True)).to_be_visible()
    for genai in ("AI Gateway", "Prompts", "Evaluation runs"):
        expect(sidebar).not_to_contain_text(genai)
    assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") == '"machine_learning"'


def assert_forgetlab_runs_table(page) -> None:
    """forgetlab's columns, and every point of the sweep listed (not folded under the sweep's row)."""
    from playwright.sync_api import expect

    for name in ("lora.rank", "seed", "P", "model.name", "data.name", "train.steps", "ft_loss", "forget_hard"):
        expect(page.get_by_role("columnheader", name=name, exact=True).first).to_be_visible(timeout=WAIT_MS)
    for point in ("r1-kjv-s0", "r8-kjv-s1"):
        expect(page.get_by_role("link", name=point, exact=True)).to_be_visible()


def assert_no_avoidable_console_errors(profile: FreshProfile) -> None:
    avoidable = [error for error in profile.errors if "users/current" in error or "get-history-bulk-interval" in error]
    assert avoidable == []


@needs_browser
@pytest.mark.parametrize("start", ["", "#/experiments"], ids=["home", "experiments-list"])
def test_home_and_the_experiments_list_lead_to_the_runs_in_training_mode_with_forgetlabs_view(fresh, study, start):
    page = fresh.open(start)
    page.get_by_role("link", name="forgetlab", exact=True).first.click()
    page.wait_for_url(f"**/#/experiments/{study['experiment']}/runs**")
    assert_training_mode(page, experiment=True)
    assert_forgetlab_runs_table(page)
    assert_no_avoidable_console_errors(fresh)


@needs_browser
def test_a_runs_page_compare_and_metric_pages_open_in_training_mode(fresh, study):
    from playwright.sync_api import expect

    experiment, point = study["experiment"], study["points"][0]
    page = fresh.open(f"#/experiments/{experiment}/runs/{point}")
    expect(page.get_by_text("r1-kjv-s0", exact=True).first).to_be_visible()
    assert_training_mode(page, experiment=True)
    expect(page.get_by_role("link", name="Runs", exact=True).first).to_be_visible()  # its breadcrumb, not "Evaluations"
    runs, experiments = json.dumps(study["points"]), json.dumps([experiment])
    page = fresh.open(f"#/compare-runs?runs={runs}&experiments={experiments}")
    expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible()
    assert_training_mode(page)
    metric = urllib.parse.quote(json.dumps("ft_loss"))
    page = fresh.open(f"#/metric?runs={runs}&metric={metric}&experiments={experiments}&plot_metric_keys=%5B{metric}%5D")
    expect(page.get_by_text("ft_loss").first).to_be_visible()
    assert_training_mode(page)
    assert_no_avoidable_console_errors(fresh)


@needs_browser
def test_the_chart_view_holds_the_forgetting_charts_and_adding_a_chart_asks_no_empty_metric(fresh, study):
    from playwright.sync_api import expect

    page = fresh.open(f"#/experiments/{study['experiment']}/runs")
    assert_forgetlab_runs_table(page)
    page.locator("label").filter(has=page.locator('input[value="CHART"]')).first.click()
    expect(page.get_by_text("Forgetting (forgetlab)")).to_be_visible()
    for title in ("lora.rank vs. forget_hard", "ft_loss vs. forget_hard", "Parallel Coordinates"):
        expect(page.get_by_text(title, exact=True).first).to_be_visible()
    page.get_by_role("button", name="Add chart").first.click()
    page.get_by_role("menuitem").first.click()
    expect(page.get_by_text("Add new chart")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Views").click()
    expect(page.get_by_text(VIEW_NAME)).to_be_visible()
    assert_no_avoidable_console_errors(fresh)


@needs_browser
def test_fits_compare_side_by_side_and_the_sweep_links_to_its_fit(fresh, study):
    from playwright.sync_api import expect

    page = fresh.open(f"#/experiments/{study['fits']}/runs")
    assert_training_mode(page, experiment=True)
    for name in ("forgetlab.law", "fit/c", "fit/c.low", "fit/c.high", "fit/d", "L_f.r2"):
        expect(page.get_by_role("columnheader", name=name, exact=True).first).to_be_visible()
    page = fresh.open(f"#/experiments/{study['experiment']}/runs/{study['sweep']}")
    expect(page.get_by_text("Fits of this sweep")).to_be_visible()
    fit = study["fit"].info
    link = page.get_by_role("link", name=fit.run_name, exact=True)
    assert link.get_attribute("href") == f"#/experiments/{study['fits']}/runs/{fit.run_id}"


@needs_browser
def test_a_mode_the_user_chose_is_kept(fresh, study):
    from playwright.sync_api import expect

    fresh.context.add_init_script("localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('genai'))")
    page = fresh.open("")
    expect(page.locator("aside").first).to_contain_text("AI Gateway", timeout=WAIT_MS)
    assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") == '"genai"'
