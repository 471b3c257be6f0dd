"""The explanation parts of the app: Predict's model's-eye view, its caution for uploads unlike
the training data, the target class and ScoreCAM; the faithfulness section of Metrics (shown,
refused when tampered, computed in its own process) and the side-by-side tables on Compare."""
from __future__ import annotations

import io
import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image
from test_app import app_env, assert_clean, page, runs_root, texts  # noqa: F401  (fixtures)

from tinyvit.app import analysis, faithjob
from tinyvit import faithfulness as fa
from tinyvit.explain import uint8_to_pil
from tinyvit.inference import load_run
from tinyvit.runs import DEMO_ROOT, READONLY_MARK, Run, RunError
from tinyvit.samples import load_samples


def china_jpg() -> bytes:
    from sklearn.datasets import load_sample_image
    buf = io.BytesIO()
    Image.fromarray(load_sample_image("china.jpg")).save(buf, "JPEG")
    return buf.getvalue()


def copy_demo(name: str, root) -> Run:
    """A writable copy of a shipped demo run (with its faithfulness report)."""
    shutil.copytree(DEMO_ROOT / name, root / name)
    (root / name / READONLY_MARK).unlink()
    return Run(root / name)


# -- core: what the model saw, and when to doubt it -----------------------------------------------
def test_a_colour_photo_on_the_digits_model_is_described_and_cautioned():
    loaded = load_run(DEMO_ROOT / "demo-digits-tinyvit")
    photo = Image.open(io.BytesIO(china_jpg()))
    x8, x = analysis.prepare(loaded, photo)
    steps = analysis.preprocessing_steps(loaded, photo)
    assert steps[0] == "resized from 640×427 to 16×16 (squashed to a square)"
    assert "converted to grey" in steps and any(s.startswith("inverted") for s in steps)
    reasons = analysis.cautions(loaded, photo, x)
    assert any("colour image" in r for r in reasons) and any("shrunk 40×" in r for r in reasons)


def test_the_runs_own_test_images_get_no_caution():
    for name in ("demo-digits-tinyvit", "demo-shapes-cnn"):
        loaded = load_run(DEMO_ROOT / name)
        samples = load_samples(DEMO_ROOT / name / "samples.safetensors")
        for img in samples["images"]:
            image = uint8_to_pil(img)
            assert analysis.cautions(loaded, image, analysis.prepare(loaded, image)[1]) == [], name


# -- Predict -------------------------------------------------------------------------------------
def test_predict_shows_what_the_model_saw_and_cautions_on_an_unrelated_photo(runs_root):
    at = page("pages/predict.py")
    at.selectbox(key="picker_predict").set_value(str(runs_root / "tiny-tinyvit")).run()
    at.radio(key="pred_source").set_value("Upload images").run()
    at.file_uploader(key="pred_files").set_value([("china.jpg", china_jpg(), "image/jpeg")]).run()
    assert_clean(at)
    captions = [c.caption for img in at.image for c in img.proto.imgs]
    seen = [c for c in captions if c.startswith("What the model saw")]
    assert seen and "16×16 pixels" in seen[0] and "converted to grey" in seen[0] and "inverted" in seen[0]
    assert "china.jpg (640×427)" in captions
    assert "unlike the training data" in texts(at.warning) and "colour image" in texts(at.warning)
    # A colour bar and one sentence under every map.
    maps = [c for c in captions if c in {"Attention rollout", "Grad-CAM", "EigenCAM"}]
    assert len(maps) == 3
    notes = texts(at.caption)
    assert notes.count("least weight ← → most") >= 9 and "4×4 grid" in notes
    # Another class explained, and ScoreCAM on demand.
    at.selectbox(key="pred_target_10").set_value(3).run()
    at.toggle(key="pred_scorecam").set_value(True).run()
    assert_clean(at)
    assert "evidence for *3*" in texts(at.markdown)
    assert "ScoreCAM" in [c.caption for img in at.image for c in img.proto.imgs]


# -- Metrics and Compare --------------------------------------------------------------------------
def test_metrics_shows_the_faithfulness_table_and_refuses_a_tampered_one(app_env):
    run = copy_demo("demo-shapes-cnn", app_env / "runs")
    at = page("pages/metrics.py")
    at.selectbox(key="picker_metrics").set_value(str(run.path)).run()
    assert_clean(at)
    assert "How faithful are the maps" in texts(at.subheader)
    table = next(d.value for d in at.dataframe if "Deletion AUC ↓" in d.value.columns)
    assert {"Grad-CAM", "ScoreCAM", "Random map (baseline)", "Centre-bias map (baseline)"} <= set(table.index)
    assert "Pointing game ↑" in table.columns
    assert any("Deletion: most salient removed first" in c.proto.spec for c in at.get("plotly_chart"))

    doc = json.loads(run.file(fa.REPORT).read_text())
    doc["methods"]["random"]["pointing_game"] = 0.99
    run.file(fa.REPORT).write_text(json.dumps(doc))
    at.run()
    assert_clean(at)
    assert "invalid and is not shown" in texts(at.warning)
    assert not any("Deletion AUC ↓" in d.value.columns for d in at.dataframe)
    assert any(b.label == "Recompute" for b in at.button)


def test_compare_puts_two_runs_faithfulness_tables_side_by_side(app_env):
    root = app_env / "runs"
    for name in ("demo-shapes-cnn", "demo-shapes-tinyvit"):
        copy_demo(name, root)
    at = page("pages/compare.py")
    at.multiselect(key="cmp_runs").set_value([str(root / "demo-shapes-cnn"), str(root / "demo-shapes-tinyvit")]).run()
    assert_clean(at)
    tables = [d.value for d in at.dataframe if "Deletion AUC ↓" in d.value.columns]
    assert len(tables) == 2
    assert "Attention rollout" not in tables[0].index and "Attention rollout" in tables[1].index


def test_the_compute_job_runs_in_its_own_process_and_writes_the_report(app_env):
    run = copy_demo("demo-shapes-cnn", app_env / "runs")
    for name in (fa.REPORT, fa.CURVES):
        run.file(name).unlink()
    faithjob.start(run, images=3)
    job = json.loads(run.file(faithjob.JOB).read_text())
    assert job["pid"] != os.getpid()
    end = time.monotonic() + 300
    while faithjob.status(run)["state"] == "running" and time.monotonic() < end:
        time.sleep(0.5)
    assert faithjob.status(run)["state"] == "finished", faithjob.status(run)
    doc = fa.load_report(run.path)
    assert doc["images"] == 3 and "scorecam" in doc["methods"]
    progress = json.loads(run.file(faithjob.PROGRESS).read_text())
    assert progress["done"] == progress["total"] > 0
    # A read-only run is refused with a message, not a job.
    assert np.isfinite(doc["methods"]["gradcam"]["deletion_auc"])
    run.file(READONLY_MARK).write_text("demo")
    with pytest.raises(RunError, match="read-only"):
        faithjob.start(run)
