"""Faithfulness of saliency maps: the metrics on hand-made cases, the command on a copy of a
shapes run, its stamped files, and the numbers shipped with the demo runs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from tinyvit import faithfulness as fa
from tinyvit.runs import DEMO_ROOT, READONLY_MARK

REPO = Path(__file__).resolve().parent.parent


class RegionModel(nn.Module):
    """Class 0's logit is 8 x the mean of the pixels in the top-left 4x4 of an 8x8 image;
    class 1's is 0: only that region matters to the prediction."""

    def forward(self, x):
        evidence = x[:, :, :4, :4].mean((1, 2, 3)) * 8
        return torch.stack([evidence, torch.zeros_like(evidence)], 1)


def region_map(n: int = 4) -> torch.Tensor:
    heat = torch.zeros(n, 8, 8)
    heat[:, :4, :4] = 1
    return heat


def test_a_perfect_map_beats_a_random_map_on_deletion_and_insertion():
    model, x = RegionModel(), torch.ones(4, 1, 8, 8)
    target = torch.zeros(4, dtype=torch.long)
    perfect_del, perfect_ins = fa.perturbation_curves(model, x, region_map(), target)
    random_del, random_ins = fa.perturbation_curves(model, x, fa.random_maps(4, 8, seed=1), target)
    assert perfect_del.shape == (4, fa.STEPS + 1)
    # Removing a quarter of the pixels, all of them the region, leaves no evidence: p = 0.5.
    assert torch.allclose(perfect_del[:, fa.STEPS // 4], torch.tensor(0.5))
    assert fa.auc(perfect_del).mean() < fa.auc(random_del).mean() - 0.05
    assert fa.auc(perfect_ins).mean() > fa.auc(random_ins).mean() + 0.05
    # The ends are the whole image and the fully removed one, whatever the map.
    assert torch.allclose(perfect_del[:, 0], random_del[:, 0]) and torch.allclose(perfect_ins[:, -1], perfect_del[:, 0])


def test_auc_of_hand_made_curves():
    assert fa.auc(np.ones(9)) == pytest.approx(1.0)
    assert fa.auc(np.linspace(1, 0, 9)) == pytest.approx(0.5)


def test_pointing_game_is_one_on_the_mask_and_zero_off_it():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, :4, :4] = True
    on = region_map(2)
    off = 1 - region_map(2)
    assert fa.pointing_game(on, masks).tolist() == [True, True]
    assert fa.pointing_game(off, masks).tolist() == [False, False]
    # A coarse map (the ViT's token grid) is compared at the mask's size.
    coarse = torch.zeros(2, 2, 2)
    coarse[:, 0, 0] = 1
    assert fa.pointing_game(coarse, masks).all()


def test_relevance_mass_is_the_share_of_the_map_on_the_object():
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[:, :4, :4] = True
    assert fa.relevance_mass(region_map(1), masks)[0] == pytest.approx(1.0)
    assert fa.relevance_mass(1 - region_map(1), masks)[0] == pytest.approx(0.0)
    assert fa.relevance_mass(torch.ones(1, 8, 8), masks)[0] == pytest.approx(0.25)
    assert fa.relevance_mass(torch.zeros(1, 8, 8), masks)[0] == pytest.approx(0.25)  # flat: as uniform


def test_the_centre_map_peaks_in_the_middle():
    c = fa.centre_map(8)
    assert c.shape == (8, 8) and c[3:5, 3:5].min() == c.max() and c[0, 0] < 0.2


# -- the command, on a copy of the demo shapes CNN ---------------------------------------------
@pytest.fixture
def shapes_copy(tmp_path) -> Path:
    run = tmp_path / "shapes-cnn"
    shutil.copytree(DEMO_ROOT / "demo-shapes-cnn", run)
    (run / READONLY_MARK).unlink()
    for name in (fa.REPORT, fa.CURVES):
        (run / name).unlink(missing_ok=True)
    return run


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyvit.faithfulness", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_the_command_writes_a_stamped_report_that_detects_tampering(shapes_copy):
    done = cli(str(shapes_copy), "--images", "6", "--methods", "gradcam,eigencam,rollout", "--quiet")
    assert done.returncode == 0, done.stderr
    doc = fa.load_report(shapes_copy, with_curves=True)
    assert doc["images"] == 6 and doc["has_masks"] and doc["removal"] == fa.REMOVAL
    assert set(doc["methods"]) == {"gradcam", "eigencam", "random", "centre"}
    assert "rollout" in doc["skipped"] and "transformer" in doc["skipped"]["rollout"]
    for row in doc["methods"].values():
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1
        assert 0 <= row["pointing_game"] <= 1 and 0 <= row["relevance_mass"] <= 1
    assert doc["curves"]["gradcam/deletion"].shape == (6, fa.STEPS + 1)
    assert fa.mean_curves(doc)["random"]["insertion"][0] == pytest.approx(
        float(doc["curves"]["random/insertion"][:, 0].astype(np.float64).mean()))
    assert "Grad-CAM" in done.stdout and "Random map" in done.stdout

    # An edited number breaks the checksum.
    edited = json.loads((shapes_copy / fa.REPORT).read_text())
    edited["methods"]["gradcam"]["pointing_game"] = 1.0
    original = (shapes_copy / fa.REPORT).read_text()
    (shapes_copy / fa.REPORT).write_text(json.dumps(edited))
    with pytest.raises(fa.FaithfulnessError, match="checksum"):
        fa.load_report(shapes_copy)
    (shapes_copy / fa.REPORT).write_text(original)
    # Other curves beside it.
    curves = (shapes_copy / fa.CURVES).read_bytes()
    (shapes_copy / fa.CURVES).write_bytes(curves + b"\0")
    with pytest.raises(fa.FaithfulnessError, match="does not match"):
        fa.load_report(shapes_copy)
    (shapes_copy / fa.CURVES).write_bytes(curves)
    # Other weights (the file copied to another run, or the run retrained).
    shutil.copyfile(DEMO_ROOT / "demo-shapes-tinyvit" / "model.safetensors", shapes_copy / "model.safetensors")
    with pytest.raises(fa.FaithfulnessError, match="other weights"):
        fa.load_report(shapes_copy)


@pytest.mark.parametrize("images,message", [("0", "at least 1"), ("-3", "at least 1"),
                                            ("601", "more than the 600 images")])
def test_a_bad_image_count_is_one_clear_message_and_nothing_is_written(shapes_copy, images, message):
    done = cli(str(shapes_copy), "--images", images, "--quiet")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (shapes_copy / fa.REPORT).exists() and not (shapes_copy / fa.CURVES).exists()


def test_a_run_without_weights_or_read_only_or_an_unknown_method_is_refused(shapes_copy, tmp_path):
    done = cli(str(shapes_copy), "--methods", "gradcam,magic", "--quiet")
    assert done.returncode == 2 and "unknown method magic" in done.stderr
    (shapes_copy / READONLY_MARK).write_text("demo")
    done = cli(str(shapes_copy), "--images", "4", "--quiet")
    assert done.returncode == 2 and "read-only" in done.stderr
    (shapes_copy / READONLY_MARK).unlink()
    (shapes_copy / "model.safetensors").unlink()
    done = cli(str(shapes_copy), "--images", "4", "--quiet")
    assert done.returncode == 2 and "no trained weights" in done.stderr and "Traceback" not in done.stderr
    assert not (shapes_copy / fa.REPORT).exists()


def test_the_demo_runs_ship_a_valid_faithfulness_report():
    for run in sorted(p for p in DEMO_ROOT.iterdir() if p.is_dir()):
        doc = fa.load_report(run)
        assert doc is not None, f"{run.name} has no {fa.REPORT}"
        assert doc["images"] >= 100 and "random" in doc["methods"] and not doc["skipped"]
        if doc["kind"] == "vit":
            assert {"rollout", "cls", "chefer", "gradcam", "scorecam"} <= set(doc["methods"])


def test_on_the_demo_shapes_cnn_grad_cam_points_at_the_object_far_more_often_than_chance():
    doc = fa.load_report(DEMO_ROOT / "demo-shapes-cnn")
    rows = doc["methods"]
    assert rows["gradcam"]["pointing_game"] > rows["random"]["pointing_game"] + 0.3
    assert rows["gradcam"]["deletion_auc"] < rows["random"]["deletion_auc"]
