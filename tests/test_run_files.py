"""What is read from a run folder is checked in one place, and only run folders inside the
runs folder can be deleted (issue 8, items 5 and 15)."""
import json
import os

import pytest

from tinyvit.app import jobs, tables
from tinyvit.runs import RunError, create_run, delete_run, list_runs

GOOD_CONFIG = {"dataset": "digits", "model": "cnn", "epochs": 2, "class_names": ["a", "b"], "num_classes": 2,
               "img_size": 16, "in_chans": 1, "mean": [0.5], "std": [0.25], "num_params": 10}
ROW = {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}


def make(root, name, files=None):
    run = create_run(root, name, GOOD_CONFIG)
    run.write_status(state="finished")
    run.append_metrics(ROW)
    for fname, text in (files or {}).items():
        path = run.path / fname
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
    return run


# -- item 5: deleting --------------------------------------------------------------

def test_only_run_folders_inside_the_runs_root_are_deleted(tmp_path):
    root, outside = tmp_path / "runs", tmp_path / "elsewhere"
    run = create_run(outside, "precious", GOOD_CONFIG)
    with pytest.raises(RunError, match="not inside the runs folder"):
        delete_run(run, root=root)
    with pytest.raises(RunError, match="not inside the runs folder"):
        jobs.delete(run, root=root)
    crafted = create_run(root, "x", GOOD_CONFIG)
    with pytest.raises(RunError, match="not inside the runs folder"):
        delete_run(type(run)(crafted.path / ".." / ".." / "elsewhere" / "precious"), root=root)
    assert run.path.is_dir()
    not_a_run = root / "notes"
    not_a_run.mkdir()
    (not_a_run / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="not a TinyViT Lab run"):
        delete_run(type(run)(not_a_run), root=root)
    assert (not_a_run / "keep.txt").is_file()
    delete_run(crafted, root=root)
    assert not crafted.path.exists()


def test_a_symlinked_run_gets_a_clear_refusal(tmp_path):
    root = tmp_path / "runs"
    real = create_run(tmp_path / "real", "r", GOOD_CONFIG)
    root.mkdir()
    os.symlink(real.path, root / "r")
    link = type(real)(root / "r")
    with pytest.raises(RunError, match="symbolic link"):
        delete_run(link, root=root)
    with pytest.raises(RunError, match="symbolic link"):
        jobs.delete(link, root=root)
    assert (real.path / "config.json").is_file()


# -- item 15: damaged files --------------------------------------------------------

@pytest.mark.parametrize("files, problem", [
    ({"status.json": None}, "status.json is missing"),
    ({"status.json": "{not json"}, "status.json is not valid JSON"),
    ({"status.json": '["running"]'}, "status.json is not a JSON object"),
    ({"status.json": '{"state": "sleeping"}'}, "status.json has an unknown state 'sleeping'"),
    ({"metrics.jsonl": json.dumps(ROW) + "\n[1, 2]\n"}, "metrics.jsonl line 2 is not a JSON object"),
    ({"metrics.jsonl": '{"epoch": "one", "val_accuracy": 0.5}\n'}, "metrics.jsonl line 1: 'epoch'"),
    ({"config.json": json.dumps({**GOOD_CONFIG, "epochs": "ten"})}, "config.json: 'epochs'"),
    ({"config.json": json.dumps({**GOOD_CONFIG, "class_names": 3})}, "config.json: 'class_names'"),
    ({"test_metrics.json": '{"accuracy": "high"}'}, "test_metrics.json: 'accuracy'"),
    ({"test_metrics.json": '[0.9]'}, "test_metrics.json is not a JSON object"),
])
def test_a_damaged_run_is_listed_with_what_is_wrong_and_the_others_are_unaffected(tmp_path, files, problem):
    good = make(tmp_path, "good")
    bad = make(tmp_path, "bad", files)
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert set(runs) == {"good", "bad"}
    assert any(problem in p for p in runs["bad"].problems()), runs["bad"].problems()
    assert good.problems() == []
    # Every table the app builds from a run still builds, for the good and the damaged one.
    summaries = {r.name: tables.run_summary(r) for r in runs.values()}
    assert summaries["good"]["state"] == "finished"
    assert problem.split(" ")[0] in summaries["bad"]["problems"]
    tables.compare_frame(list(runs.values()))
    tables.slides_table(runs["bad"])
    st = runs["bad"].status()
    assert st["state"] in ("finished", "failed")  # never "queued" forever with a Stop offered
    if "status.json" in problem:
        assert st["state"] == "failed" and problem in st["error"]
    if "config.json" in problem:
        with pytest.raises(RunError, match="config.json"):
            runs["bad"].config()
    if "test_metrics.json" in problem:
        assert runs["bad"].test_metrics() is None
    assert all(isinstance(m, dict) and isinstance(m["epoch"], int) for m in runs["bad"].metrics())
