"""The comparison views in a real browser (Debian's Chromium through Playwright): a click
on a confusion-matrix cell shows its images, the disagreements of the digits demo pair are
listed, the timeline's slider changes the shown epoch, and the anatomy pictures render.
Each view is photographed (into docs/screenshots/ with TINYVIT_SCREENSHOTS=1)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, WIDTH, app_server, compare_only, no_exception, settle
from tinyvit.runs import Run

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "docs" / "screenshots"
DEMO_VIT, DEMO_CNN = "demo-digits-tinyvit", "demo-digits-cnn"
IMAGES = '[data-testid="stImage"] img'
INDEX_PX = 92  # the width of the "true …" index column


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_runs) -> Path:
    root = tmp_path_factory.mktemp("views") / "runs"
    root.mkdir()
    for path in tiny_runs.values():
        shutil.copytree(path, root / path.name)
    return root


@pytest.fixture(scope="module")
def server(runs_root):
    """Streamlit on a runs folder with both tiny runs (they have timelines) and the shipped
    demo runs (the fully trained digits pair, without timelines)."""
    root, tmp = runs_root, runs_root.parent
    env = {**os.environ, "TINYVIT_RUNS": str(root), "TINYVIT_DEMO_RUNS": str(REPO / "demo_runs"),
           "TINYVIT_HUB_RUNS": str(tmp / "hub"), "HF_HUB_OFFLINE": "1"}
    with app_server(env, tmp / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium for these tests")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": WIDTH, "height": 1000})
        browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("TINYVIT_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


def section(page, title: str):
    """The vertical block of the page from the subheader `title` to the next subheader."""
    return page.get_by_role("heading", name=title, exact=True)


def section_shot(page, folder: Path, name: str, title: str, height: int) -> Path:
    """A picture of one section: the window is made as tall as the page first (Streamlit
    scrolls inside its own container), then the section's rectangle is cut out."""
    full = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": int(full) + 40})
    page.wait_for_timeout(800)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    box = section(page, title).bounding_box()
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), clip={"x": 0, "y": max(0, box["y"] - 16), "width": WIDTH,
                                          "height": min(height, int(full) + 40 - box["y"])})
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    return path


def pick(page, label: str, run: str) -> None:
    """Choose `run` in the run picker `label`; again if a rerun closed the list first."""
    for _ in range(3):
        page.get_by_label(label, exact=True).click()
        option = page.get_by_role("option", name=re.compile("^" + re.escape(run) + " "))
        try:
            option.click(timeout=10_000)
            settle(page)
            return
        except sync_api.TimeoutError:
            page.keyboard.press("Escape")
            settle(page)
    raise AssertionError(f"could not pick {run} in {label}")


def open_page(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=120_000)
    settle(page)


def texts(page) -> list[str]:
    return page.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()


def click_cell(page, frame, k: int, true: int, pred: int) -> None:
    """Click cell (true, pred) of a k×k confusion table drawn by st.dataframe (a canvas):
    rows are 35 px under a 35 px header; the k class columns share the width after the index."""
    frame.wait_for(state="visible", timeout=60_000)
    frame.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = frame.bounding_box()
    col = (box["width"] - INDEX_PX) / k
    page.mouse.click(box["x"] + box["width"] - col * (k - pred - 0.5), box["y"] + 35 * (true + 1) + 17)
    settle(page)


