"""The Sweep page through AppTest: define a sweep with the widgets, launch it (worker
processes training tiny digits models), watch the trial table, stop it in the middle of a
trial, resume it, and open the best trial in Metrics. Also the `pruned` state on Home and Train."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tinyvit import hub
from tinyvit.runs import list_runs, pid_alive
from tinyvit.sweep.processes import live_workers

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def app_env(tmp_path, monkeypatch):
    for name in ("runs", "demo", "hub"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", str(tmp_path / "demo"))
    monkeypatch.setenv("TINYVIT_HUB_RUNS", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TINYVIT_MAX_JOBS", raising=False)
    monkeypatch.delenv("TINYVIT_SWEEP_STORAGE", raising=False)
    monkeypatch.setattr(hub, "hub_token", lambda: None)
    return tmp_path


def page(path: str | None = "pages/sweep.py") -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if path:
        at.switch_page(path)
    return at.run()


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def table(at: AppTest) -> list[dict]:
    frames = [d.value for d in at.dataframe if "trial" in d.value.columns]
    return frames[0].to_dict("records") if frames else []


def wait_until(at: AppTest, condition, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        at.run()
        clean(at)
        if condition():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out; table: {table(at)}")


def test_the_sweep_page_without_sweeps_offers_the_form():
    at = page()
    clean(at)
    assert at.title[0].value == "Sweep"
    assert any("No sweeps yet" in i.value for i in at.info)
    assert button(at, "Launch sweep")
    at.radio(key="sw_how").set_value("choose").run()
    clean(at)
    assert at.multiselect(key="sw_tinyvit_embed_dim").value == [32, 64, 96, 128]


def test_an_empty_range_and_a_taken_name_are_refused_in_one_line(app_env):
    at = page()
    at.text_input(key="sw_name").set_value("dup")
    at.radio(key="sw_how").set_value("choose").run()
    at.number_input(key="sw_tinyvit_lr_low").set_value(0.01)
    at.number_input(key="sw_tinyvit_lr_high").set_value(0.001)
    button(at, "Launch sweep").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["search space: 'lr' has an empty range (low 0.01 > high 0.001)"]
    from tinyvit.sweep import study
    study.create("dup", "digits", "tinyvit", space="tinyvit-small", trials=1, epochs=1)
    at.number_input(key="sw_tinyvit_lr_high").set_value(0.1)
    button(at, "Launch sweep").click().run()
    assert [e.value for e in at.error] == [f"a sweep named 'dup' already exists in {app_env / 'runs' / '.sweeps'}"]
    assert not list_runs(app_env / "runs")


@pytest.mark.slow
def test_define_launch_watch_stop_resume_and_open_the_best_trial(app_env):
    at = page()
    at.text_input(key="sw_name").set_value("ui-sweep")
    assert at.selectbox(key="sw_dataset").value == "digits"
    at.radio(key="sw_how").set_value("small models")
    at.number_input(key="sw_trials").set_value(1)
    # 100 short epochs: a window of several seconds in which the trial is seen running and
    # stopped, however long the app takes to render (30 could all pass between two renders).
    at.number_input(key="sw_epochs").set_value(100)
    at.number_input(key="sw_subset").set_value(20)
    at.number_input(key="sw_threads").set_value(1)
    at.selectbox(key="sw_pruner").set_value("none")
    button(at, "Launch sweep").click().run()
    clean(at)
    assert any("Launched sweep **ui-sweep**" in s.value for s in at.success)
    run_dir = app_env / "runs" / "ui-sweep-t0000"
    # Watch: the live table shows the trial running, with its epochs coming in. The disk is
    # watched first (cheap, every 0.1 s), then the page is drawn once to see the same.
    end = time.monotonic() + 240
    while not (run_dir / "checkpoint.safetensors").is_file() and time.monotonic() < end:
        time.sleep(0.1)
    wait_until(at, lambda: (table(at) or [{}])[0].get("state") == "running")
    button(at, "Stop sweep").click().run()
    wait_until(at, lambda: (table(at) or [{}])[0].get("state") == "stopped" and not live_workers("ui-sweep"))
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and (run_dir / "checkpoint.safetensors").is_file()

    button(at, "Resume sweep").click().run()
    wait_until(at, lambda: [r["state"] for r in table(at)] == ["stopped", "finished"])
    rows = table(at)
    assert rows[1]["run"] == "ui-sweep-t0000" and rows[1]["epochs"] == 100
    assert [t.label for t in at.tabs] == ["History", "Parallel coordinates", "Importances",
                                         "Intermediate values", "Accuracy vs parameters"]
    button(at, "Open best trial in Metrics").click().run()
    clean(at)
    assert at.title[0].value == "Metrics"
    assert at.selectbox(key="picker_metrics").value == str(run_dir)
    for run in list_runs(app_env / "runs"):
        assert not pid_alive(run.status().get("pid"))


def test_a_pruned_run_is_shown_as_pruned_on_home_and_train(app_env, tiny_runs):
    root = app_env / "runs"
    run_dir = root / "pruned-run"
    shutil.copytree(tiny_runs["tinyvit"], run_dir)
    status = json.loads((run_dir / "status.json").read_text())
    status.update(state="pruned", message="pruned by the median pruner after epoch 1 (val acc 10.0%)")
    (run_dir / "status.json").write_text(json.dumps(status))
    home = page(None)
    clean(home)
    assert "pruned" in list(home.dataframe[0].value["state"])
    train = page("pages/train.py")
    clean(train)
    assert any("Pruned: pruned by the median pruner after epoch 1" in i.value for i in train.info)
