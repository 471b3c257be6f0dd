"""Fashion-MNIST as Debian's dataset-fashion-mnist package ships it (make test installs it).

These tests use the real files in /usr/share/datasets/fashion-mnist/: their .gz wrappers differ
from torchvision's checksums, and the loader must still find and accept them with no --data-dir.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyvit.data import idx_files, load_dataset

REPO = Path(__file__).resolve().parent.parent
SYSTEM = Path(idx_files.SYSTEM_DIRS["fashion-mnist"][0])


@pytest.fixture(scope="module", autouse=True)
def debian_package():
    if not (SYSTEM / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{SYSTEM} is missing: `make test` installs Debian's dataset-fashion-mnist package")


def train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "train.py"), "--runs-root", str(tmp_path / "runs"),
                           "--data-dir", str(tmp_path / "data"), "--threads", "1", "--quiet", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_debian_files_are_the_official_images_whatever_their_gzip_wrapper():
    s = load_dataset("fashion-mnist", data_dir="/nonexistent", download=False)
    assert (len(s.train_y) + len(s.val_y), len(s.test_y)) == (60_000, 10_000)
    assert s.class_names[0] == "T-shirt/top" and s.class_names[-1] == "Ankle boot"
    assert s.test_y.bincount().tolist() == [1000] * 10


@pytest.mark.slow
def test_a_few_hundred_real_images_train_end_to_end_with_no_data_dir(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--dataset", "fashion-mnist", "--model",
                           "tinyvit", "--epochs", "1", "--subset", "50", "--threads", "2", "--quiet",
                           "--runs-root", str(tmp_path / "runs"), "--name", "fm"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "fm"
    config = json.loads((run / "config.json").read_text())
    assert config["sizes"]["train"] == 500 and config["sizes"]["test"] == 10_000
    test = json.loads((run / "test_metrics.json").read_text())
    # One epoch of 8 steps on 500 images (the slides' recipe): above chance (10%) on the 10,000
    # official test images; it measured 22.6%.
    assert test["accuracy"] > 0.15, test


@pytest.mark.parametrize("damage, reason", [
    (lambda data: b"", "the file is empty"),
    (lambda data: data[: len(data) // 2], "truncated or padded"),
])
def test_damaged_files_in_the_data_dir_exit_2_with_one_line_and_no_run(tmp_path, damage, reason):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in SYSTEM.iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    target = raw / "train-images-idx3-ubyte.gz"
    target.write_bytes(gzip.compress(damage(gzip.decompress(target.read_bytes()))))
    proc = train(tmp_path, "--dataset", "fashion-mnist", "--epochs", "1", "--subset", "5")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Fashion-MNIST file ") and reason in lines[0], proc.stderr
    assert "train-images-idx3-ubyte.gz was found but its contents do not match" in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_labels_where_images_belong_are_named(tmp_path):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in SYSTEM.iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes((SYSTEM / "t10k-labels-idx1-ubyte.gz").read_bytes())
    proc = train(tmp_path, "--dataset", "fashion-mnist", "--epochs", "1", "--subset", "5")
    assert proc.returncode == 2 and "it holds labels, not images" in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["demo-fmnist-tinyvit", "demo-fmnist-cnn"])
def test_the_fashion_mnist_demo_runs_reach_their_floors_from_their_weights(name):
    """Evaluated here from the shipped weights on the 10,000 official test images, not read
    from test_metrics.json: the floors are the issue's (TinyViT 91%, CNN 93%)."""
    import torch
    from tinyvit.inference import load_run
    from tinyvit.runs import DEMO_ROOT
    from tinyvit.tools.demo import DEMOS
    loaded = load_run(DEMO_ROOT / name)
    assert loaded.config["dataset"] == "fashion-mnist" and loaded.config["sizes"]["train"] == 54_000
    splits = load_dataset("fashion-mnist", data_dir="/nonexistent", download=False)
    torch.set_num_threads(2)
    preds = torch.cat([loaded.predict(loaded.preprocess.normalize(x)).argmax(-1)
                       for x in splits.test_x.split(500)])
    accuracy = (preds == splits.test_y).float().mean().item()
    floor = {d.name: d.min_accuracy for d in DEMOS}[name]
    assert floor >= (0.91 if "tinyvit" in name else 0.93)
    assert accuracy >= floor, f"{name}: {accuracy:.2%} from its weights"
    # What the run recorded is what its weights give.
    assert accuracy == pytest.approx(json.loads((DEMO_ROOT / name / "test_metrics.json").read_text())["accuracy"],
                                     abs=1e-4)
