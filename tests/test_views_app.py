"""The comparison views through streamlit.testing's AppTest: a confusion cell's images,
the disagreement explorer, the timeline slider, the anatomy page, the readable
confusion matrix and Compare's defaults, and their bad inputs, each with a message."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tinyvit.app import drilldown, run_choice, scaling
from tinyvit import hub, timeline
from tinyvit.runs import Run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def app_env(tmp_path, monkeypatch):
    for name in ("runs", "demo", "hub"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", str(tmp_path / "demo"))
    monkeypatch.setenv("TINYVIT_HUB_RUNS", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "hub_token", lambda: None)
    return tmp_path


@pytest.fixture
def root(app_env, tiny_runs) -> Path:
    root = app_env / "runs"
    for path in tiny_runs.values():
        shutil.copytree(path, root / path.name)
    return root


def open_page(path: str, **state) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.switch_page(path)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def text(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def images(at: AppTest) -> int:
    return len(at.get("image"))


def select_cell(true: int, pred: str) -> dict:
    return {"selection": {"rows": [], "columns": [], "cells": [[true, pred]]}}


def busiest_wrong_cell(run: Run) -> tuple[int, int, int]:
    p = drilldown.predictions_of(run)
    k = len(run.config()["class_names"])
    counts = np.bincount(p.labels * k + p.preds, minlength=k * k).reshape(k, k)
    np.fill_diagonal(counts, -1)
    t, q = np.unravel_index(counts.argmax(), counts.shape)
    return int(t), int(q), int(counts[t, q])


# -- Metrics: drill-down and timeline -----------------------------------------------------------
def test_metrics_cell_shows_its_images_most_confident_first(root):
    run = Run(root / "tiny-tinyvit")
    true, pred, n = busiest_wrong_cell(run)
    at = open_page("pages/metrics.py", picker_metrics=str(run.path))
    clean(at)
    before = images(at)
    at.session_state[f"m_drill_cells_{run.name}"] = select_cell(true, str(pred))
    at.run()
    clean(at)
    assert f"true **{true}**, predicted **{pred}**: {n} image(s)." in text(at.markdown)
    shown = min(n, 12)
    assert images(at) == before + shown
    # Captions name the predicted class with its confidence, most confident first.
    p = drilldown.predictions_of(run)
    first = drilldown.cell(p, true, pred)[0]
    captions = [c for c in _image_captions(at) if c.endswith(f"· #{first}")]
    assert captions and captions[0].startswith(f"{pred} ")


def _image_captions(at: AppTest) -> list[str]:
    return [img.caption for el in at.get("image") for img in el.proto.imgs]


def test_metrics_empty_cell_says_so(root):
    run = Run(root / "tiny-cnn")
    p = drilldown.predictions_of(run)
    k = len(run.config()["class_names"])
    empty = next((t, q) for t in range(k) for q in range(k) if len(drilldown.cell(p, t, q)) == 0)
    at = open_page("pages/metrics.py", picker_metrics=str(run.path),
                   **{f"m_drill_cells_{run.name}": select_cell(empty[0], str(empty[1]))})
    clean(at)
    assert "No test image is in this cell" in text(at.info)


def test_timeline_slider_changes_the_epoch_shown(root):
    run = Run(root / "tiny-tinyvit")
    key = f"tl_epoch_{run.path}"
    at = open_page("pages/metrics.py", picker_metrics=str(run.path))
    clean(at)
    assert at.select_slider(key=key).value == 2  # opens on the last epoch
    assert "after epoch 2" in text(at.caption)
    t = timeline.load(run.file(timeline.FILE))
    at.select_slider(key=key).set_value(1).run()
    clean(at)
    assert "after epoch 1" in text(at.caption)
    right = int(np.trace(t.confusion[0]))
    chart = [c for c in at.get("plotly_chart") if "tl_cm" in c.proto.id][0]
    assert f"{right / t.confusion[0].sum():.1%} right" in chart.proto.spec


def test_timeline_play_steps_through_the_epochs(root):
    run = Run(root / "tiny-tinyvit")
    key, play = f"tl_epoch_{run.path}", f"tl_play_{run.path}"
    at = open_page("pages/metrics.py", picker_metrics=str(run.path))
    [b for b in at.button if b.key == f"tl_btn_{run.path}"][0].click().run()
    clean(at)
    # Play from the last epoch starts at the first; each tick (the fragment's timer) steps on.
    assert at.session_state[play] and at.select_slider(key=key).value == 1
    at.run()
    assert at.select_slider(key=key).value == 2
    at.run()
    assert not at.session_state[play]  # stopped at the last epoch


@pytest.mark.parametrize("damage, message", [
    ("truncate", "damaged or truncated"),
    ("foreign", "belongs to another run"),
    ("remove", "has no timeline"),
])
def test_bad_timeline_files_are_explained(root, damage, message):
    run = Run(root / "tiny-cnn")
    path = run.file(timeline.FILE)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "foreign":
        shutil.copy(root / "tiny-tinyvit" / timeline.FILE, path)
    else:
        path.unlink()
    at = open_page("pages/metrics.py", picker_metrics=str(run.path))
    assert not at.exception
    assert message in text(at.warning) + text(at.info)
    assert "Confusion matrix (test)" in text(at.subheader)  # the rest of the page still shows


def test_run_on_its_first_epoch(root):
    run_dir = root / "first-epoch"
    run_dir.mkdir()
    cfg = json.loads((root / "tiny-tinyvit" / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(cfg))
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "created_at": 1e10}))
    for page, key in (("pages/metrics.py", "picker_metrics"), ("pages/anatomy.py", "picker_anatomy")):
        at = open_page(page, **{key: str(run_dir)})
        clean(at)
        assert "first epoch" in text(at.info)


# -- Compare: defaults, mismatch, disagreements ----------------------------------------------
def test_compare_opens_on_a_pair_of_one_dataset_vit_first(root):
    at = open_page("pages/compare.py")
    clean(at)
    assert [Path(p).name for p in at.session_state["cmp_runs"]] == ["tiny-tinyvit", "tiny-cnn"]
    assert not at.warning
    # The settings that differ: the model, not the dataset.
    settings = run_choice.differing_settings([Run(root / "tiny-tinyvit"), Run(root / "tiny-cnn")])
    assert "model" in settings.columns and "dataset" not in settings.columns


def test_settings_that_differ_show_integers_as_integers_and_missing_as_a_dash(root):
    """A ViT's embed_dim beside a CNN (which has none) read "128.0" and "NaN" under pandas 3."""
    settings = run_choice.differing_settings([Run(root / "tiny-tinyvit"), Run(root / "tiny-cnn")])
    vit, cnn = settings.loc["tiny-tinyvit"], settings.loc["tiny-cnn"]
    embed = json.loads((root / "tiny-tinyvit" / "config.json").read_text())["model_hparams"]["embed_dim"]
    assert vit["embed_dim"] == str(embed)
    assert cnn["embed_dim"] == "–"
    assert not settings.isna().any().any()


