"""README promises that no other test file covers: each checked against the behaviour."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from tinyvit.runs import DEMO_ROOT, create_run, list_runs

ROOT = Path(__file__).resolve().parent.parent
README_TEXT = (ROOT / "README.md").read_text(encoding="utf-8")


def test_demo_runs_are_listed_after_your_own_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path))
    monkeypatch.delenv("TINYVIT_DEMO_RUNS", raising=False)
    demo_times = {p.name: json.loads((p / "status.json").read_text())["created_at"]
                  for p in DEMO_ROOT.iterdir() if p.is_dir()}
    # Own runs older than every demo run: sorted all together by date they would come last.
    for name, created in (("old", 1.0), ("newer", 2.0), ("middle", 1.5)):
        run = create_run(tmp_path, name, {"dataset": "digits", "model": "cnn"})
        run.write_status(created_at=created)
    assert min(demo_times.values()) > 2.0
    names = [r.name for r in list_runs()]
    demos_newest_first = sorted(demo_times, key=demo_times.get, reverse=True)
    assert names == ["newer", "middle", "old", *demos_newest_first]


def make_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def browser_tests_without_playwright(tmp_path) -> subprocess.CompletedProcess:
    """tests/test_browser.py run as `make test` runs it, where `import playwright` fails."""
    fake = tmp_path / "no-playwright" / "playwright"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named playwright')\n")
    env = {k: v for k, v in os.environ.items() if k != "TINYVIT_REQUIRE_BROWSER"}
    env.update(PYTHONPATH=str(fake.parent), TINYVIT_REQUIRE_BROWSER="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                           "tests/test_browser.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_make_test_fails_when_playwright_is_missing(tmp_path):
    assert any(line.startswith("TINYVIT_REQUIRE_BROWSER=1 ") and "pytest" in line for line in make_recipe("test"))
    required = browser_tests_without_playwright(tmp_path)
    assert required.returncode == 1, required.stdout + required.stderr
    assert "Playwright is not installed" in required.stdout
    assert re.search(r"\b\d+ errors?\b", required.stdout) and " passed" not in required.stdout


# -- the run format: who writes what, and a reader's view of a half-written line ---------------

def test_a_half_written_last_metrics_line_is_skipped(tmp_path):
    run = create_run(tmp_path, "r", {"dataset": "digits", "model": "cnn"})
    run.append_metrics({"epoch": 1, "val_accuracy": 0.5})
    with open(run.file("metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"epoch": 2, "val_acc')  # the trainer is still writing this line
    assert run.metrics() == [{"epoch": 1, "val_accuracy": 0.5}]


# -- a failed run shows the end of train.log -------------------------------------------------

def test_a_failed_run_shows_the_end_of_its_train_log(tiny_runs, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    from tinyvit import hub
    from tinyvit.app import jobs
    from tinyvit.runs import Run
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path))
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", "")
    monkeypatch.setenv("TINYVIT_HUB_RUNS", str(tmp_path / ".hub"))
    monkeypatch.setattr(hub, "hub_token", lambda: None)
    path = tmp_path / "crashed"
    shutil.copytree(tiny_runs["cnn"], path)
    Run(path).write_status(state="failed", error="RuntimeError: boom", pid=None)
    log = [f"epoch {i}: loss 0.{i}" for i in range(1, 31)] + ["Traceback (most recent call last):",
                                                            "RuntimeError: boom"]
    (path / jobs.LOG_NAME).write_text("\n".join(log) + "\n", encoding="utf-8")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/train.py")
    at.run()
    at.selectbox(key="picker_train").set_value(str(path)).run()
    assert not at.exception
    assert "Training failed: RuntimeError: boom" in "\n".join(e.value for e in at.error)
    shown = [c.value for c in at.code]
    assert shown == ["\n".join(log[-15:])]  # the last 15 lines, not the start


# -- TINYVIT_MAX_JOBS above 1 ---------------------------------------------------------------

def test_max_jobs_above_one_lets_that_many_train_and_queues_the_next(tmp_path, monkeypatch):
    from tinyvit.app import jobs
    from tinyvit.training.runner import wait_for_slot
    monkeypatch.setenv("TINYVIT_MAX_JOBS", "2")
    assert jobs.max_jobs() == 2
    spawned = []

    class Popen:
        def __init__(self, cmd, **kw):
            spawned.append(cmd)
            self.pid = os.getpid()

        def wait(self):
            return 0

    monkeypatch.setattr(jobs.subprocess, "Popen", Popen)
    from tinyvit.training.config import TrainConfig
    run = jobs.launch(TrainConfig(dataset="digits", model="cnn", epochs=1, subset=2), root=tmp_path)
    assert spawned[0][spawned[0].index("--max-jobs") + 1] == "2"  # the app passes the setting on

    first, second, third = (create_run(tmp_path, n, {}) for n in ("a", "b", "c"))
    for r in (first, second, third):  # as train.py does before it waits: "running" needs the lock
        r.claim()
    run.write_status(state="finished", pid=None)
    wait_for_slot(first, 2)
    wait_for_slot(second, 2)  # two at once: neither waits
    assert first.status()["state"] == second.status()["state"] == "running"
    claimed = threading.Thread(target=wait_for_slot, args=(third, 2), kwargs={"poll": 0.05}, daemon=True)
    claimed.start()
    while third.status().get("message") is None:
        claimed.join(0.05)
    assert third.status()["state"] == "queued" and "2 of 2 job slots busy" in third.status()["message"]
    first.write_status(state="finished", pid=None)  # a slot frees up: the third job starts
    claimed.join(30)
    assert not claimed.is_alive() and third.status()["state"] == "running"


# -- Predict: the first 8 images, and it says so -------------------------------------------------

def test_predict_shows_the_first_eight_images_and_says_so(tiny_runs, tmp_path, monkeypatch):
    import io

    from PIL import Image
    from streamlit.testing.v1 import AppTest
    from tinyvit import hub
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path))
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", "")
    monkeypatch.setenv("TINYVIT_HUB_RUNS", str(tmp_path / ".hub"))
    monkeypatch.setattr(hub, "hub_token", lambda: None)
    shutil.copytree(tiny_runs["cnn"], tmp_path / "cnn")
    uploads = []
    for i in range(10):
        buf = io.BytesIO()
        Image.new("L", (24, 24), 25 * i).save(buf, "PNG")
        uploads.append((f"img{i}.png", buf.getvalue(), "image/png"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/predict.py")
    at.run()
    at.selectbox(key="picker_predict").set_value(str(tmp_path / "cnn")).run()
    at.radio(key="pred_source").set_value("Upload images").run()
    at.file_uploader(key="pred_files").set_value(uploads).run()
    assert not at.exception and not at.error
    assert "Showing the first 8 of 10 images." in [i.value for i in at.info]
    assert len(at.get("plotly_chart")) == 8  # one top-k chart per image shown
    # One upload picture per image shown (its maps follow it).
    assert sum(c.caption.startswith("img") for img in at.image for c in img.proto.imgs) == 8
    assert "shows the first 8 images" in README_TEXT


def test_cross_references_agree():
    from tinyvit.tools import demo
    from tinyvit.models import MODELS
    # Files that code, requirements and the Makefile point to exist.
    for path in [*ROOT.glob("*.py"), *ROOT.glob("*.txt"), ROOT / "Makefile", *(ROOT / "tinyvit").rglob("*.py"),
                 *(ROOT / "pages").glob("*.py")]:
        for ref in re.findall(r"\bdocs/[\w./-]*\w", path.read_text(encoding="utf-8")):
            assert (ROOT / ref).exists(), f"{path.name} cites {ref}, which does not exist"
    # The demo tool and the README give the same time.
    hours = re.search(r"(a few|about \w+) CPU-hours", demo.__doc__)
    assert hours, "the demo tool's docstring says how long make demo-runs takes"
    assert f"{hours.group(1)} CPU-hours" in README_TEXT.replace("\n", " ")
    # New runs are post-norm, and the Train page's help does not say otherwise.
    assert MODELS["tinyvit"].hparams["norm"] == "post" and "**New runs are post-norm**" in README_TEXT
    assert "pre = more stable for new runs" not in (ROOT / "pages" / "train.py").read_text(encoding="utf-8")
