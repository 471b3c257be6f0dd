"""Shared by the app tests: two tiny digits runs, trained once per test session by train.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# 20 training images per class, 2 epochs, a small TinyViT: the run format and every page
# are exercised in seconds; accuracy does not matter here.
TINY = ["--dataset", "digits", "--subset", "20", "--epochs", "2", "--threads", "1", "--quiet"]
SMALL_VIT = ["--embed-dim", "32", "--num-heads", "4", "--num-layers", "2", "--mlp-dim", "64"]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """{"tinyvit": run folder, "cnn": run folder}, finished, with test metrics and samples."""
    root = tmp_path_factory.mktemp("tiny-runs")
    jobs = {"tinyvit": SMALL_VIT, "cnn": ["--widths", "16", "32"]}
    procs = {model: subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *TINY, "--model", model, *extra,
         "--runs-root", str(root), "--name", f"tiny-{model}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for model, extra in jobs.items()}
    for model, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"train.py --model {model} failed:\n{out}"
    return {model: root / f"tiny-{model}" for model in jobs}
