"""The app's launch path (issue 9): a launched run's config.json is whole when it is created and
never rewritten, train.py reads it once, and a queued job waits for its slot before it loads
any data."""
from __future__ import annotations

import json
import time

import train
from tinyvit.app import jobs
from tinyvit.runs import create_run
from tinyvit.training import runner
from tinyvit.training.config import TrainConfig

TINY = TrainConfig(dataset="digits", model="cnn", epochs=1, subset=2, threads=1, model_hparams={"widths": [4, 8]})


def queued_run(root, name="queued", tags=None):
    return create_run(root, name, runner.complete_config(TINY, tags))


def test_complete_config_has_every_fact_train_py_records(tmp_path):
    run, *_ = runner.prepare_new(TINY, tmp_path / "cli", "cli", log=lambda m: None)
    run.release()
    by_cli = run.config()
    planned = runner.complete_config(TINY, {"sweep": "s", "sweep_trial": 3})
    assert planned["sweep"] == "s" and planned["sweep_trial"] == 3
    for key in runner.DATA_FACTS + ("epochs", "threads", "device", "model_kind", "format_version"):
        assert planned[key] == json.loads(json.dumps(by_cli[key])), key


def test_a_queued_run_waits_for_its_slot_before_loading_data_and_keeps_its_config(tmp_path, monkeypatch):
    run = queued_run(tmp_path)
    before = run.file("config.json").read_bytes()
    events = []

    def record(name, event):
        real = getattr(runner, name)
        monkeypatch.setattr(runner, name, lambda *a, **k: (events.append(event), real(*a, **k))[1])

    record("open_existing", "config")
    record("wait_for_slot", "slot")
    record("load_data", "data")
    assert train.main(["--run-dir", str(run.path), "--max-jobs", "1", "--quiet"]) == 0
    assert events == ["config", "slot", "data"]
    assert run.status()["state"] == "finished"
    assert run.file("config.json").read_bytes() == before


def test_a_queued_run_whose_data_changed_fails_with_the_reason(tmp_path, capsys):
    run = queued_run(tmp_path)
    config = run.config()
    run.write_config({**config, "class_names": [f"c{i}" for i in range(config["num_classes"])]})
    assert train.main(["--run-dir", str(run.path), "--quiet"]) == train.EXIT_USAGE
    assert "changed since it was queued (class_names differ)" in capsys.readouterr().err
    assert run.status()["state"] == "failed"


def test_a_config_queued_without_its_data_facts_is_refused(tmp_path, capsys):
    run = create_run(tmp_path, "old", TINY.to_dict())
    assert train.main(["--run-dir", str(run.path), "--quiet"]) == train.EXIT_USAGE
    assert "config.json lacks class_names" in capsys.readouterr().err


def test_the_app_launches_with_a_whole_config_and_train_py_never_rewrites_it(tmp_path):
    run = jobs.launch(TINY, root=tmp_path, jobs=1)
    created = run.file("config.json").read_bytes()
    assert set(runner.DATA_FACTS) <= set(json.loads(created))
    end = time.monotonic() + 300
    while run.status()["state"] in ("queued", "running") and time.monotonic() < end:
        time.sleep(0.5)
    assert run.status()["state"] == "finished", jobs.log_tail(run)
    assert run.file("config.json").read_bytes() == created


def test_run_names_come_from_one_place(tmp_path):
    launched = jobs.launch(TINY, root=tmp_path / "app", jobs=1)
    jobs.stop(launched)
    by_cli, *_ = runner.prepare_new(TINY, tmp_path / "cli", log=lambda m: None)
    by_cli.release()
    for run in (launched, by_cli):
        assert run.name.startswith("digits-cnn-") and len(run.name) == len("digits-cnn-20260101-120000")
