"""The Sweep page in a real browser: define a sweep of tiny digits TinyViTs with the widgets,
launch it, watch the trial table and Optuna's figures fill in, stop it, resume it, and open
the best trial in Metrics. Photographed into docs/screenshots/ with TINYVIT_SCREENSHOTS=1."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from test_browser import (WIDTH, app_server, browser, no_exception,  # noqa: F401
                          screenshot, set_number, settle, shots)
from tinyvit.runs import list_runs, pid_alive
from tinyvit.sweep.processes import live_workers

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (tmp_path / "demo").mkdir()
    env = {**os.environ, "TINYVIT_RUNS": str(root), "TINYVIT_DEMO_RUNS": str(tmp_path / "demo"),
           "TINYVIT_HUB_RUNS": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "TINYVIT_MAX_JOBS": "1"}
    env.pop("TINYVIT_SWEEP_STORAGE", None)
    try:
        with app_server(env, tmp_path / "streamlit.log") as url:
            yield url, root
    finally:
        end = time.monotonic() + 60
        while any(pid_alive(r.status().get("pid")) for r in list_runs(root)) and time.monotonic() < end:
            time.sleep(0.3)


def metric(page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).locator(
        '[data-testid="stMetricValue"]')


def test_define_launch_watch_stop_resume_and_open_the_best_trial(server, browser, shots):  # noqa: F811
    url, root = server
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.set_default_timeout(120_000)  # a shared CPU also runs the sweep's trainings
    page.goto(url)
    settle(page, timeout=120_000)  # the first script run imports torch
    page.get_by_text("Runs on disk").wait_for(timeout=240_000)
    page.goto(f"{url}/sweep")
    settle(page)
    page.get_by_text("No sweeps yet").wait_for()
    no_exception(page)

    name = page.get_by_label("Name", exact=True)
    name.fill("web-sweep")
    name.press("Enter")
    settle(page)
    page.get_by_text("small models").click()
    settle(page)
    for label, value in (("Trials", 3), ("Epochs per trial", 8), ("Images per class (0: all)", 20),
                         ("Threads per trial (0: all)", 1)):
        set_number(page, label, value)
    page.get_by_role("button", name="Launch sweep").click()
    page.get_by_text("Launched sweep").wait_for(timeout=60_000)
    no_exception(page)

    # Watch: the first trial appears in the live table, running.
    metric(page, "State").filter(has_text="running").wait_for(timeout=60_000)
    page.wait_for_function("() => document.body.innerText.includes('web-sweep-t0000')", timeout=120_000)
    page.get_by_role("button", name="Stop sweep").click()
    metric(page, "State").filter(has_text="stopped").wait_for(timeout=120_000)
    page.wait_for_function("() => !document.body.innerText.includes('stopping')", timeout=120_000)
    assert not live_workers("web-sweep", root)

    page.get_by_role("button", name="Resume sweep").click()
    metric(page, "Trials done").filter(has_text="3 / 3").wait_for(timeout=400_000)
    metric(page, "State").filter(has_text="idle").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    # Optuna's optimisation history is drawn in the first tab.
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    screenshot(page, shots, "sweep")
    page.get_by_role("tab", name="Accuracy vs parameters").click()
    settle(page)
    page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Pareto front").wait_for(timeout=30_000)

    page.get_by_role("button", name="Open best trial in Metrics").click()
    page.wait_for_url(f"{url}/metrics", timeout=60_000)
    settle(page)
    page.get_by_text("Confusion matrix (test)").wait_for(timeout=60_000)
    no_exception(page)
    page.close()