def test_compare_lists_disagreements_with_both_maps(root):
    a, b = Run(root / "tiny-tinyvit"), Run(root / "tiny-cnn")
    pa, pb = drilldown.predictions_of(a), drilldown.predictions_of(b)
    n = len(drilldown.disagreements(pa, pb))
    assert n > 0
    at = open_page("pages/compare.py")
    clean(at)
    assert f"**{n} image(s) where A and B predict different classes**" in text(at.markdown)
    counts = drilldown.outcome_counts(pa, pb)
    table = [d for d in at.dataframe if list(d.value.columns) == ["B right", "B wrong"]][0].value
    assert table.loc["A right", "B wrong"] == counts["only A right"]
    assert table.loc["A wrong", "B right"] == counts["only B right"]
    # First page: 6 disagreements, each with the image and both maps.
    captions = _image_captions(at)
    assert sum(c == "A" for c in captions) == min(6, n) and sum(c == "B" for c in captions) == min(6, n)


def test_compare_drilldown_shows_both_models(root):
    a = Run(root / "tiny-tinyvit")
    true, pred, n = busiest_wrong_cell(a)
    at = open_page("pages/compare.py", **{f"cmp_drill_cells_{a.name}": select_cell(true, str(pred))})
    clean(at)
    assert f"true **{true}**, predicted **{pred}**: {n} image(s)." in text(at.markdown)
    captions = _image_captions(at)
    assert sum(c.startswith("A: ") for c in captions) == min(n, 12)  # a page of 12 images
    assert sum(c.startswith("B: ") for c in captions) == min(n, 12)


def test_compare_of_different_datasets_warns_at_the_top(root):
    other = root / "tiny-cnn"
    cfg = json.loads((other / "config.json").read_text())
    cfg.update(dataset="shapes", class_names=["circle", "square"])
    (other / "config.json").write_text(json.dumps(cfg))
    at = open_page("pages/compare.py", cmp_runs=[str(root / "tiny-tinyvit"), str(other)])
    assert not at.exception
    assert "different datasets" in at.warning[0].value
    assert "different datasets" in text(at.info)  # the disagreement explorer explains, no exception


def _with_train_size(run: Path, images: int, accuracy: float) -> None:
    cfg = json.loads((run / "config.json").read_text())
    cfg["sizes"]["train"] = images
    (run / "config.json").write_text(json.dumps(cfg))
    test = json.loads((run / "test_metrics.json").read_text())
    (run / "test_metrics.json").write_text(json.dumps({**test, "accuracy": accuracy}))


