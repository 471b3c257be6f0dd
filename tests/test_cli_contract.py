"""train.py's contract as the README states it: exit codes, bad input, presets, stopping, and
the README's environment-variable table, each read from README.md and checked against the code."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train
from tinyvit.training import loop
from tinyvit.training.config import TrainConfig, defaults_for
from tinyvit.training.loop import set_threads
from tinyvit.inference import load_run
from tinyvit.models import resolve_hparams
from tinyvit.runs import open_run
from tinyvit.training.runner import execute, prepare_new

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CODE = [ROOT / "app.py", ROOT / "train.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "tinyvit").rglob("*.py")]
TINY = ["--dataset", "digits", "--model", "cnn", "--widths", "8", "16", "--subset", "10", "--epochs", "2",
        "--threads", "1", "--quiet"]


def code_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in CODE)


# -- the README's environment-variable table ----------------------------------------------

def readme_env_table() -> dict[str, str]:
    """{variable: default} from the table whose header is '| setting (environment variable) |'."""
    lines = README[README.index("| setting (environment variable)"):].splitlines()
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        name, default = (c.strip() for c in line.strip("|").split("|")[:2])
        rows[name.strip("`")] = default
    return rows


def test_the_readme_env_table_lists_variables_the_code_reads():
    table = readme_env_table()
    assert {"TINYVIT_RUNS", "TINYVIT_DEMO_RUNS", "TINYVIT_MAX_JOBS", "HF_TOKEN", "HF_HUB_OFFLINE"} <= set(table)
    code = code_text()
    from tinyvit.app.space import ENV_OVERRIDES   # the Space's caps, read through this table
    for name in table:
        # Read by name, or through a constant that holds the name (ADMIN_ENV = "TINYVIT_ADMIN_TOKEN").
        via = "|".join(re.findall(rf"""(\w+)\s*=\s*["']{name}["']""", code)) or "(?!)"
        assert name in ENV_OVERRIDES.values() or re.search(
            rf"""environ(\.get\(|\[)\s*(["']{name}["']|({via})\b)|getenv\(\s*["']{name}["']""", code), \
            f"README's table names {name}, but no code reads it"


def test_every_tinyvit_variable_the_code_reads_is_in_the_readme():
    read = set(re.findall(r"""["'](TINYVIT_[A-Z_]+)["']""", code_text()))
    assert read, "no TINYVIT_ variable found in the code"
    assert not read - set(re.findall(r"`(TINYVIT_[A-Z_]+)", README)), "read by the code, not in the README"


def test_the_env_table_defaults_are_the_code_defaults(monkeypatch, tmp_path):
    from tinyvit.app import jobs
    from tinyvit import runs
    table = readme_env_table()
    for name in ("TINYVIT_RUNS", "TINYVIT_DEMO_RUNS", "TINYVIT_MAX_JOBS"):
        monkeypatch.delenv(name, raising=False)
    assert str(runs.default_root()) == table["TINYVIT_RUNS"].strip("`")
    assert runs.run_roots()[1].name == table["TINYVIT_DEMO_RUNS"].strip("`")
    assert str(jobs.max_jobs()) == table["TINYVIT_MAX_JOBS"]
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", "")  # "empty: none"
    assert runs.run_roots() == (runs.default_root(),)


# -- the README's exit codes --------------------------------------------------------------

def readme_exit_codes() -> dict[str, int]:
    """{"finished": 0, "stopped": 0, "failed": 1, ...} from the README's 'Exit codes:' item."""
    item = re.search(r"Exit codes: (.*?)\.\n", README, re.S).group(1)
    item = re.sub(r"\([^)]*\)", "", item.replace("\n", " "))
    codes = {}
    for code, words in re.findall(r"(\d) ([a-z ]+)", item):
        for meaning in words.split(" or "):
            codes[meaning.strip()] = int(code)
    return codes


def scenario(tmp_path, monkeypatch, meaning: str) -> tuple[int, str | None]:
    """Run train.py (in this process) into the README's case; (exit code, the run's state)."""
    args = [*TINY, "--runs-root", str(tmp_path), "--name", "r"]
    if meaning == "stopped":  # the Stop button: a STOP file, seen after the current batch
        monkeypatch.setattr(train.Progress, "__call__", lambda self, *a: self.run.request_stop())
    elif meaning == "failed":  # the machine fails mid-run (not the user's input)
        def broken(self, epoch):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        monkeypatch.setattr(loop.Trainer, "train_epoch", broken)
    elif meaning == "bad input":
        args += ["--epochs", "0"]
    elif meaning == "diverged":
        args += ["--lr", "1e30"]
    code = train.main(args)
    run = tmp_path / "r"
    return code, open_run(run).status()["state"] if run.exists() else None


def test_the_readme_exit_codes_are_train_pys(tmp_path, monkeypatch, capsys):
    codes = readme_exit_codes()
    assert set(codes) == {"finished", "stopped", "failed", "bad input", "diverged"}, codes
    assert set(codes.values()) == {train.EXIT_OK, train.EXIT_FAILED, train.EXIT_USAGE, train.EXIT_DIVERGED}
    for meaning, expected in codes.items():
        with monkeypatch.context() as m:
            code, state = scenario(tmp_path / meaning.replace(" ", "-"), m, meaning)
        err = capsys.readouterr().err
        assert code == expected, (meaning, err)
        assert state == (None if meaning == "bad input" else meaning), meaning
        if meaning in ("failed", "bad input", "diverged"):
            assert err.strip().splitlines()[-1].startswith("error: "), err
    # The failure's traceback goes to stderr (the app shows train.log's end) with one last line.
    assert "illegal memory access" in open_run(tmp_path / "failed" / "r").status()["error"]


# -- bad input: exit 2, one line, nothing created -----------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--device", "foo"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'foo'"),
    (["--device", "cuda:abc"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'cuda:abc'"),
    (["--warmup-epochs", "nan"], "--warmup-epochs must be 0 or more, got nan"),
    (["--warmup-epochs", "inf"], "--warmup-epochs must be 0 or more, got inf"),
    (["--weight-decay", "nan"], "--weight-decay must be 0 or more"),
    pytest.param(["--device", "cuda:0"], "no CUDA GPU is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
    pytest.param(["--device", "mps"], "MPS is not available",
                 marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")),
])
def test_bad_device_and_non_finite_settings_are_bad_input(tmp_path, capsys, args, message):
    code = train.main([*args, "--runs-root", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == train.EXIT_USAGE
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "runs").exists()


# -- presets ------------------------------------------------------------------------------

def config_for(*argv: str):
    return train.config_from_args(train.parser().parse_args(list(argv)))


def test_other_flags_override_a_preset_including_the_model():
    cfg = config_for("--preset", "seed-cifar10-tinyvit", "--model", "cnn")
    assert (cfg.dataset, cfg.model, cfg.lr, cfg.epochs, cfg.batch_size) == ("cifar10", "cnn", 3e-4, 100, 64)
    assert cfg.model_hparams == {}  # the preset's TinyViT settings are not kept for a CNN
    assert resolve_hparams("cnn", 32, **cfg.model_hparams)["widths"]
    cfg = config_for("--preset", "seed-cifar10-tinyvit", "--num-heads", "4", "--epochs", "3")
    assert cfg.model_hparams["num_heads"] == 4 and cfg.model_hparams["embed_dim"] == 128 and cfg.epochs == 3
    cfg = config_for("--preset", "seed-cifar10-tinyvit", "--model", "tinyvit")
    assert cfg.model_hparams["norm"] == "post"


# -- Ctrl-C ---------------------------------------------------------------------------------

def test_ctrl_c_stops_after_the_batch_with_a_usable_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--dataset", "digits", "--model", "cnn",
                             "--widths", "8", "16", "--epochs", "500", "--name", "c", "--runs-root",
                             str(tmp_path), "--quiet", "--threads", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "c" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == train.EXIT_OK, err
    assert "Traceback" not in err
    run = open_run(tmp_path / "c")
    assert run.status()["state"] == "stopped"
    assert f"resume with: python train.py --resume --run-dir {run.path}" in out
    assert 1 <= len(run.metrics()) < 500
    assert load_run(run.path).model is not None


# -- resume elsewhere -------------------------------------------------------------------------

@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_resume_with_another_thread_count_on_another_device(tmp_path, keep_threads):
    cfg = TrainConfig(**{**defaults_for("digits"), "model": "cnn", "model_hparams": {"widths": [8, 16]},
                         "epochs": 3, "subset": 10, "batch_size": 16, "threads": 2})
    run, data, model, epochs = prepare_new(cfg, tmp_path, "moved", log=lambda m: None)

    def stop_in_epoch_two(epoch, batch, batches):
        if epoch == 1 and batch == 1:
            run.request_stop()

    set_threads(2)
    execute(run, data, model, epochs, cfg, False, torch.device("cpu"), on_batch=stop_in_epoch_two,
            log=lambda m: None)
    first = run.metrics()
    assert run.status()["state"] == "stopped" and [m["epoch"] for m in first] == [1]
    # As if it had trained on a GPU machine: the config says cuda, 2 threads.
    config = json.loads(run.file("config.json").read_text())
    run.write_config({**config, "device": "cuda"})

    code = train.main(["--resume", "--run-dir", str(run.path), "--device", "cpu", "--threads", "1", "--quiet"])
    assert code == train.EXIT_OK
    status = run.status()
    assert status["state"] == "finished" and status["device"] == "cpu" and status["threads"] == 1
    rows = run.metrics()
    assert [m["epoch"] for m in rows] == [1, 2, 3] and rows[0] == first[0]
    assert run.test_metrics()["num_samples"] == config["sizes"]["test"]
    assert load_run(run.path).model is not None
