"""Sweeps without training: search spaces and their bad input, the CLI's one-line errors,
impossible combinations skipped (never run), the Pareto front, the `pruned` run state."""
from __future__ import annotations

import json

import pytest

from tinyvit.models.vit import check_vit_hparams
from tinyvit.runfiles import STATES
from tinyvit.runs import list_runs
from tinyvit.sweep import study as sweeps
from tinyvit.sweep.cli import main
from tinyvit.sweep.searchspace import NAMED_SPACES, SpaceError, grid_size, load_space, parse_space, to_config
from tinyvit.sweep.storage import SweepError, mask_url, open_storage
from tinyvit.sweep.table import pareto_front, trial_rows


@pytest.fixture(autouse=True)
def runs_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("TINYVIT_SWEEP_STORAGE", raising=False)
    return tmp_path / "runs"


def one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and err.startswith("error: ") and "Traceback" not in err, err
    return err


# -- search spaces -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, text, named", [
    (".yaml", "lr: {low: 1e-4, high: [oops\n", "does not parse"),
    (".json", '{"lr": {"low": 0.1,}}', "does not parse"),
    (".yaml", "depth: {low: 1, high: 4}\n", "unknown parameter 'depth'"),
    (".yaml", "lr: {low: 0.1, high: 0.01}\n", "'lr' has an empty range"),
    (".yaml", "embed_dim: {choices: []}\n", "'embed_dim' has an empty range"),
    (".yaml", "lr: {low: 0, high: 0.1, log: true}\n", "low must be above 0"),
    (".yaml", "recipe: {choices: [magic]}\n", "unknown recipe 'magic'"),
    (".yaml", "", "expected a mapping"),
])
def test_bad_search_space_files_are_named_in_one_line(tmp_path, suffix, text, named):
    path = tmp_path / f"space{suffix}"
    path.write_text(text)
    with pytest.raises(SpaceError) as err:
        load_space(str(path), "tinyvit")
    assert named in str(err.value) and "\n" not in str(err.value)


def test_a_missing_space_file_lists_the_named_spaces(tmp_path):
    with pytest.raises(SpaceError, match="no such file.*tinyvit-default"):
        load_space(str(tmp_path / "nope.yaml"), "tinyvit")


