"""train.py as a user drives it: resuming takes the run's own settings, a run stopped in
its first epoch can be resumed, --run-dir creates a run, and an unusable runs folder is
one line before any data loads (issue 8, items 7, 8, 9 and 11)."""
import json
import subprocess
from pathlib import Path

import pytest

import train
from runhelpers import raw_status, stopped_run, train_cmd
from tinyvit.app import jobs
from tinyvit import runs
from tinyvit.training.runner import prepare_existing
from tinyvit.runs import RunError, open_run


def test_resume_trains_with_the_runs_threads_not_the_machines(tmp_path):
    run = stopped_run(tmp_path, epochs=2, done=1)  # trained with --threads 1
    proc = subprocess.run(train_cmd("--resume", "--run-dir", str(run.path)), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    st = raw_status(run)
    assert st["state"] == "finished" and st["threads"] == 1


def test_settings_given_with_resume_are_named_and_ignored(tmp_path):
    run = stopped_run(tmp_path, epochs=2, done=1)
    proc = subprocess.run(train_cmd("--resume", "--run-dir", str(run.path), "--threads", "2", "--lr", "0.5"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning: --resume takes every setting from the run but --device and --threads; ignoring --lr" in proc.stderr
    assert raw_status(run)["threads"] == 2       # where it runs may change; what it trains may not
    assert json.loads((run.path / "config.json").read_text())["lr"] != 0.5


def test_a_run_stopped_in_its_first_epoch_resumes_from_epoch_one(tmp_path):
    run = stopped_run(tmp_path, epochs=2, done=0)
    assert not (run.path / "checkpoint.safetensors").exists()
    assert "--resume continues from epoch 1" in raw_status(run)["message"]
    proc = subprocess.run(train_cmd("--resume", "--run-dir", str(run.path)), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [m["epoch"] for m in run.metrics()] == [1, 2]
    assert raw_status(run)["state"] == "finished"


def test_the_app_offers_resume_for_a_run_stopped_in_its_first_epoch(tmp_path):
    run = stopped_run(tmp_path, epochs=2, done=0)
    assert jobs.can_resume(run)
    run.write_status(state="finished")
    assert not jobs.can_resume(run)
    done = stopped_run(tmp_path, "done", epochs=2, done=1)
    assert jobs.can_resume(done)
    (done.path / "checkpoint.safetensors").unlink()  # damaged: weights without their checkpoint
    assert not jobs.can_resume(done)
    with pytest.raises(RunError, match="checkpoint is missing"):
        prepare_existing(done.path, resume=True)


def test_run_dir_for_a_new_run_creates_it(tmp_path):
    target = tmp_path / "mine" / "myrun"
    proc = subprocess.run(train_cmd("--run-dir", str(target), "--dataset", "digits", "--model", "cnn",
                                    "--widths", "8", "16", "--epochs", "1", "--subset", "10", "--threads", "1"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = open_run(target)
    assert raw_status(run)["state"] == "finished" and run.config()["model"] == "cnn"


def test_resume_of_a_missing_run_dir_is_still_refused(tmp_path, capsys):
    assert train.main(["--resume", "--run-dir", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "no run at" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_help_shows_no_empty_defaults():
    out = subprocess.run(train_cmd("--help"), capture_output=True, text=True, timeout=60).stdout
    assert "(default: None)" not in out and "(default: False)" not in out
    assert "--run-dir" in out and "(default: digits)" in out


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("a file"), "is a file, not a folder"),
    (lambda p: None, "is not writable"),
])
def test_an_unusable_runs_root_is_one_line_before_the_data_loads(tmp_path, make, message, capsys):
    root = tmp_path / "runs"
    make(root)
    if message == "is not writable":
        root = Path("/proc/self")  # read-only even for root, who ignores a folder's permissions
    code = train.main(["--runs-root", str(root), "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"),
                       "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "cifar" not in err[0]  # refused before the (missing) data was looked for


def test_the_app_gets_the_same_runs_root_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file, not a folder"):
        runs.check_runs_root(tmp_path / "file")
    with pytest.raises(RunError, match="is not writable"):
        runs.check_runs_root("/proc/self/newruns")
    assert runs.check_runs_root(tmp_path / "fresh") == tmp_path / "fresh"
    from tinyvit.training.config import TrainConfig, defaults_for
    cfg = TrainConfig(**{**defaults_for("digits"), "model": "cnn", "epochs": 1})
    with pytest.raises(RunError, match="is a file, not a folder"):
        jobs.launch(cfg, root=tmp_path / "file")
