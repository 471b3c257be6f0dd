"""Every page of the Streamlit app through streamlit.testing's AppTest: no exception, the
key widgets, a digits job launched from the Train page that finishes and shows up on the
Metrics page, predictions on uploads, and the bad inputs of the issue, each with a message."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tinyvit import hub
from tinyvit.app import jobs
from tinyvit.checkpoint import CHECKPOINT
from tinyvit.training.config import PRESETS, TrainConfig, defaults_for
from tinyvit.runs import READONLY_MARK, Run, RunError, list_runs, pid_alive

REPO = Path(__file__).resolve().parent.parent
PAGES = ["pages/train.py", "pages/predict.py", "pages/metrics.py", "pages/compare.py"]


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def app_env(tmp_path, monkeypatch):
    """Empty runs, demo and Hub folders, no Hub token, no network for the Hub."""
    for name in ("runs", "demo", "hub"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", str(tmp_path / "demo"))
    monkeypatch.setenv("TINYVIT_HUB_RUNS", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TINYVIT_MAX_JOBS", raising=False)
    monkeypatch.setattr(hub, "hub_token", lambda: None)
    return tmp_path


@pytest.fixture
def runs_root(app_env, tiny_runs) -> Path:
    """The runs folder holding a copy of both tiny runs (tests may change or delete them)."""
    root = app_env / "runs"
    for path in tiny_runs.values():
        shutil.copytree(path, root / path.name)
    return root


def page(path: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if path:
        at.switch_page(path)
    return at.run()


def assert_clean(at: AppTest) -> None:
    """No exception reached the page (a traceback would be shown as st.exception)."""
    assert not at.exception, [e.value for e in at.exception]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


def wait_until(condition, at: AppTest | None = None, timeout: float = 180, step: float = 0.5) -> bool:
    """Poll (re-running the page, as its fragment would) until condition() holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if at is not None:
            at.run()
        if condition():
            return True
        time.sleep(step)
    return False


