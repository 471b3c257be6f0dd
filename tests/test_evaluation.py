"""python -m tinyvit.evaluation: a run's test report recomputed from its weights, plain and with
flip test-time augmentation, on the shipped shapes and digits demos (600 and 359 test images)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyvit.evaluation import probabilities, run_test_set
from tinyvit.inference import load_run
from tinyvit.runs import DEMO_ROOT

REPO = Path(__file__).resolve().parent.parent
SHAPES = DEMO_ROOT / "demo-shapes-tinyvit"


def evaluate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyvit.evaluation", *args, "--threads", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_the_plain_row_is_what_the_run_recorded_and_nothing_is_written():
    before = listing(SHAPES)
    out = evaluate_cli(str(SHAPES), "--tta", "flip", "--json")
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    recorded = json.loads((SHAPES / "test_metrics.json").read_text())
    assert reports["none"]["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)
    assert reports["none"]["confusion_matrix"] == recorded["confusion_matrix"]
    assert reports["flip"]["num_samples"] == 600 and reports["flip"]["accuracy"] > 0.9
    assert listing(SHAPES) == before


def test_the_table_names_both_rows():
    out = evaluate_cli(str(SHAPES), "--tta", "flip")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "demo-shapes-tinyvit: 600 test images"
    plain = next(line for line in lines if line.startswith("plain"))
    assert plain.split()[1] == f"{100 * json.loads((SHAPES / 'test_metrics.json').read_text())['accuracy']:.2f}"
    assert any(line.startswith("flip TTA") for line in lines)


def test_flip_tta_averages_each_image_with_its_horizontal_mirror():
    loaded = load_run(SHAPES)
    x, _ = run_test_set(loaded.config)
    x = x[:40]
    # An image that is its own left-right mirror gets the same probabilities with flip TTA...
    left = x[..., : x.shape[-1] // 2]
    symmetric = torch.cat([left, left.flip(-1)], -1)
    assert torch.allclose(probabilities(loaded, symmetric, "flip"), probabilities(loaded, symmetric), atol=1e-6)
    # ...and one mirrored top-to-bottom does not count as mirrored: the flip is horizontal.
    top = x[..., : x.shape[-2] // 2, :]
    upside = torch.cat([top, top.flip(-2)], -2)
    assert not torch.allclose(probabilities(loaded, upside, "flip"), probabilities(loaded, upside), atol=1e-4)
    # In general it is the mean of the two.
    both = (probabilities(loaded, x) + probabilities(loaded, x.flip(-1))) / 2
    assert torch.allclose(probabilities(loaded, x, "flip"), both, atol=1e-6)


def test_flip_tta_is_refused_where_training_never_mirrors():
    out = evaluate_cli(str(DEMO_ROOT / "demo-digits-cnn"), "--tta", "flip")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "error: flip TTA is not offered for digits: its training images are never mirrored, "
        "and a mirror image may belong to another class"]
    plain = evaluate_cli(str(DEMO_ROOT / "demo-digits-cnn"))
    assert plain.returncode == 0 and plain.stdout.startswith("demo-digits-cnn: 359 test images")


def test_a_missing_run_or_dataset_is_one_line_and_exit_2(tmp_path):
    out = evaluate_cli(str(tmp_path / "nothing-here"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    copy = shutil.copytree(DEMO_ROOT / "demo-digits-cnn", tmp_path / "moved", ignore=shutil.ignore_patterns(".readonly"))
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "dataset": "cifar10"}))
    out = evaluate_cli(str(copy), "--data-dir", str(tmp_path / "no-data"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: cannot load the run's test set:") and len(out.stderr.splitlines()) == 1
