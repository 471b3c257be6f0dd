"""Sweeps that train (tiny digits models, one thread): the CLI from create to best, two
workers that never share a trial, Stop in the middle of a trial then resume, and a trial
whose process dies or whose worker dies."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyvit.checkpoint import CHECKPOINT
from tinyvit.runs import list_runs, open_run, pid_alive
from tinyvit.sweep import study as sweeps
from tinyvit.sweep.table import trial_rows

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
TINY = ["--dataset", "digits", "--space", "tinyvit-small", "--subset", "20", "--threads", "1"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TINYVIT_MAX_JOBS", "2")
    monkeypatch.delenv("TINYVIT_SWEEP_STORAGE", raising=False)
    return {**os.environ, "TINYVIT_RUNS": str(tmp_path / "runs"), "TINYVIT_MAX_JOBS": "2"}


def sweep(env, *args, check=True, timeout=600) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "tinyvit.sweep", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert not check or out.returncode == 0, out.stdout + out.stderr
    return out


def start(env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinyvit.sweep", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout=180.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def starts_of(run) -> int:
    """How many times train.py started training in this run folder."""
    return run.file("train.log").read_text().count("run folder:")


def test_cli_sweep_on_digits_four_trials_two_workers(env):
    sweep(env, "create", "digits-s", *TINY, "--trials", "4", "--epochs", "2")
    out = sweep(env, "run", "digits-s", "--workers", "2").stdout
    rows = trial_rows(sweeps.load("digits-s"))
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert all(r["state"] in ("finished", "pruned") for r in rows), out
    runs = {r.name: r for r in list_runs(Path(env["TINYVIT_RUNS"]))}
    assert sorted(runs) == [f"digits-s-t{i:04d}" for i in range(4)]
    for row in rows:  # every trial is its own ordinary run folder, trained once, tagged
        run = open_run(runs[row["run"]].path)
        cfg = run.config()
        assert (cfg["sweep"], cfg["sweep_trial"]) == ("digits-s", row["trial"])
        assert run.status()["state"] == row["state"] and run.metrics() and starts_of(run) == 1
    hosts = {r["host"] for r in rows}
    assert len(hosts) == 1
    best = sweep(env, "best", "digits-s").stdout
    top = max((r for r in rows if r["state"] == "finished"), key=lambda r: r["best val acc %"])
    assert f"best trial: {top['trial']}" in best and str(runs[top["run"]].path) in best
    status = sweep(env, "status", "digits-s", "--json").stdout
    assert [r["trial"] for r in json.loads(status)] == [0, 1, 2, 3]


def test_stop_in_the_middle_of_a_trial_then_resume(env):
    sweep(env, "create", "stopme", *TINY, "--trials", "1", "--epochs", "60", "--pruner", "none")
    worker = start(env, "run", "stopme")
    runs_root = Path(env["TINYVIT_RUNS"])
    wait_for(lambda: (runs_root / "stopme-t0000" / CHECKPOINT).is_file())
    assert sweeps.request_stop(sweeps.load("stopme")) == 1  # what `stop` and the page's button do
    worker.communicate(timeout=120)
    run = open_run(runs_root / "stopme-t0000")
    st = run.status()
    assert st["state"] == "stopped" and run.file(CHECKPOINT).is_file()
    stopped_at = len(run.metrics())
    assert 1 <= stopped_at < 60
    assert [r["state"] for r in trial_rows(sweeps.load("stopme"))] == ["stopped"]

    out = sweep(env, "resume", "stopme").stdout
    assert "1 stopped trial(s) continue" in out
    rows = trial_rows(sweeps.load("stopme"))
    assert [r["state"] for r in rows] == ["stopped", "finished"]
    assert rows[1]["run"] == "stopme-t0000" and rows[1]["note"] == "continues trial 0"
    assert run.status()["state"] == "finished" and [m["epoch"] for m in run.metrics()] == list(range(1, 61))
    assert "--resume" in run.file("train.log").read_text() or starts_of(run) == 2


def test_a_dead_trial_process_fails_its_trial_and_the_sweep_goes_on(env):
    sweep(env, "create", "dies", *TINY, "--trials", "2", "--epochs", "30", "--pruner", "none")
    worker = start(env, "run", "dies")
    first = Path(env["TINYVIT_RUNS"]) / "dies-t0000"
    wait_for(lambda: (first / "metrics.jsonl").is_file())
    os.kill(int(json.loads((first / "status.json").read_text())["pid"]), signal.SIGKILL)
    out, _ = worker.communicate(timeout=300)
    rows = trial_rows(sweeps.load("dies"))
    assert [r["state"] for r in rows] == ["failed", "finished"], out
    assert "ended unexpectedly" in rows[0]["note"]


def test_a_dead_worker_fails_its_trial_and_the_next_worker_goes_on(env):
    sweep(env, "create", "orphan", *TINY, "--trials", "2", "--epochs", "30", "--pruner", "none")
    worker = start(env, "run", "orphan")
    first = Path(env["TINYVIT_RUNS"]) / "orphan-t0000"
    wait_for(lambda: (first / "metrics.jsonl").is_file())
    trainer = int(json.loads((first / "status.json").read_text())["pid"])
    worker.kill()
    worker.wait()
    sweep(env, "run", "orphan")
    rows = trial_rows(sweeps.load("orphan"))
    assert [r["state"] for r in rows] == ["failed", "finished"]
    assert not pid_alive(trainer)  # the dead worker's training was stopped, not left running