def png(mode: str = "RGB", size=(40, 40), fmt: str = "PNG", **save) -> bytes:
    img = Image.new(mode, size, 0 if mode in ("L", "P", "1") else (0, 0, 0) if mode == "RGB" else (0, 0, 0, 0))
    # A bright bar, so the digit model has a stroke to look at.
    img.paste(255 if mode in ("L", "P", "1") else (255,) * len(mode), (size[0] // 3, 4, size[0] // 2, size[1] - 4))
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def set_tiny_form(at: AppTest, epochs: int = 2) -> None:
    at.number_input(key="tf_epochs").set_value(epochs)
    at.number_input(key="tf_subset").set_value(20)
    at.number_input(key="tf_threads").set_value(1)
    for hp, value in dict(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64).items():
        at.number_input(key=f"hp_tinyvit_{hp}").set_value(value)


def stop_all(root: Path) -> None:
    """Leave no training process behind, whatever the test did."""
    for run in list_runs(root):
        st = run.status()
        if st["state"] in ("queued", "running"):
            try:
                jobs.stop(run, grace=2)
            except Exception:
                pass
    for run in list_runs(root):
        wait_until(lambda: not pid_alive(run.status().get("pid")), timeout=30)


# -- every page --------------------------------------------------------------------------
def test_home_without_runs_says_where_to_start():
    at = page()
    assert_clean(at)
    assert at.title[0].value == "TinyViT Lab"
    assert {m.label for m in at.metric} >= {"Device", "Job slots"}
    assert "No runs yet" in texts(at.info)
    assert "No demo runs" in texts(at.caption)


def test_home_lists_runs_with_state_and_accuracy_and_demo_runs(runs_root, app_env):
    demo = app_env / "demo" / "demo-digits"
    shutil.copytree(runs_root / "tiny-tinyvit", demo)
    (demo / READONLY_MARK).touch()
    at = page()
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["run"]) == {"tiny-tinyvit", "tiny-cnn", "demo-digits"}
    assert set(table["state"]) == {"finished", "finished (demo)"}
    rows = [json.loads(line) for line in (runs_root / "tiny-cnn" / "metrics.jsonl").read_text().splitlines()]
    cnn = table[table["run"] == "tiny-cnn"].iloc[0]
    assert cnn["best val acc %"] == pytest.approx(100 * max(r["val_accuracy"] for r in rows))
    assert cnn["epochs"] == "2 / 2"
    assert "1 demo run(s)" in texts(at.info)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_without_runs(path):
    at = page(path)
    assert_clean(at)
    assert at.title
    # Run through app.py (the router), even as the first page of a fresh server process: its
    # job list is in the sidebar.
    assert "**Jobs**" in texts(at.sidebar.markdown)


@pytest.mark.parametrize("path, widgets", [
    ("pages/train.py", {"selectbox": {"tf_dataset", "tf_model", "tf_preset", "picker_train"},
                        "button": {"launch"}}),
    ("pages/predict.py", {"selectbox": {"picker_predict", "pred_cmap"},
                          "radio": {"pred_source"}, "slider": {"pred_opacity"}}),
    ("pages/metrics.py", {"selectbox": {"picker_metrics"}, "radio": {"cm_mode"}, "slider": {"mistakes_n"}}),
    ("pages/compare.py", {"multiselect": {"cmp_runs"}, "selectbox": {"cmp_metric"}, "toggle": {"cmp_norm"}}),
])
def test_every_page_has_its_widgets(runs_root, path, widgets):
    at = page(path)
    assert_clean(at)
    assert not at.error, texts(at.error)
    for kind, keys in widgets.items():
        present = {w.key for w in getattr(at, kind)}
        assert keys <= present, (kind, keys - present)


# -- Train ---------------------------------------------------------------------------------
FORM = {"tf_epochs": "epochs", "tf_batch": "batch_size", "tf_lr": "lr", "tf_schedule": "schedule",
        "tf_warmup": "warmup_epochs", "tf_wd": "weight_decay", "tf_ls": "label_smoothing",
        "tf_erasing": "random_erasing"}


def form_values(at: AppTest) -> dict:
    return {name: (at.selectbox(key=key) if key == "tf_schedule" else at.number_input(key=key)).value
            for key, name in FORM.items()}


def test_train_form_starts_from_the_dataset_defaults_and_presets():
    at = page("pages/train.py")
    expected = {**TrainConfig().to_dict(), **defaults_for("digits")}
    # Digits: the small-data recipe (batch 32, 1e-3, cosine after a warmup).
    assert form_values(at) == pytest.approx({k: expected[k] for k in FORM.values()})
    assert (expected["batch_size"], expected["schedule"]) == (32, "cosine")
    # CIFAR-10: the slides' setup, as its preset has it.
    at.selectbox(key="tf_dataset").set_value("cifar10").run()
    slides = PRESETS["seed-cifar10-tinyvit"]
    assert form_values(at) == pytest.approx({k: slides.get(k, 0.0) for k in FORM.values()})
    # A preset fills the model too (the slides' post-norm TinyViT, patch 8 on STL-10).
    at.selectbox(key="tf_preset").set_value("seed-stl10-tinyvit").run()
    assert at.selectbox(key="tf_dataset").value == "stl10"
    assert at.selectbox(key="hp_tinyvit_norm").value == "post"
    assert at.number_input(key="hp_tinyvit_patch_size").value == 8
    assert_clean(at)


def test_fashion_mnist_starts_from_the_plus_recipe_of_the_chosen_model():
    at = page("pages/train.py")
    at.selectbox(key="tf_dataset").set_value("fashion-mnist").run()
    # TinyViT: the demo TinyViT's recipe (batch 64, 5e-4, cosine after 1 warmup epoch, no dropout).
    assert form_values(at) == pytest.approx({**{k: 0.0 for k in FORM.values()},
                                             **{k: v for k, v in defaults_for("fashion-mnist", "tinyvit").items()
                                                if k in FORM.values()}})
    assert (form_values(at)["batch_size"], form_values(at)["lr"], form_values(at)["schedule"]) == (64, 5e-4, "cosine")
    assert at.number_input(key="hp_tinyvit_dropout").value == 0.0
    # The CNN's own: batch 128, 1e-3, random erasing 0.25; the note says what changed.
    at.selectbox(key="tf_model").set_value("cnn").run()
    assert_clean(at)
    values = form_values(at)
    assert (values["batch_size"], values["lr"], values["random_erasing"]) == (128, 1e-3, 0.25)
    assert "Set to Small CNN on Fashion-MNIST's defaults" in texts(at.info) and "batch size 64 → 128" in texts(at.info)
    # Back on digits: its small-data recipe, no random erasing, TinyViT's dropout the registry's.
    at.selectbox(key="tf_model").set_value("tinyvit").run()
    at.selectbox(key="tf_dataset").set_value("digits").run()
    assert form_values(at)["random_erasing"] == 0.0 and form_values(at)["batch_size"] == 32
    assert at.number_input(key="hp_tinyvit_dropout").value == 0.1
    # A plus-* preset fills the form with the recipe and the slides' model shape.
    at.selectbox(key="tf_preset").set_value("plus-fashion-mnist-cnn").run()
    assert (at.selectbox(key="tf_model").value, form_values(at)["epochs"], form_values(at)["random_erasing"]) == \
        ("cnn", 15, 0.25)
    assert_clean(at)


def test_launched_digits_job_finishes_and_its_metrics_appear(app_env):
    root = app_env / "runs"
    at = page("pages/train.py")
    set_tiny_form(at)
    started = time.monotonic()
    button(at, "Launch training").click().run()
    launch_seconds = time.monotonic() - started
    assert_clean(at)
    assert "Launched" in texts(at.success)
    runs = list_runs(root)
    assert len(runs) == 1
    run = runs[0]
    try:
        # Launch returned while the job was still starting: it runs in its own process.
        assert run.status()["state"] in ("queued", "running"), launch_seconds
        assert wait_until(lambda: run.status()["state"] not in ("queued", "running"), at)
        assert run.status()["state"] == "finished", jobs.log_tail(run)
        at.run()
        assert "Finished after 2 epochs" in texts(at.success)
        assert at.get("plotly_chart")  # the curves
        metrics = page("pages/metrics.py")
        assert_clean(metrics)
        assert metrics.selectbox(key="picker_metrics").value == str(run.path)
        table = metrics.dataframe[0].value
        assert "test" in table.index
        assert table.loc["test", "Accuracy"] == pytest.approx(100 * run.test_metrics()["accuracy"])
        assert "Confusion matrix (test)" in texts(metrics.subheader)
    finally:
        stop_all(root)


def test_stop_resume_and_delete_from_the_train_page(app_env):
    root = app_env / "runs"
    at = page("pages/train.py")
    set_tiny_form(at, epochs=100)
    button(at, "Launch training").click().run()
    run = list_runs(root)[0]
    try:
        # While it trains: epoch and batch progress and the time left, from the run folder.
        assert wait_until(lambda: len(run.metrics()) >= 1 and run.status()["state"] == "running", at)
        at.run()
        assert "Time left" in {m.label for m in at.metric}
        assert any("Epoch" in str(p.proto.text) for p in at.get("progress"))
        button(at, "Stop").click().run()
        assert wait_until(lambda: run.status()["state"] == "stopped", at, timeout=60)
        assert run.file(CHECKPOINT).is_file()  # usable: the last complete epoch
        stopped_at = len(run.metrics())
        assert "Stopped" in texts(at.warning)
        button(at, "Resume").click().run()
        assert wait_until(lambda: run.status()["state"] == "running" and len(run.metrics()) > stopped_at, at)
        button(at, "Stop").click().run()
        assert wait_until(lambda: run.status()["state"] == "stopped", at, timeout=60)
        button(at, "Yes, delete").click().run()
        assert_clean(at)
        assert not run.path.exists()
        assert not at.warning or "no longer exists" not in texts(at.warning)
    finally:
        stop_all(root)


def test_the_bf16_toggle_is_offered_where_the_cpu_has_bf16_and_reaches_the_run(app_env):
    from tinyvit.training.step import cpu_bf16_supported
    root = app_env / "runs"
    at = page("pages/train.py")
    toggle = at.toggle(key="tf_bf16")
    assert toggle.value is False and toggle.disabled == (not cpu_bf16_supported())
    if not cpu_bf16_supported():
        assert "no native bf16" in toggle.help
        return
    set_tiny_form(at, epochs=1)
    toggle.set_value(True).run()
    button(at, "Launch training").click().run()
    try:
        run = list_runs(root)[0]
        assert run.config()["cpu_bf16"] is True
        assert wait_until(lambda: run.status()["state"] in ("finished", "failed"), at, timeout=120)
        assert run.status()["state"] == "finished", run.status()
    finally:
        stop_all(root)


def test_two_tabs_launching_at_once_queue_the_second_job(app_env):
    root = app_env / "runs"
    tabs = [page("pages/train.py"), page("pages/train.py")]
    for at in tabs:
        set_tiny_form(at, epochs=100)
    for at in tabs:
        button(at, "Launch training").click()
    for at in tabs:
        at.run()
        assert_clean(at)
        assert "Launched" in texts(at.success)
    runs = list_runs(root)
    try:
        assert len({r.name for r in runs}) == 2
        # One slot (the CPU default): one trains, the other waits in the queue.
        assert wait_until(lambda: sorted(r.status()["state"] for r in runs) == ["queued", "running"]
                          and any("waiting" in (r.status().get("message") or "") for r in runs), timeout=120)
        queued = next(r for r in runs if r.status()["state"] == "queued")
        tabs[0].run()  # the other tab's job appears here too: state comes from disk
        tabs[0].selectbox(key="picker_train").set_value(str(queued.path)).run()
        assert "waiting" in texts(tabs[0].info)
    finally:
        # The queued job first: cancelled before it can take the slot of the stopping one.
        for r in sorted(runs, key=lambda r: r.status()["state"] != "queued"):
            if r.status()["state"] in ("queued", "running"):
                jobs.stop(r, grace=2)
        stop_all(root)


def test_impossible_model_settings_are_refused_before_any_run_exists(app_env):
    at = page("pages/train.py")
    at.number_input(key="hp_tinyvit_num_heads").set_value(3)  # 128 is not divisible by 3
    button(at, "Launch training").click().run()
    assert_clean(at)
    assert "head" in texts(at.error)
    assert list((app_env / "runs").iterdir()) == []


def test_failed_and_diverged_runs_show_their_error(runs_root):
    for name, state, error in (("tiny-cnn", "failed", "CUDA out of memory (simulated)"),
                               ("tiny-tinyvit", "diverged", "the loss became nan at epoch 2: lower --lr")):
        Run(runs_root / name).write_status(state=state, error=error, pid=None)
    at = page("pages/train.py")
    for name, error in (("tiny-cnn", "CUDA out of memory"), ("tiny-tinyvit", "lower learning rate")):
        at.selectbox(key="picker_train").set_value(str(runs_root / name)).run()
        assert_clean(at)
        assert error in texts(at.error)


@pytest.mark.parametrize("members, problem", [
    (None, "not a readable zip"),
    ({"cats/1.png": png(), "cats/2.png": png(), "cats/3.png": png()}, "at least 2 class folders"),
    ({"cats/1.png": png(), "../dogs/1.png": png()}, "outside its folder"),
])
def test_bad_dataset_zips_are_named_and_nothing_is_written(app_env, members, problem):
    data = b"PK\x03\x04 this is not really a zip" if members is None else zip_bytes(members)
    at = page("pages/train.py")
    at.selectbox(key="tf_dataset").set_value("imagefolder").run()
    at.file_uploader(key="zip_upload").set_value(("pets.zip", data, "application/zip")).run()
    assert_clean(at)
    assert problem in texts(at.error)
    # The user's own file name, not the stored copy's (stem plus a content hash).
    assert "pets.zip" in texts(at.error) and not re.search(r"-[0-9a-f]{10}\.zip", texts(at.error))
    button(at, "Launch training").click().run()
    assert_clean(at)
    assert problem in texts(at.error)
    assert list((app_env / "runs").iterdir()) == []  # no run, no stored upload


def test_a_good_dataset_zip_is_summarised(app_env):
    members = {f"{cls}/{i}.png": png() for cls in ("cats", "dogs") for i in range(6)}
    at = page("pages/train.py")
    at.selectbox(key="tf_dataset").set_value("imagefolder").run()
    at.file_uploader(key="zip_upload").set_value(("pets.zip", zip_bytes(members), "application/zip")).run()
    assert_clean(at)
    assert not at.error, texts(at.error)
    assert "2 classes (cats, dogs)" in texts(at.success)


# -- Predict -------------------------------------------------------------------------------
def test_uploaded_images_get_a_prediction_and_a_map(runs_root):
    at = page("pages/predict.py")
    at.selectbox(key="picker_predict").set_value(str(runs_root / "tiny-tinyvit")).run()
    at.radio(key="pred_source").set_value("Upload images").run()
    uploads = [("digit.png", png("RGBA"), "image/png"), ("digit.gif", png("P", fmt="GIF"), "image/gif"),
               ("digit.jpg", png("L", fmt="JPEG"), "image/jpeg"), ("digit.webp", png(fmt="WEBP"), "image/webp")]
    at.file_uploader(key="pred_files").set_value(uploads).run()
    assert_clean(at)
    assert not at.error, texts(at.error)
    topk = [c for c in at.get("plotly_chart")]
    assert len(topk) == len(uploads)
    captions = [c.caption for img in at.image for c in img.proto.imgs]
    # Every method's map for every upload, in one grid per image.
    for title in ("Attention rollout", "Gradient-weighted attention", "Grad-CAM", "EigenCAM"):
        assert sum(c == title for c in captions) == len(uploads), title
    # Raw CLS attention of one layer and head, for the same TinyViT.
    at.selectbox(key="pred_layer_2").set_value(0).run()
    at.selectbox(key="pred_head_4").set_value(1).run()
    assert_clean(at)
    assert sum("CLS attention (layer 1, head 2)" in c.caption
               for img in at.image for c in img.proto.imgs) == len(uploads)


def test_cnn_predicts_on_saved_test_images_with_the_cam_family(runs_root):
    at = page("pages/predict.py")
    at.selectbox(key="picker_predict").set_value(str(runs_root / "tiny-cnn")).run()
    at.radio(key="pred_source").set_value("The run's test images").run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1
    captions = [c.caption for img in at.image for c in img.proto.imgs]
    assert {"Grad-CAM", "Grad-CAM++", "HiResCAM", "XGrad-CAM", "LayerCAM", "EigenCAM"} <= set(captions)
    assert not any("attention" in c.lower() for c in captions)


def test_predict_and_compare_open_on_a_test_image_the_model_got_right(runs_root):
    from tinyvit.samples import first_right, load_samples
    run = runs_root / "tiny-cnn"
    samples = load_samples(run / "samples.safetensors")
    right = first_right(samples)
    assert int(samples["labels"][right]) == int(samples["preds"][right])
    # The saved images start with the most confident mistakes, so the first one is wrong.
    assert int(samples["labels"][0]) != int(samples["preds"][0]) and right > 0
    at = page("pages/predict.py")
    at.selectbox(key="picker_predict").set_value(str(run)).run()
    at.radio(key="pred_source").set_value("The run's test images").run()
    assert_clean(at)
    assert at.multiselect(key="pred_samples_tiny-cnn").value == [right]
    verdict = [m.value for m in at.markdown if "material/check_circle" in m.value or "material/cancel" in m.value]
    assert verdict and "check_circle" in verdict[0]
    at = page("pages/compare.py")
    at.radio(key="cmp_source").set_value("A test image from a run").run()
    at.selectbox(key="cmp_sample_run").set_value(str(run)).run()
    assert_clean(at)
    assert at.selectbox(key="cmp_sample_tiny-cnn").value == right


def bomb() -> bytes:
    """A PNG of 1-bit pixels over PIL's pixel limit: tiny on disk, huge decoded."""
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG")
    return buf.getvalue()


def test_bad_images_are_named_and_the_rest_still_predicts(runs_root):
    good = png()
    bad = [("notes.png", b"these are words, not pixels", "too"), ("half.png", good[: len(good) // 2], "truncated"),
           ("empty.png", b"", "empty"), ("bomb.png", bomb(), "decompression bomb")]
    at = page("pages/predict.py")
    at.radio(key="pred_source").set_value("Upload images").run()
    at.file_uploader(key="pred_files").set_value(
        [(name, data, "image/png") for name, data, _ in bad] + [("good.png", good, "image/png")]).run()
    assert_clean(at)
    errors = texts(at.error)
    for name, _, _ in bad:
        assert name in errors
    assert "decompression bomb" in errors and "empty" in errors and "truncated" in errors
    assert len(at.get("plotly_chart")) == 1  # the good image still gets its prediction


# -- Metrics -------------------------------------------------------------------------------
def test_metrics_page_shows_the_slides_table_and_downloads(runs_root):
    at = page("pages/metrics.py")
    at.selectbox(key="picker_metrics").set_value(str(runs_root / "tiny-tinyvit")).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["Accuracy", "F1", "Recall", "MCC", "Precision"]
    assert {"test"} <= set(table.index) and any(i.startswith("validation") for i in table.index)
    per_class = at.dataframe[1].value
    assert len(per_class) == 10 and "F1 %" in per_class.columns
    at.radio(key="cm_mode").set_value("normalised per true class").run()
    assert_clean(at)
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {"Metrics table (CSV)", "Per-epoch metrics (CSV)", "Per-class table (CSV)"}


def test_metrics_of_a_run_still_training(app_env):
    run = Run(app_env / "runs" / "live")
    run.path.mkdir()
    run.write_config({"dataset": "digits", "model": "tinyvit", "epochs": 10})
    run.claim()  # held while it trains, as train.py does
    run.write_status(state="running", pid=os.getpid(), epoch=1, epochs=10, created_at=time.time())
    run.append_metrics({"epoch": 1, "train_loss": 2.0, "val_loss": 2.1, "train_accuracy": 0.3,
                        "val_accuracy": 0.25, "val_f1": 0.2, "val_recall": 0.25, "val_precision": 0.2,
                        "val_mcc": 0.1, "lr": 1e-3})
    at = page("pages/metrics.py")
    assert_clean(at)
    assert "still running" in texts(at.info)
    assert "validation, best (epoch 1)" in at.dataframe[0].value.index


def test_a_run_deleted_while_viewed_is_reported(runs_root):
    for path, key in (("pages/metrics.py", "picker_metrics"), ("pages/predict.py", "picker_predict"),
                      ("pages/train.py", "picker_train")):
        victim = runs_root / "tiny-cnn"
        if not victim.exists():
            shutil.copytree(runs_root / "tiny-tinyvit", victim)
        at = page(path)
        at.selectbox(key=key).set_value(str(victim)).run()
        shutil.rmtree(victim)  # another tab deletes it
        at.run()
        assert_clean(at)
        assert "no longer exists" in texts(at.warning), path
    shutil.copytree(runs_root / "tiny-tinyvit", victim)
    at = page("pages/compare.py")
    assert len(at.multiselect(key="cmp_runs").value) == 2
    shutil.rmtree(victim)
    at.run()
    assert_clean(at)
    assert "No longer on disk" in texts(at.warning) and victim.name in texts(at.warning)
    assert at.multiselect(key="cmp_runs").value == [str(runs_root / "tiny-tinyvit")]


# -- Compare -------------------------------------------------------------------------------
def test_compare_two_runs_side_by_side(runs_root):
    at = page("pages/compare.py")
    assert_clean(at)
    assert set(at.multiselect(key="cmp_runs").value) == {str(runs_root / "tiny-tinyvit"),
                                                          str(runs_root / "tiny-cnn")}
    table = at.dataframe[0].value
    assert set(table.index) == {"tiny-tinyvit", "tiny-cnn"}
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # the overlaid curves, two confusion matrices, who wins per class
    images = [c.caption for img in at.image for c in img.proto.imgs]
    assert images.count("Attention rollout") == 1 and images.count("Grad-CAM") == 1
    at.radio(key="cmp_method").set_value("Grad-CAM for all").run()
    assert [c.caption for img in at.image for c in img.proto.imgs].count("Grad-CAM") == 2
    at.radio(key="cmp_source").set_value("Upload").run()
    at.file_uploader(key="cmp_upload").set_value(("x.png", png(), "image/png")).run()
    assert_clean(at)
    maps = ("Attention rollout", "Grad-CAM")  # one image through every model (not the galleries)
    assert len([c for img in at.image for c in img.proto.imgs if c.caption in maps]) == 2


# -- the Hugging Face Hub ----------------------------------------------------------------
def test_hub_load_with_a_bad_repo_id_or_offline_is_an_error(runs_root):
    at = page("pages/predict.py")
    at.text_input(key="hub_repo_predict").input("not a repo id")
    button(at, "Load").click().run()
    assert_clean(at)
    assert "not a Hub repository id" in texts(at.error)
    at.text_input(key="hub_repo_predict").input("alice/tinyvit-digits")
    button(at, "Load").click().run()
    assert_clean(at)
    assert "HF_HUB_OFFLINE" in texts(at.error)


def test_a_run_loaded_from_the_hub_is_picked_on_every_page(runs_root, app_env, monkeypatch):
    """The download itself is tinyvit.hub's (tested there); here: what the pages do with it."""
    local = app_env / "hub" / "alice--tinyvit-digits"
    shutil.copytree(runs_root / "tiny-tinyvit", local)
    (local / READONLY_MARK).touch()
    Run(local).write_status(source="hub", hub_repo="alice/tinyvit-digits")
    asked = []
    monkeypatch.setattr(hub, "load_run_from_hub", lambda repo: asked.append(repo) or local)
    at = page("pages/predict.py")
    at.text_input(key="hub_repo_predict").input("alice/tinyvit-digits")
    button(at, "Load").click().run()
    assert_clean(at)
    assert asked == ["alice/tinyvit-digits"]
    assert at.selectbox(key="picker_predict").value == str(local)
    assert "alice--tinyvit-digits · TinyViT on Digits (scikit-learn) · hub" in at.selectbox(key="picker_predict").options
    compare = page("pages/compare.py")
    compare.text_input(key="hub_repo_compare").input("alice/tinyvit-digits")
    button(compare, "Load").click().run()
    assert str(local) in compare.multiselect(key="cmp_runs").value
    home = page()
    assert "finished (hub)" in set(home.dataframe[0].value["state"])


def test_push_to_hub_is_offered_only_with_a_token(runs_root, monkeypatch):
    at = page("pages/metrics.py")
    assert "hub_push_repo_metrics" not in {w.key for w in at.text_input}
    monkeypatch.setattr(hub, "hub_token", lambda: "hf_test_token")
    at = page("pages/metrics.py")
    at.text_input(key="hub_push_repo_metrics").input("alice/tinyvit-digits")
    button(at, "Push").click().run()
    assert_clean(at)
    assert "HF_HUB_OFFLINE=1 is set" in texts(at.error)


def test_delete_deletes_only_the_run_its_confirmation_names(runs_root):
    """Issue 8.1: after a delete the page shows the next run; a second click on the
    confirmation the browser still shows must not delete that run too."""
    cnn, vit = runs_root / "tiny-cnn", runs_root / "tiny-tinyvit"
    at = page("pages/train.py")
    at.selectbox(key="picker_train").set_value(str(cnn)).run()
    assert "Delete **tiny-cnn** and all its files?" in texts(at.markdown)
    confirm = button(at, "Yes, delete")
    opened_for = confirm.id
    confirm.click().run()
    assert_clean(at)
    assert not cnn.exists() and vit.is_dir()
    assert "Deleted tiny-cnn." in texts(at.toast)
    assert at.selectbox(key="picker_train").value == str(vit)
    for stale in [b for b in at.button if b.id == opened_for]:
        stale.click().run()
    assert vit.is_dir(), "the confirmation opened for tiny-cnn deleted tiny-tinyvit"
    # The popover now offered is tiny-tinyvit's own, and it is closed.
    assert "Delete **tiny-tinyvit** and all its files?" in texts(at.markdown)
    assert [p.open for p in popovers(at, "Delete")] == [False]


def popovers(at: AppTest, label: str) -> list:
    """The popover blocks labelled `label` (their protos: .open, .id)."""
    found, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None and type(proto).__name__ == "Block" and proto.WhichOneof("type") == "popover" \
                and proto.popover.label == label:
            found.append(proto.popover)
        stack.extend(getattr(node, "children", {}).values())
    return found


def all_text(at: AppTest) -> str:
    """Every message, caption and markdown the page shows."""
    return "\n".join(texts(getattr(at, kind)) for kind in ("error", "warning", "info", "success", "caption",
                                                           "markdown", "toast"))


def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # in the last tensor's bytes: the file still parses, the checksum fails
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_is_named_and_resume_is_not_offered(runs_root):
    """Issue 8.14 (the page): the reason shows on the page, and no Resume that would fail."""
    run = Run(runs_root / "tiny-cnn")
    run.write_status(state="stopped", pid=None, message="stopped after epoch 2; --resume continues from there")
    damage(run.file(CHECKPOINT))
    at = page("pages/train.py")
    at.selectbox(key="picker_train").set_value(str(run.path)).run()
    assert_clean(at)
    assert "Resume" not in [b.label for b in at.button]
    assert "Resume is not offered: the checkpoint failed its checksum" in texts(at.caption)
    with pytest.raises(RunError, match="failed its checksum"):
        jobs.resume(run)
    assert run.status()["state"] == "stopped"  # refused before anything started


def test_a_resume_that_died_shows_the_trainers_reason(runs_root):
    run = Run(runs_root / "tiny-cnn")
    proc = subprocess.Popen(["true"])
    proc.wait()
    run.write_status(state="running", pid=proc.pid, error=None)  # a dead pid: Run.status() says failed
    run.file(jobs.LOG_NAME).write_text(f"error: checkpoint {run.path}/checkpoint.safetensors failed its "
                                       "checksum: it was modified or damaged\n")
    at = page("pages/train.py")
    at.selectbox(key="picker_train").set_value(str(run.path)).run()
    assert_clean(at)
    assert "Training failed: checkpoint" in texts(at.error) and "failed its checksum" in texts(at.error)


def test_one_epoch_is_singular_and_no_command_line_flags_show(runs_root):
    run = Run(runs_root / "tiny-cnn")
    run.write_metrics(run.metrics()[:1])
    at = page("pages/train.py")
    at.selectbox(key="picker_train").set_value(str(run.path)).run()
    assert "Finished after 1 epoch." in texts(at.success)
    run.write_status(state="stopped", message="stopped after epoch 1; --resume continues from there")
    at.run()
    assert "Stopped after 1 epoch." in texts(at.warning)
    assert "Resume continues from epoch 2." in texts(at.caption)
    assert "--" not in all_text(at)


def page_text(at: AppTest) -> str:
    """Everything the page sends to the browser: texts, labels, help texts, options."""
    out, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        if getattr(node, "proto", None) is not None:
            out.append(str(node.proto))
        stack.extend(getattr(node, "children", {}).values())
    return "\n".join(out)


def test_changing_the_dataset_keeps_what_the_user_typed_and_says_what_was_reset():
    at = page("pages/train.py")
    at.number_input(key="tf_epochs").set_value(4).run()
    at.selectbox(key="tf_dataset").set_value("cifar10").run()
    assert_clean(at)
    values = form_values(at)
    assert values["epochs"] == 4  # typed by the user: kept
    assert values["batch_size"] == PRESETS["seed-cifar10-tinyvit"]["batch_size"]  # a default: CIFAR-10's
    note = texts(at.info)
    assert "Kept your epochs (4)" in note
    assert "Set to CIFAR-10's defaults" in note and "batch size 32 → 64" in note and "epochs 40" not in note
    # Untouched settings follow the dataset back, too.
    at.selectbox(key="tf_dataset").set_value("digits").run()
    assert form_values(at)["batch_size"] == defaults_for("digits")["batch_size"]
    assert form_values(at)["epochs"] == 4


@pytest.mark.parametrize("path", [None, *PAGES])
def test_the_study_is_named_once_on_home_and_no_flags_show(runs_root, path):
    at = page(path)
    assert_clean(at)
    text = page_text(at)
    assert "slides" not in text.lower()
    assert not re.search(r"(?<![\w-])--[a-z]", text), re.findall(r".{40}--[a-z].{20}", text)
    if path is None:
        intro = texts(at.markdown)
        assert "TinyViT: A Small Vision Transformer" in intro and "Lucian Dorin Crainic" in intro
        assert "Sapienza" in intro and "2024/2025" in intro


def test_moving_the_opacity_redraws_the_overlay_without_recomputing_maps(runs_root, monkeypatch):
    from tinyvit.app import analysis
    calls = []
    real = analysis.explain_all
    monkeypatch.setattr(analysis, "explain_all", lambda *a, **k: calls.append(a[2:]) or real(*a, **k))
    at = page("pages/predict.py")
    at.selectbox(key="picker_predict").set_value(str(runs_root / "tiny-tinyvit")).run()
    at.radio(key="pred_source").set_value("Upload images").run()
    shown = len(calls)  # the saved test image shown first
    at.file_uploader(key="pred_files").set_value(
        [(f"d{i}.png", png(size=(40 + i, 40)), "image/png") for i in range(3)]).run()
    assert_clean(at)
    computed = len(calls)
    assert computed == shown + 3
    before = [c.url for img in at.image for c in img.proto.imgs]
    at.slider(key="pred_opacity").set_value(0.9).run()
    at.selectbox(key="pred_cmap").set_value(at.selectbox(key="pred_cmap").options[1]).run()
    assert_clean(at)
    assert len(calls) == computed  # the same maps, drawn again
    assert [c.url for img in at.image for c in img.proto.imgs] != before  # the overlays did change
    at.selectbox(key="pred_target_10").set_value(3).run()
    assert len(calls) == computed + 3  # another class to explain: computed once per image


def test_the_per_epoch_csv_is_in_percent(runs_root):
    from tinyvit.app import tables
    rows = Run(runs_root / "tiny-cnn").metrics()
    frame = tables.epochs_frame(rows)
    assert list(frame["val_accuracy %"]) == pytest.approx([100 * r["val_accuracy"] for r in rows])
    assert list(frame["val_mcc %"]) == pytest.approx([100 * r["val_mcc"] for r in rows])
    assert list(frame["train_loss"]) == pytest.approx([r["train_loss"] for r in rows])  # not a score


def test_the_train_page_says_which_datasets_are_here_and_how_to_get_the_others():
    at = page("pages/train.py")
    options = at.selectbox(key="tf_dataset").options
    assert "Fashion-MNIST" in options and "CIFAR-10 (download)" in options   # Debian's package is installed
    at.selectbox(key="tf_dataset").set_value("fashion-mnist").run()
    assert_clean(at)
    assert any("Available offline: /usr/share/datasets/fashion-mnist" in c.value for c in at.caption)
    at.selectbox(key="tf_dataset").set_value("cifar10").run()
    info = texts(at.info)
    assert "CIFAR-10 not found" in info and "cifar-10-python.tar.gz" in info
