"""The comparison views' core, without an app: a confusion cell to its images, the
disagreements of two runs, the learning timeline file, and the ViT/CNN anatomy arrays."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyvit import anatomy, timeline
from tinyvit.app import drilldown
from tinyvit.models import build_model
from tinyvit.runs import Run
from tinyvit.app.test_images import from_dataset, from_samples

REPO = Path(__file__).resolve().parent.parent


def preds(labels, preds_, confs) -> drilldown.Predictions:
    return drilldown.Predictions(np.array(labels), np.array(preds_), np.array(confs, dtype=float))


# -- drill-down ----------------------------------------------------------------------------
def test_cell_lists_its_images_most_confident_first():
    p = preds([0, 0, 1, 0, 0], [1, 1, 1, 0, 1], [0.5, 0.9, 0.8, 0.7, 0.6])
    assert drilldown.cell(p, 0, 1).tolist() == [1, 4, 0]
    assert drilldown.cell(p, 0, 0).tolist() == [3]
    assert drilldown.cell(p, 1, 0).tolist() == []  # a cell with no images


def test_outcomes_disagreements_and_wins():
    labels = [0, 0, 1, 1, 2, 2]
    a = preds(labels, [0, 1, 1, 0, 2, 0], [0.9, 0.6, 0.8, 0.99, 0.7, 0.5])
    b = preds(labels, [0, 0, 0, 0, 1, 2], [0.8, 0.7, 0.3, 0.5, 0.6, 0.55])
    assert drilldown.outcome_counts(a, b) == {"both right": 1, "only A right": 2, "only B right": 2,
                                              "both wrong": 1}
    # predictions differ at 1, 2, 4, 5; gaps 0.1, 0.5, 0.1, 0.05
    assert drilldown.disagreements(a, b).tolist() == [2, 1, 4, 5]
    only_a, only_b = drilldown.wins_per_class(a, b, 3)
    assert only_a.tolist() == [0, 1, 1] and only_b.tolist() == [1, 0, 1]
    assert drilldown.top_k(np.array([0.1, 0.6, 0.3]), 2) == [(1, 0.6), (2, 0.3)]


def test_runs_of_different_datasets_or_images_are_not_comparable():
    a = preds([0, 1], [0, 1], [1, 1])
    digits = {"dataset": "digits", "class_names": ["0", "1"]}
    assert drilldown.comparable(digits, digits, a, a) is None
    assert "different datasets" in drilldown.comparable(digits, {"dataset": "shapes", "class_names": ["0", "1"]}, a, a)
    assert "different classes" in drilldown.comparable(digits, {**digits, "class_names": ["a", "b"]}, a, a)
    assert "different images" in drilldown.comparable(digits, digits, a, preds([1, 0], [1, 0], [1, 1]))
    assert "finished" in drilldown.comparable(digits, digits, a, None)


def test_demo_pair_predictions_and_test_images(tiny_runs):
    vit, cnn = Run(tiny_runs["tinyvit"]), Run(tiny_runs["cnn"])
    a, b = drilldown.predictions_of(vit), drilldown.predictions_of(cnn)
    assert drilldown.comparable(vit.config(), cnn.config(), a, b) is None
    images = from_dataset(vit.config(), a.labels)
    assert images is not None and images.complete and len(images.images) == len(a)
    saved = from_samples(vit.file("samples.safetensors"))
    assert not saved.complete and 0 < len(saved.positions) < len(a)
    i = int(saved.positions[0])
    assert torch.equal(saved.image(i), images.image(i))  # the same test image either way
    # A dataset whose labels differ from the run's predictions is not used.
    assert from_dataset(vit.config(), a.labels[::-1].copy()) is None


# -- timeline ------------------------------------------------------------------------------
def test_probe_set_represents_every_class():
    y = np.repeat(np.arange(10), 30)
    probes = timeline.choose_probes(y)
    assert len(probes) == 16 and set(y[probes]) == set(range(10))
    many = timeline.choose_probes(np.repeat(np.arange(100), 3))
    assert len(many) == 16 and len(set(np.repeat(np.arange(100), 3)[many])) == 16


def _timeline(epochs: int, k: int = 10, grid: int = 7) -> timeline.Timeline:
    rng = np.random.default_rng(0)
    return timeline.Timeline(
        np.arange(1, epochs + 1), rng.random((epochs, 16, grid, grid)).astype(np.float16),
        rng.integers(0, k, (epochs, 16)).astype(np.int32), rng.random((epochs, 16)).astype(np.float16),
        rng.integers(0, 600, (epochs, k, k)).astype(np.uint16),
        rng.integers(0, 256, (16, 1, 28, 28)).astype(np.uint8), np.arange(16) % k, np.arange(16), "abc")


def test_timeline_size_bounded_for_100_epochs(tmp_path):
    # Fashion-MNIST's shape: 10 classes, 28 px images, a 7×7 token grid; random values
    # compress worst.
    timeline.save(tmp_path / timeline.FILE, _timeline(100))
    assert (tmp_path / timeline.FILE).stat().st_size < 2 * 2 ** 20
    back = timeline.load(tmp_path / timeline.FILE)
    assert back.maps.shape == (100, 16, 7, 7) and back.at(50) == 49 and back.at(1000) == 99


def test_truncated_damaged_and_foreign_timelines_are_refused(tmp_path):
    path = tmp_path / timeline.FILE
    assert timeline.load(path) is None  # an older run without the file
    timeline.save(path, _timeline(3))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(timeline.TimelineError, match="damaged or truncated"):
        timeline.load(path)
    path.write_bytes(b"not a zip at all")
    with pytest.raises(timeline.TimelineError, match="damaged or truncated"):
        timeline.load(path)
    path.write_bytes(whole)
    with pytest.raises(timeline.TimelineError, match="another run"):
        timeline.load(path, {"dataset": "digits", "model": "tinyvit"})


def test_three_epoch_digits_run_writes_its_timeline(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--dataset", "digits", "--subset", "20", "--epochs", "3",
         "--threads", "1", "--quiet", "--model", "tinyvit", "--embed-dim", "32", "--num-heads", "4",
         "--num-layers", "2", "--mlp-dim", "64", "--runs-root", str(tmp_path), "--name", "t3"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = Run(tmp_path / "t3")
    path = run.file(timeline.FILE)
    assert 0 < path.stat().st_size < 2 * 2 ** 20 / 30  # 3 of 100 epochs' share of the 2 MB bound
    t = timeline.load(path, run.config())
    assert t.epochs.tolist() == [1, 2, 3]
    assert t.maps.shape == (3, 16, 4, 4) and t.maps.dtype == np.float16  # 16 px, patch 4
    assert set(t.labels.tolist()) == set(range(10))
    assert t.confusion.shape == (3, 10, 10)
    assert t.confusion.sum((1, 2)).tolist() == [run.config()["sizes"]["val"]] * 3
    # The last epoch's validation accuracy is the one metrics.jsonl reports.
    last = t.confusion[-1]
    assert np.trace(last) / last.sum() == pytest.approx(run.metrics()[-1]["val_accuracy"])


def test_resume_keeps_the_recorded_epochs_before_the_checkpoint(tiny_runs, tmp_path):
    from tinyvit.training.config import TrainConfig
    from tinyvit.training.runner import load_data
    run = Run(shutil.copytree(tiny_runs["cnn"], tmp_path / "cnn"))
    assert timeline.load(run.file(timeline.FILE), run.config()).epochs.tolist() == [1, 2]
    data = load_data(TrainConfig.from_dict(run.config()), log=lambda m: None)
    args = (run.file(timeline.FILE), run.config(), "cnn", data.val_x, data.val_y,
            torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1), 10)
    assert timeline.Recorder(*args, start_epoch=1).rows.epochs.tolist() == [1]
    other = timeline.Recorder(run.file(timeline.FILE), {**run.config(), "seed": 5}, *args[2:], start_epoch=1)
    assert other.rows is None  # another run's file is not continued


# -- anatomy -------------------------------------------------------------------------------
def small_vit():
    torch.manual_seed(0)
    return build_model("tinyvit", num_classes=10, img_size=16, in_chans=1, embed_dim=32, patch_size=4,
                       num_heads=4, num_layers=2, mlp_dim=64, dropout=0.0, norm="pre").eval()


def test_position_similarity_is_one_on_the_diagonal():
    sim = anatomy.position_similarity(small_vit())
    assert sim.shape == (4, 4, 4, 4)
    assert all(sim[r, c, r, c] == pytest.approx(1, abs=1e-5) for r in range(4) for c in range(4))
    assert sim.max() <= 1 + 1e-5


def test_patch_components_and_attention_distance():
    model = small_vit()
    comps, share = anatomy.patch_components(model, 28)
    assert comps.shape == (16, 4, 4, 1) and comps.min() >= 0 and comps.max() <= 1  # 16 pixels → 16 components
    assert np.all(np.diff(share) <= 1e-6) and share.sum() == pytest.approx(1, abs=1e-5)
    dist = anatomy.mean_attention_distance(model, torch.randn(6, 1, 16, 16), batch=4)
    # Between patch centres 4 px apart on a 4×4 grid: from 0 up to the diagonal, 12√2.
    assert dist.shape == (2, 4) and (dist > 0).all() and (dist < 12 * 2 ** 0.5).all()


def test_attention_distance_of_a_head_that_looks_at_itself_is_zero():
    d = anatomy.patch_distances(2, 4)
    assert d[0, 3] == pytest.approx(4 * 2 ** 0.5) and d[1, 1] == 0


def test_cnn_filters_and_receptive_fields():
    cnn = build_model("cnn", num_classes=10, img_size=32, in_chans=3, widths=[8, 16, 32], dropout=0.0)
    assert anatomy.first_filters(cnn).shape == (8, 3, 3, 3)
    stages = anatomy.receptive_fields(cnn, 32)
    # two 3×3 convs: 5 px; 2×2 pool, two convs at stride 2: 14 px; at stride 4: 32 px
    assert [(s.receptive_field, s.stride, s.resolution) for s in stages] == [(5, 1, 32), (14, 2, 16), (32, 4, 8)]
    with pytest.raises(anatomy.AnatomyError):
        anatomy.position_similarity(cnn)