def test_compare_draws_accuracy_against_training_set_size_only_when_it_differs(root):
    at = open_page("pages/compare.py")
    clean(at)
    assert "Test accuracy against training-set size" not in text(at.subheader)  # both runs: one size
    for name in ("tiny-tinyvit", "tiny-cnn"):
        shutil.copytree(root / name, root / f"{name}-big")
        _with_train_size(root / f"{name}-big", 5000, 0.9 if "cnn" in name else 0.7)
    chosen = [str(root / n) for n in ("tiny-tinyvit", "tiny-cnn", "tiny-tinyvit-big", "tiny-cnn-big")]
    at = open_page("pages/compare.py", cmp_runs=chosen)
    clean(at)
    assert "Test accuracy against training-set size" in text(at.subheader)
    found = scaling.points([Run(Path(p)) for p in chosen])
    lines = {trace.name: trace for trace in scaling.chart(found).data}
    assert set(lines) == {"TinyViT", "Small CNN"}
    for trace in lines.values():
        assert list(trace.x) == sorted(trace.x) and trace.x[-1] == 5000
    assert lines["Small CNN"].y[-1] == 90.0 and lines["TinyViT"].y[-1] == 70.0
    axis = scaling.chart(found).layout.xaxis
    assert list(axis.tickvals) == sorted({p.train_images for p in found}) and axis.ticktext[-1] == "5,000"


def test_scaling_points_skip_unfinished_runs_and_other_datasets(root):
    a, b = Run(root / "tiny-tinyvit"), Run(root / "tiny-cnn")
    (b.path / "test_metrics.json").unlink()
    assert [p.run for p in scaling.points([a, b])] == ["tiny-tinyvit"]
    one = scaling.Point("a", "TinyViT", "Digits", 100, 0.5)
    assert not scaling.worth_drawing([one, scaling.Point("b", "CNN", "Digits", 100, 0.6)])
    assert not scaling.worth_drawing([one, scaling.Point("b", "CNN", "Shapes", 900, 0.6)])
    assert scaling.worth_drawing([one, scaling.Point("b", "CNN", "Digits", 900, 0.6)])


# -- Anatomy -----------------------------------------------------------------------------------
def test_anatomy_of_a_vit_and_of_a_cnn(root):
    at = open_page("pages/anatomy.py", picker_anatomy=str(root / "tiny-tinyvit"))
    clean(at)
    assert [s.value for s in at.subheader] == ["Position embeddings", "Patch-embedding filters: principal components",
                                                "Mean attention distance"]
    assert len(at.get("plotly_chart")) == 2 and images(at) == 1
    at = open_page("pages/anatomy.py", picker_anatomy=str(root / "tiny-cnn"))
    clean(at)
    assert [s.value for s in at.subheader] == ["First-layer filters", "Receptive field per stage"]
    assert "no position embeddings" in text(at.caption)
    assert at.dataframe[0].value["receptive field (px)"].tolist() == [5, 14]  # widths 16, 32: two stages


def test_anatomy_without_weights(root):
    (root / "tiny-tinyvit" / "model.safetensors").unlink()
    at = open_page("pages/anatomy.py", picker_anatomy=str(root / "tiny-tinyvit"))
    clean(at)
    assert "no trained weights" in text(at.info)


# -- readable confusion matrices ------------------------------------------------------------------
def test_confusion_cells_lose_their_text_when_small():
    from tinyvit.app import charts
    ten = [[1] * 10] * 10
    assert charts.confusion_heatmap(ten, []).data[0].texttemplate == "%{text}"
    assert charts.confusion_heatmap(ten, [], height=380).data[0].texttemplate is None  # Compare's size
    hundred = charts.confusion_heatmap([[1] * 100] * 100, [])
    assert hundred.data[0].texttemplate is None and "predicted" in hundred.data[0].hovertemplate


# -- Predict: a webcam photo -------------------------------------------------------------------
def _jpeg() -> bytes:
    import io
    from PIL import Image
    img = Image.new("RGB", (64, 48), (250, 250, 250))
    img.paste((10, 10, 10), (28, 6, 36, 42))  # a dark '1' on paper
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def test_predict_takes_a_webcam_photo(root):
    at = open_page("pages/predict.py", picker_predict=str(root / "tiny-tinyvit"))
    at.radio(key="pred_source").set_value("Webcam photo").run()
    clean(at)
    assert images(at) == 0
    at.camera_input(key="pred_camera").set_value(("photo.jpg", _jpeg(), "image/jpeg")).run()
    clean(at)
    assert [c for c in _image_captions(at) if c.startswith("webcam photo")]  # the photo, then its maps
    assert len(at.get("plotly_chart")) == 1  # its top-k bar chart
    at.camera_input(key="pred_camera").set_value(("photo.jpg", b"\xff\xd8not a jpeg", "image/jpeg")).run()
    assert not at.exception and "the webcam photo" in text(at.error)


def test_predict_new_colours_redraw_without_recomputing_the_map(root, monkeypatch):
    from tinyvit.app import analysis
    calls = []
    original = analysis.explain_all
    monkeypatch.setattr(analysis, "explain_all", lambda *a, **k: calls.append(1) or original(*a, **k))
    at = open_page("pages/predict.py", picker_predict=str(root / "tiny-cnn"))
    at.radio(key="pred_source").set_value("Webcam photo").run()
    before = len(calls)  # the page opened on one of the run's test images
    at.camera_input(key="pred_camera").set_value(("photo.jpg", _jpeg(), "image/jpeg")).run()
    clean(at)
    assert len(calls) == before + 1
    at.slider(key="pred_opacity").set_value(0.9).run()
    at.selectbox(key="pred_cmap").set_value("Viridis").run()
    clean(at)
    assert len(calls) == before + 1  # the cached map, redrawn