def test_views(server, page, shots):
    open_page(page, server, "TinyViT Lab")  # Home first: it sets up the app's navigation
    # Metrics of a run with a timeline: the slider changes the epoch shown.
    open_page(page, f"{server}/metrics", "Metrics")
    pick(page, "Run", "tiny-tinyvit")
    no_exception(page)
    caption = page.get_by_text(re.compile(r"fixed validation images .* after epoch \d"))
    assert "after epoch 2" in caption.inner_text()
    slider = page.get_by_role("slider", name=re.compile("Epoch"))
    for _ in range(3):  # a key press can land while the page is still settling
        slider.focus()
        slider.press("ArrowLeft")
        settle(page)
        if "after epoch 1," in caption.inner_text():
            break
    assert "after epoch 1," in caption.inner_text()
    section_shot(page, shots, "metrics-timeline", "What the model learns, epoch by epoch", 620)
    # Play steps to the next epoch and stops at the last one.
    page.get_by_role("button", name=re.compile("Play")).click()
    page.wait_for_function("() => document.body.innerText.includes('after epoch 2')", timeout=30_000)
    page.get_by_role("button", name=re.compile("^play_arrow ?Play$|^Play$")).wait_for(timeout=30_000)  # stopped
    settle(page)
    no_exception(page)

    # Drill-down: a click on a cell of the demo ViT's matrix shows that cell's images.
    pick(page, "Run", DEMO_VIT)
    page.get_by_text("This run has no timeline").wait_for(timeout=30_000)  # an older run still opens
    # The drill-down's own table, by its widget key (Streamlit marks a keyed element st-key-KEY).
    drill = page.locator('[class*="st-key-m_drill_cells_"] [data-testid="stDataFrame"]').first
    click_cell(page, drill, 10, 9, 9)
    assert any(re.search(r"true 9, predicted 9: \d+ image", t) for t in texts(page)), texts(page)
    after = section(page, "Drill down: a cell's images")
    shown = page.locator(IMAGES).count()
    assert shown >= 12 + 5  # a page of the cell's images, plus the mistakes gallery
    no_exception(page)
    assert after.count() == 1
    section_shot(page, shots, "metrics-drilldown", "Drill down: a cell's images", 900)

    # Compare the digits demo pair: the disagreements are listed, with both maps.
    open_page(page, f"{server}/compare", "Compare")
    compare_only(page, [DEMO_VIT, DEMO_CNN])
    no_exception(page)
    listed = [t for t in texts(page) if "where A and B predict different classes" in t]
    assert listed and int(listed[0].split()[0]) > 0
    assert page.get_by_text("only A right").count() >= 1
    section_shot(page, shots, "compare-disagreements", "Where the two models disagree (test)", 1100)
    click_cell(page, page.locator('[class*="st-key-cmp_drill_cells_"] [data-testid="stDataFrame"]').first, 10, 9, 3)
    assert any("true 9, predicted 3" in t for t in texts(page)), texts(page)
    section_shot(page, shots, "compare-drilldown", "Drill down: a cell's images", 980)

    # Anatomy of the ViT and of the CNN.
    open_page(page, f"{server}/anatomy", "Anatomy")
    pick(page, "Run", DEMO_VIT)
    no_exception(page)
    for title in ("Position embeddings", "Patch-embedding filters: principal components", "Mean attention distance"):
        assert section(page, title).count() == 1
    # The attention distances are measured on 256 test images first: wait for their chart.
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length == 2",
                           timeout=60_000)
    assert page.locator(IMAGES).count() == 1
    section_shot(page, shots, "anatomy-vit", "Position embeddings", 1500)
    pick(page, "Run", DEMO_CNN)
    no_exception(page)
    assert section(page, "Receptive field per stage").count() == 1 and page.locator(IMAGES).count() == 1
    section_shot(page, shots, "anatomy-cnn", "First-layer filters", 560)


# Line segments drawn by the curves' charts: one more per metric and epoch.
SEGMENTS_JS = ("[...document.querySelectorAll('.scatterlayer path.js-line')]"
               ".reduce((n, p) => n + ((p.getAttribute('d') || '').match(/L/g) || []).length, 0)")


def test_metrics_of_a_training_run_refresh_by_themselves(server, runs_root, page):
    """A run that is training (its lock held by this test, its status 'running'): a new epoch
    written to its metrics appears on the open Metrics page without a click, and when the run
    finishes the page redraws itself with the test report."""
    live = runs_root / "live-tinyvit"
    shutil.copytree(runs_root / "tiny-tinyvit", live)
    run = Run(live)
    epochs = run.metrics()
    assert len(epochs) == 2
    finished = {name: live.joinpath(name).read_bytes() for name in ("test_metrics.json", "status.json")}
    live.joinpath("test_metrics.json").unlink()
    run.write_metrics(epochs[:1])
    claim = run.claim()
    try:
        run.write_status(state="running", pid=os.getpid())
        open_page(page, f"{server}/metrics", "Metrics")
        pick(page, "Run", "live-tinyvit")
        page.get_by_text("This run is still running").wait_for(timeout=30_000)
        page.locator(".scatterlayer").first.wait_for(state="attached", timeout=30_000)
        one_epoch = page.evaluate(f"() => {SEGMENTS_JS}")
        run.write_metrics(epochs)   # the trainer finishes epoch 2
        page.wait_for_function(f"() => {SEGMENTS_JS} > {one_epoch}", timeout=30_000)
        assert page.get_by_text("This run is still running").count() == 1  # no reload happened
        for name, data in finished.items():
            live.joinpath(name).write_bytes(data)
    finally:
        claim.release()
    page.get_by_text("Confusion matrix (test)").wait_for(timeout=30_000)
    settle(page)
    no_exception(page)