def test_a_space_file_with_ranges_choices_and_fixed_values(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("num_layers: {low: 1, high: 4}\nlr: {low: 1.0e-4, high: 1.0e-2, log: true}\n"
                    "embed_dim: {choices: [32, 64]}\nnorm: pre\n")
    params = parse_space(load_space(str(path), "tinyvit"), "tinyvit")
    assert (params["num_layers"].kind, params["lr"].kind, params["embed_dim"].kind, params["norm"].kind) == \
        ("int", "float", "categorical", "fixed")
    assert params["lr"].log and params["norm"].value == "pre"


def test_the_default_spaces_only_hold_buildable_shapes():
    """Heads divide every width and patches divide 16- and 32-pixel images, so no default
    trial is wasted on a model that cannot be built."""
    for name in ("tinyvit-default", "tinyvit-small"):
        s = NAMED_SPACES[name]
        for dim in s["embed_dim"]["choices"]:
            for heads in s["num_heads"]["choices"]:
                for patch in s["patch_size"]["choices"]:
                    for img in (16, 32):
                        check_vit_hparams(img, patch, dim, heads, 2, 64, 0.1, "post")
    assert set(NAMED_SPACES["tinyvit-default"]) >= {"num_layers", "embed_dim", "num_heads", "patch_size",
                                                    "mlp_ratio", "lr", "weight_decay", "dropout", "recipe"}
    assert set(NAMED_SPACES["cnn-default"]) >= {"width", "lr", "weight_decay"}


def test_trial_values_become_a_train_config():
    settings = dict(dataset="digits", model="tinyvit", epochs=3, subset=20, threads=1)
    cfg = to_config(settings, {"embed_dim": 32, "mlp_ratio": 4, "num_heads": 2, "lr": 0.002, "recipe": "slides"})
    assert cfg.model_hparams == {"embed_dim": 32, "num_heads": 2, "mlp_dim": 128}
    assert (cfg.epochs, cfg.subset, cfg.threads, cfg.lr, cfg.schedule, cfg.batch_size) == \
        (3, 20, 1, 0.002, "constant", 64)
    cnn = to_config(dict(settings, model="cnn"), {"width": 16, "stages": 2, "weight_decay": 0.01})
    assert cnn.model_hparams == {"widths": [16, 32]} and cnn.weight_decay == 0.01
    assert cnn.schedule == "cosine"  # digits' small-data recipe stays the default


def test_grid_size_counts_choices_int_steps_and_float_points():
    space = {"embed_dim": {"choices": [16, 32]}, "num_layers": {"low": 1, "high": 3}, "lr": {"low": 1e-3, "high": 1e-2}}
    assert grid_size(space, "tinyvit") == 2 * 3 * 3


# -- storage and the CLI's one-line errors -----------------------------------------------------
def test_create_then_an_existing_name_is_refused(capsys, runs_env):
    assert main(["create", "s", "--space", "tinyvit-small", "--trials", "2", "--epochs", "1"]) == 0
    assert "created sweep 's'" in capsys.readouterr().out
    assert "already exists" in one_line_error(capsys, ["create", "s", "--trials", "2"])


@pytest.mark.parametrize("argv, named", [
    (["create", "s", "--trials", "0"], "argument --trials: must be at least 1, got 0"),
    (["create", "s", "--epochs", "-2"], "argument --epochs: must be at least 1"),
    (["create", "s", "--timeout", "0"], "argument --timeout: must be above 0"),
    (["create", "s", "--space", "nothing-like-this.yaml"], "no such file"),
    (["create", "../up", "--trials", "1"], "invalid sweep name"),
    (["create", "s", "--dataset", "nope"], "nope"),
    (["run", "missing"], "no sweep named 'missing'"),
    (["create", "s", "--storage", "sqlite:///x.db"], "SQLite is not safe"),
])
def test_bad_input_gets_one_line(capsys, argv, named):
    assert named in one_line_error(capsys, argv)


def test_an_unreachable_storage_hides_its_password(capsys):
    err = one_line_error(capsys, ["status", "s", "--storage", "postgresql://lab:hunter2@127.0.0.1:1/sweeps"])
    assert "cannot reach storage postgresql://lab:***@127.0.0.1:1/sweeps" in err and "hunter2" not in err
    assert mask_url("postgresql://a:b@h/db") == "postgresql://a:***@h/db"
    with pytest.raises(SweepError):
        open_storage("mysql://x", "s")


def test_help_names_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("create", "run", "status", "stop", "resume", "best", "postgresql://"):
        assert cmd in out


# -- impossible combinations and the trial table ----------------------------------------------
def test_impossible_combinations_are_skipped_with_the_reason_and_never_run(tmp_path, capsys, runs_env):
    space = tmp_path / "bad.json"
    space.write_text(json.dumps({"patch_size": {"choices": [5]}, "embed_dim": {"choices": [32]},
                                 "num_heads": {"choices": [3]}}))
    assert main(["create", "bad", "--space", str(space), "--trials", "2", "--epochs", "1"]) == 0
    assert main(["run", "bad"]) == 0
    rows = trial_rows(sweeps.load("bad"))
    assert [r["state"] for r in rows] == ["skipped", "skipped"]
    assert all("must divide" in r["note"] for r in rows)
    assert list_runs(runs_env) == []


def test_pareto_front_keeps_only_undominated_points():
    pts = [(100, 90.0), (50, 80.0), (200, 95.0), (150, 85.0), (50, 70.0)]
    assert pareto_front(pts) == [1, 0, 2]


def test_pruned_is_a_run_state():
    assert "pruned" in STATES


def test_stop_is_honoured_by_workers_started_later_until_resume(capsys, runs_env):
    assert main(["create", "halt", "--space", "tinyvit-small", "--trials", "1", "--epochs", "1"]) == 0
    assert main(["stop", "halt"]) == 0
    assert "stop requested: 0 running trial(s)" in capsys.readouterr().out
    assert main(["run", "halt"]) == 0
    assert trial_rows(sweeps.load("halt")) == [] and list_runs(runs_env) == []
    assert sweeps.stop_requested(sweeps.load("halt"))
    assert sweeps.resume(sweeps.load("halt")) == 0 and not sweeps.stop_requested(sweeps.load("halt"))


def test_the_sweep_core_imports_neither_streamlit_nor_plotly():
    import subprocess
    import sys
    code = ("import sys, tinyvit.sweep.cli, tinyvit.sweep.worker, tinyvit.sweep.table, tinyvit.sweep.processes;"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'streamlit', 'plotly'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_best_names_the_best_trials_run_and_push_to_hub_is_checked(capsys, runs_env, tiny_runs, monkeypatch):
    assert main(["create", "b", "--space", "tinyvit-small", "--trials", "2", "--epochs", "2"]) == 0
    study = sweeps.load("b")
    for acc, model in ((0.5, "cnn"), (0.8, "tinyvit")):
        trial = study.ask()
        trial.set_user_attr("run_dir", str(tiny_runs[model]))
        study.tell(trial, acc)
    capsys.readouterr()
    assert main(["best", "b"]) == 0
    out = capsys.readouterr().out
    assert "best trial: 1  val accuracy 80.00%" in out and f"run: {tiny_runs['tinyvit']}" in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["best", "b", "--push-to-hub", "someone/best"]) == 2
    assert "HF_HUB_OFFLINE=1 is set" in capsys.readouterr().err
