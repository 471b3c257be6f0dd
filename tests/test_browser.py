"""The app end to end in a real browser: `streamlit run app.py` on a free port, driven by
Debian's headless Chromium through Playwright. A short digits training is launched from the
Train page and its chart fills in; an uploaded image gets its top-k chart and attention
overlay; every page is photographed (into docs/screenshots/ with TINYVIT_SCREENSHOTS=1,
else into a temporary folder)."""
from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tinyvit.app import jobs
from tinyvit.runs import list_runs, pid_alive

pytestmark = pytest.mark.browser
try:
    from playwright import sync_api
except ImportError:
    sync_api = None
# `make test` sets TINYVIT_REQUIRE_BROWSER=1: there a missing Playwright is a failure, not a skip.
REQUIRED = os.environ.get("TINYVIT_REQUIRE_BROWSER") == "1"
if sync_api is None and not REQUIRED:
    pytest.skip("Playwright is not installed (requirements-dev.txt)", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH, MAX_HEIGHT = 1400, 2400
SCREENSHOTS = REPO / "docs" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "streamlit exited before it was healthy"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url}/_stcore/health did not answer within {timeout} s")


@contextmanager
def app_server(env: dict, log_path: Path):
    """`streamlit run app.py` on a free port with `env`; yields its URL once healthy."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


DEMO_VIT, DEMO_CNN = "demo-digits-tinyvit", "demo-digits-cnn"
DEMO_SHAPES_VIT = "demo-shapes-tinyvit"


def demo_root(tmp: Path) -> Path:
    """For the README's screenshots, the shipped demo runs (fully trained) are shown once the
    checks on the tiny run launched here have passed; the checks never rely on them."""
    shipped = REPO / "demo_runs"
    if os.environ.get("TINYVIT_SCREENSHOTS") == "1" and all((shipped / n).is_dir() for n in (DEMO_VIT, DEMO_CNN)):
        return shipped
    (tmp / "demo").mkdir()
    return tmp / "demo"


@pytest.fixture(scope="session", autouse=True)
def playwright_installed():
    """Before the server starts and the tiny runs train (session fixtures come first): a
    missing Playwright fails at once."""
    if sync_api is None:
        pytest.fail("Playwright is not installed: `make test` installs requirements-dev.txt's playwright")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_runs):
    """A streamlit server on a runs folder holding the tiny CNN run; yields (url, runs folder)."""
    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "runs"
    root.mkdir()
    shutil.copytree(tiny_runs["cnn"], root / tiny_runs["cnn"].name)
    env = {**os.environ, "TINYVIT_RUNS": str(root), "TINYVIT_DEMO_RUNS": str(demo_root(tmp)),
           "TINYVIT_HUB_RUNS": str(tmp / "hub"), "HF_HUB_OFFLINE": "1"}
    env.pop("TINYVIT_MAX_JOBS", None)
    try:
        with app_server(env, tmp / "streamlit.log") as url:
            yield url, root, env["TINYVIT_DEMO_RUNS"] == str(REPO / "demo_runs")
    finally:
        for run in list_runs(root):
            if run.status()["state"] in ("queued", "running"):
                jobs.stop(run, grace=2)
        for run in list_runs(root):
            end = time.monotonic() + 30
            while pid_alive(run.status().get("pid")) and time.monotonic() < end:
                time.sleep(0.2)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium for these tests")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("TINYVIT_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


def settle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script: its 'running' indicator is gone
    and no element of the previous run is left greyed out (stale)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')",
        timeout=timeout)
    page.wait_for_timeout(300)


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def screenshot(page, folder: Path, name: str) -> Path:
    """The whole page: the window is made as tall as the page's content first (Streamlit
    scrolls inside its own container, so a 'full page' shot would stop at the window)."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": max(900, min(MAX_HEIGHT, int(height) + 40))})
    page.wait_for_timeout(800)  # charts re-layout to the new size
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    # Widgets whose code is still loading show as grey skeletons (slow on a busy machine).
    page.wait_for_function("() => !document.querySelector('[data-testid^=\"stSkeleton\"]')", timeout=60_000)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 900})
    return path


def pick(page, label: str, run: str) -> None:
    """Choose `run` in the run picker labelled `label`."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=re.compile("^" + re.escape(run) + " ")).click()
    settle(page)


def compare_only(page, runs: list[str]) -> None:
    """Make the Compare page's multiselect hold exactly `runs`."""
    box = page.locator('[data-testid="stMultiSelect"]')
    for run in runs:
        if box.locator(f'button[aria-label^="Remove {run} "]').count() == 0:
            box.locator("input").click()
            page.get_by_role("option", name=re.compile("^" + re.escape(run) + " ")).click()
            settle(page)
    while extra := [b for b in box.locator('button[aria-label^="Remove "]').all()
                    if not any(b.get_attribute("aria-label").startswith(f"Remove {r} ") for r in runs)]:
        extra[0].click()
        settle(page)


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def digit_png() -> bytes:
    """A white '1' on black, as the digits dataset draws them."""
    img = Image.new("L", (64, 64), 0)
    img.paste(255, (28, 8, 38, 56))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


