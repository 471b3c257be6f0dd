"""The recipe and data-scaling studies: rows of ordinary runs, resumable, summarised in a table."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import train
from tinyvit.tools import study
from tinyvit.training.config import validate
from tinyvit.models import build_model

REPO = Path(__file__).resolve().parent.parent


def config_of(row):
    return train.config_from_args(train.parser().parse_args(list(row.args)))


def test_every_row_is_a_valid_train_py_run_with_its_recipe():
    rows = study.recipe_rows("fashion-mnist", 30)
    assert [r.name for r in rows] == ["fashion-mnist-tinyvit-slides", "fashion-mnist-tinyvit-plus",
                                      "fashion-mnist-tinyvit-conv-plus", "fashion-mnist-cnn-slides",
                                      "fashion-mnist-cnn-plus"]
    for row in rows:
        cfg = config_of(row)
        validate(cfg)
        build_model(cfg.model, num_classes=10, img_size=28, in_chans=1, **cfg.model_hparams)
        assert cfg.epochs == 30 and cfg.dataset == "fashion-mnist"
    slides, plus = config_of(rows[0]), config_of(rows[1])
    assert (slides.lr, slides.batch_size, slides.schedule, slides.model_hparams["norm"]) == (3e-4, 64, "constant", "post")
    assert (plus.lr, plus.batch_size, plus.schedule, plus.model_hparams["dropout"]) == (5e-4, 64, "cosine", 0.0)
    cnn_plus = config_of(rows[4])
    assert (cnn_plus.lr, cnn_plus.batch_size, cnn_plus.random_erasing) == (1e-3, 128, 0.25)
    assert plus.random_erasing == 0.0 and "dropout" not in cnn_plus.model_hparams


def test_a_cheaper_recipe_study_trains_a_subset_and_says_so_in_its_row_names():
    rows = study.recipe_rows("fashion-mnist", 20, subset=500)
    assert rows[0].name == "fashion-mnist-500-tinyvit-slides"
    assert {config_of(r).subset for r in rows} == {500} and {config_of(r).epochs for r in rows} == {20}
    assert config_of(study.recipe_rows("fashion-mnist", 20)[0]).subset is None


def test_scaling_rows_see_the_same_number_of_images():
    rows = study.scaling_rows([300, 3000], images_seen=162_000)
    seen = {}
    for row in rows:
        cfg = config_of(row)
        seen[row.name] = cfg.epochs * cfg.generate_per_class * 6 * 0.9
    assert seen["shapes-300-tinyvit"] == seen["shapes-300-cnn"] == 162_000
    assert seen["shapes-3000-tinyvit"] == 162_000
    assert config_of(rows[0]).epochs == 100 and config_of(rows[2]).epochs == 10


@pytest.mark.slow
def test_a_study_trains_its_rows_skips_finished_ones_and_tables_them(tmp_path, monkeypatch):
    small = (("tinyvit", "slides"), ("cnn", "plus"))
    monkeypatch.setattr(study, "RECIPE_ROWS", small)
    monkeypatch.setattr(study, "SLIDES_VIT", ("--embed-dim", "32", "--num-heads", "4", "--num-layers", "2",
                                              "--mlp-dim", "64"))
    assert study.main(["recipes", "--dataset", "digits", "--epochs", "1", "--threads", "1",
                       "--runs-root", str(tmp_path)]) == 0
    text = study.table(tmp_path)
    assert "| digits-tinyvit-slides | tinyvit | 1,295 | 1 |" in text and "| digits-cnn-plus | cnn |" in text
    out = subprocess.run([sys.executable, "-m", "tinyvit.tools.study", "table", "--runs-root", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == text
    calls = []
    monkeypatch.setattr(study.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    assert study.main(["recipes", "--dataset", "digits", "--epochs", "1", "--runs-root", str(tmp_path)]) == 0
    assert calls == []                               # both rows finished: nothing retrained


def test_the_slides_rows_owe_nothing_to_fashion_mnists_plus_defaults():
    slides_vit, slides_cnn = (config_of(r) for r in study.recipe_rows("fashion-mnist", 5)[0::3][:2])
    assert (slides_vit.model_hparams["dropout"], slides_vit.random_erasing, slides_vit.lr) == (0.1, 0.0, 3e-4)
    assert (slides_cnn.random_erasing, slides_cnn.batch_size, slides_cnn.schedule) == (0.0, 64, "constant")
