"""Several machines through one PostgreSQL study, with a real server (Debian's `postgresql`,
which `make test` installs): two workers, each with its own runs folder as two machines
would have, share one study and never run the same trial; a trial whose worker on another
machine stopped sending heartbeats is marked failed and the sweep goes on; a wrong password
is reported with the password hidden."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgserver import PASSWORD, PgServer, pg_bin

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    if pg_bin() is None:
        pytest.fail("PostgreSQL is missing: `make test` installs Debian's postgresql package for this test")
    srv = PgServer().start()
    yield srv
    srv.stop()


def sweep(env, *args, check=True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "tinyvit.sweep", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert not check or out.returncode == 0, out.stdout + out.stderr
    return out


def test_a_wrong_password_is_one_line_with_the_password_hidden(server, tmp_path):
    env = {**os.environ, "TINYVIT_RUNS": str(tmp_path)}
    out = sweep(env, "status", "x", "--storage", server.url("not-the-password"), check=False)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "password authentication failed" in out.stderr
    assert "not-the-password" not in out.stderr and PASSWORD not in out.stderr and ":***@" in out.stderr


def test_two_workers_on_two_machines_share_one_study_and_never_run_a_trial_twice(server, tmp_path, monkeypatch):
    import optuna

    from tinyvit.runs import open_run
    from tinyvit.sweep import study as sweeps
    from tinyvit.sweep.table import trial_rows

    url = server.url()
    env = {**os.environ, "TINYVIT_SWEEP_STORAGE": url, "TINYVIT_SWEEP_GRACE": "3", "TINYVIT_MAX_JOBS": "2"}
    monkeypatch.setenv("TINYVIT_SWEEP_GRACE", "3")
    sweep({**env, "TINYVIT_RUNS": str(tmp_path / "c")}, "create", "pg", "--dataset", "digits", "--space",
          "tinyvit-small", "--subset", "20", "--threads", "1", "--trials", "5", "--epochs", "2")
    # A worker on a third machine took trial 0, sent one heartbeat, and crashed.
    study = sweeps.load("pg", url)
    crashed = study.ask()
    crashed.set_user_attr("host", "machine-that-crashed")
    study._storage.record_heartbeat(crashed._trial_id)
    time.sleep(4)

    roots = [tmp_path / "machine-a", tmp_path / "machine-b"]
    workers = [subprocess.Popen([sys.executable, "-m", "tinyvit.sweep", "run", "pg", "--runs-root", str(root)],
                                cwd=REPO, env={**env, "TINYVIT_RUNS": str(root)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for root in roots]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outs

    study = sweeps.load("pg", url)
    trials = study.get_trials()
    assert len(trials) == 5
    assert trials[0].state == optuna.trial.TrialState.FAIL
    rows = trial_rows(study)
    assert [r["state"] for r in rows][1:].count("failed") == 0 and rows[0]["state"] == "failed"
    ran = trials[1:]
    folders = [Path(t.user_attrs["run_dir"]) for t in ran]
    assert len(set(folders)) == 4  # four trials, four different runs
    for t, folder in zip(ran, folders):
        assert sum(folder.is_relative_to(r) for r in roots) == 1
        run = open_run(folder)
        assert run.config()["sweep_trial"] == t.number
        assert run.file("train.log").read_text().count("run folder:") == 1  # trained once
    # Every trial's curve is in the study, whichever machine's folder holds the run.
    assert all(len(t.user_attrs["history"]) >= 1 for t in ran)
    status = sweep({**env, "TINYVIT_RUNS": str(tmp_path / "c")}, "status", "pg").stdout
    assert "pg-t0004" in status and "***" not in status