POINTS_JS = "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .scatterlayer path.point').length"
EPOCHS = 6


def chart_points(page) -> int:
    return page.evaluate(f"() => {POINTS_JS}")


def test_train_watch_predict_and_photograph_every_page(server, browser, shots):
    url, root, demos = server
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    fonts = []  # requests to Google's font servers (they fail offline)
    page.on("request", lambda r: fonts.append(r.url) if re.search(r"//fonts\.(gstatic|googleapis)\.com", r.url) else None)

    page.goto(url)
    settle(page, timeout=120_000)  # the first script run imports torch
    page.get_by_text("Runs on disk").wait_for()
    no_exception(page)
    # The page icon is drawn in the browser, not fetched.
    assert page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\").href").startswith("data:")
    assert fonts == []
    screenshot(page, shots, "home")

    # Train: a short digits job, launched from the form.
    page.goto(f"{url}/train")
    settle(page)
    for label, value in (("Epochs", EPOCHS), ("Images per class", 20), ("CPU threads", 1)):
        set_number(page, label, value)
    page.get_by_role("button", name="Launch training").click()
    page.get_by_text("Launched").wait_for(timeout=60_000)
    no_exception(page)
    # The live chart fills in: the smoothed training curves every few batches (lines), the
    # validation points as epochs finish (loss and accuracy: 2 points an epoch), with the
    # epoch and batch progress and the time left above it.
    page.wait_for_function(f"() => {POINTS_JS} >= 2", timeout=120_000)
    first = chart_points(page)
    page.get_by_text("Time left").wait_for()
    page.locator('[data-testid="stProgress"]').filter(has_text=re.compile(rf"Epoch \d of {EPOCHS}")).wait_for()
    page.wait_for_function(f"() => {POINTS_JS} > {first}", timeout=120_000)
    screenshot(page, shots, "train")  # while it trains, most likely
    page.get_by_text(f"Finished after {EPOCHS} epochs").wait_for(timeout=120_000)
    page.wait_for_function(f"() => {POINTS_JS} == {2 * EPOCHS}", timeout=10_000)  # every epoch
    settle(page)
    no_exception(page)

    # Predict: an uploaded image through the new TinyViT run.
    page.goto(f"{url}/predict")
    settle(page)
    page.get_by_text("Upload images").click()
    settle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        {"name": "one.png", "mimeType": "image/png", "buffer": digit_png()})
    page.get_by_text("What the model saw: 16×16 pixels").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1  # the top-k bars
    assert page.locator('[data-testid="stPlotlyChart"] .barlayer').count() >= 1
    overlay = page.locator('[data-testid="stImage"]').filter(has_text="Attention rollout")
    assert overlay.locator("img").count() == 1
    assert page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM").count() >= 1
    if demos:
        pick(page, "Run", DEMO_VIT)
        page.get_by_text("What the model saw: 16×16 pixels").wait_for()
    screenshot(page, shots, "predict")

    page.goto(f"{url}/metrics")
    settle(page)
    page.get_by_text("Confusion matrix (test)").wait_for()
    page.get_by_text("Most confident mistakes (test)").wait_for()
    page.get_by_text("How faithful are the maps").wait_for()
    no_exception(page)
    if demos:
        pick(page, "Run", DEMO_SHAPES_VIT)
        page.get_by_text("Deletion: most salient removed first").wait_for(timeout=30_000)
        settle(page)
    screenshot(page, shots, "metrics")

    page.goto(f"{url}/compare")
    settle(page)
    page.get_by_text("One image through every model").wait_for()
    settle(page)
    no_exception(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 3  # curves, two confusions
    if demos:
        compare_only(page, [DEMO_VIT, DEMO_CNN])
    screenshot(page, shots, "compare")
    page.close()


def test_delete_closes_its_confirmation_and_spares_the_next_run(server, browser):
    """Issue 8.1: the confirmation closes with its run; the next run is not offered for
    deletion in a popover the user already had open."""
    url, root, _ = server
    for name in ("del-a", "del-b"):
        shutil.copytree(root / "tiny-cnn", root / name)
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.goto(url)
    settle(page, timeout=120_000)
    page.get_by_text("Runs on disk").wait_for(timeout=120_000)  # torch imported: one session at a time
    page.goto(f"{url}/train")
    settle(page)
    page.get_by_label("Show run", exact=True).wait_for(timeout=60_000)
    if "del-a" not in page.get_by_label("Show run", exact=True).input_value():
        pick(page, "Show run", "del-a")
    page.get_by_role("button", name="Delete").click()
    page.get_by_text("Delete del-a and all its files?").wait_for()
    page.get_by_role("button", name="Yes, delete").click()
    page.get_by_text("Deleted del-a.").wait_for()
    settle(page)
    no_exception(page)
    assert not (root / "del-a").exists() and (root / "del-b").is_dir()
    page.wait_for_timeout(1500)  # a live refresh or two
    assert page.get_by_text("and all its files?").filter(visible=True).count() == 0
    assert page.get_by_role("button", name="Yes, delete").filter(visible=True).count() == 0
    page.close()


def in_app_frame(page, title: str) -> None:
    """The page `title` is shown inside app.py's frame: its heading, the app's navigation
    listing every page, and the job list app.py draws in the sidebar."""
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=120_000)
    settle(page, timeout=120_000)
    no_exception(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for label in ("Home", "Train", "Predict", "Metrics", "Compare", "Sweep", "Anatomy"):
        assert nav.get_by_text(label, exact=True).count() == 1, label
    page.locator('[data-testid="stSidebar"]').get_by_text("Jobs", exact=True).wait_for()


def test_deep_links_opened_first_land_on_their_page_inside_the_app(tmp_path, browser, tiny_runs):
    """A new server whose first request is /predict, in a new tab: Streamlit would run
    pages/predict.py alone (its legacy pages-folder mode); it lands inside app.py's frame
    instead. Then /train and /metrics in further new tabs, and the URL stays the deep link."""
    root = tmp_path / "runs"
    shutil.copytree(tiny_runs["cnn"], root / tiny_runs["cnn"].name)
    (tmp_path / "demo").mkdir()
    env = {**os.environ, "TINYVIT_RUNS": str(root), "TINYVIT_DEMO_RUNS": str(tmp_path / "demo"),
           "TINYVIT_HUB_RUNS": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    with app_server(env, tmp_path / "streamlit.log") as url:
        context = browser.new_context(viewport={"width": WIDTH, "height": 900})
        for path, title in (("predict", "Predict"), ("train", "Train"), ("metrics", "Metrics")):
            tab = context.new_page()
            tab.goto(f"{url}/{path}")
            in_app_frame(tab, title)
            assert tab.url.rstrip("/").endswith(f"/{path}"), tab.url
            tab.close()
        context.close()


@pytest.fixture(scope="module")
def space_server(tmp_path_factory, tiny_runs):
    """The app as a Hugging Face Space runs it (SPACE_ID set); yields (url, runs folder)."""
    tmp = tmp_path_factory.mktemp("space")
    root = tmp / "runs"
    root.mkdir()
    (tmp / "demo").mkdir()
    env = {**os.environ, "TINYVIT_RUNS": str(root), "TINYVIT_DEMO_RUNS": str(tmp / "demo"),
           "TINYVIT_HUB_RUNS": str(tmp / "hub"), "HF_HUB_OFFLINE": "1", "SPACE_ID": "alice/tinyvit-lab",
           "SPACE_AUTHOR_NAME": "alice"}
    for name in ("TINYVIT_MAX_JOBS", "TINYVIT_MAX_EPOCHS", "TINYVIT_THREADS", "TINYVIT_ADMIN_TOKEN", "HF_TOKEN"):
        env.pop(name, None)
    with app_server(env, tmp / "streamlit.log") as url:
        yield url, root


def test_on_a_space_runs_belong_to_the_browser_that_launched_them(space_server, browser, tiny_runs, shots):
    """Issue 8.3 and 8.4 in a real browser: the disk notice and caps on Home and Train; the
    browser keeps its owner token (cookie) across a refresh and a second tab; another
    browser sees the run read-only."""
    from tinyvit.app import owner
    url, root = space_server
    alice = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = alice.new_page()
    page.goto(url)
    settle(page, timeout=120_000)
    page.get_by_text("Runs on disk").wait_for(timeout=120_000)  # torch imported: one session at a time
    no_exception(page)
    page.get_by_text("not persistent").wait_for()
    page.get_by_text("limited to 30 epochs").wait_for()
    page.wait_for_function("() => document.cookie.includes('tinyvit_owner=')")
    token = next(c["value"] for c in alice.cookies() if c["name"] == "tinyvit_owner")
    assert owner.valid_token(token)
    # A run Alice launched (its owner file is what jobs.launch writes for her token).
    shutil.copytree(tiny_runs["cnn"], root / "alices-run")
    from tinyvit.runs import Run
    owner.record_owner(Run(root / "alices-run"), token)

    second = alice.new_page()  # a second tab of the same browser, from a plain URL
    second.goto(f"{url}/train")
    settle(second, timeout=60_000)
    second.get_by_text("not persistent").wait_for()
    assert second.get_by_label("Epochs", exact=True).get_attribute("aria-valuemax") in ("30", None)
    second.get_by_role("button", name="Delete").wait_for()
    assert "owner=" not in second.url  # the cookie came back: the key stays out of the URL
    screenshot(second, shots, "train-space")
    second.reload()
    settle(second)
    second.get_by_role("button", name="Delete").wait_for()  # a refresh keeps the right
    no_exception(second)

    bob = browser.new_context(viewport={"width": WIDTH, "height": 900}).new_page()
    bob.goto(f"{url}/train")
    settle(bob, timeout=60_000)
    bob.get_by_text("Launched from another browser").wait_for(timeout=60_000)
    assert bob.get_by_role("button", name="Delete").count() == 0
    no_exception(bob)
    bob.context.close()
    alice.close()
