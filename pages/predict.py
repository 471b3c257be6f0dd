"""Predict: classify uploaded images (or the run's saved test images) with a trained run,
show the top-k classes and where the model looked (attention or Grad-CAM)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from tinyvit import analysis, appdata, charts, ui
from tinyvit.explain import overlay, uint8_to_pil
from tinyvit.inference import MAX_UPLOAD_BYTES, ImageError, LoadedRun, open_image
from tinyvit.runs import Run

ui.require_router()

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]
MAX_IMAGE_MB = MAX_UPLOAD_BYTES // 2 ** 20
SOURCES = ["Upload images", "The run's test images", "Webcam photo"]
MAX_SHOWN = 8  # images explained per rerun; more would make every slider move slow


def uploaded_images() -> list[tuple[str, object, str | None]]:
    """(title, PIL image, true label) for every readable upload; an error for each bad one."""
    files = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key="pred_files",
                             max_upload_size=MAX_IMAGE_MB,
                             help="PNG, JPEG, WebP, BMP or GIF; any size and colour mode")
    images = []
    for f in files or []:
        try:
            images.append((f.name, open_image(f.getvalue(), f.name), None))
        except ImageError as err:
            st.error(f"Skipped {f.name}: {err}", icon=":material/broken_image:")
    if files and not images:
        st.warning("None of the uploaded files could be used.", icon=":material/warning:")
    return images


def camera_image() -> list[tuple[str, object, str | None]]:
    """A photo from the webcam (the browser asks for permission first)."""
    shot = st.camera_input("Take a photo", key="pred_camera",
                           help="Hold the object (or a digit drawn on paper) in front of the camera.")
    if shot is None:
        return []
    try:
        return [("webcam photo", open_image(shot.getvalue(), "the webcam photo"), None)]
    except ImageError as err:
        st.error(str(err), icon=":material/broken_image:")
        return []


def sample_images(run, loaded: LoadedRun) -> list[tuple[str, object, str | None]]:
    samples = appdata.load_run_samples(run)
    if not samples:
        st.info("This run has no saved test images yet: they are written when training finishes. "
                "Upload an image instead.", icon=":material/info:")
        return []
    names = loaded.class_names

    def describe(i: int) -> str:
        label, pred = int(samples["labels"][i]), int(samples["preds"][i])
        mark = "" if label == pred else f" (predicted {_name(names, pred)})"
        return f"#{int(samples['indices'][i])} · {_name(names, label)}{mark}"

    picked = st.multiselect("Test images", list(range(len(samples["labels"]))), default=[0],
                            format_func=describe, key=f"pred_samples_{run.name}",
                            help="Test images saved with the run: its most confident mistakes first, "
                                 "then a few of each class.")
    return [(describe(i), uint8_to_pil(samples["images"][i]), _name(names, int(samples["labels"][i])))
            for i in picked]


def _name(names: list[str], i: int) -> str:
    return names[i] if i < len(names) else f"class {i}"


@st.cache_data(max_entries=256, show_spinner=False)
def _explained(path: str, weights_mtime: int, pixels: bytes, shape: tuple, method: str, layer: int,
               head: int | None) -> tuple:
    loaded = appdata.load_model(Run(Path(path)))
    x8 = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(shape)
    exp = analysis.explain(loaded, loaded.preprocess.normalize(x8), method, layer, head)
    return exp.probs.numpy(), exp.heat.numpy()


def explained(loaded: LoadedRun, x8: torch.Tensor, ctrl: dict) -> analysis.Explanation:
    """The map of one image, cached per run, image and method: a new colour map or opacity
    only redraws the overlay."""
    mtime = Run(loaded.path).file("model.safetensors").stat().st_mtime_ns
    probs, heat = _explained(str(loaded.path), mtime, x8.numpy().tobytes(), tuple(x8.shape), ctrl["method"],
                             ctrl["layer"], ctrl["head"])
    return analysis.Explanation(torch.from_numpy(probs), torch.from_numpy(heat), ctrl["method"])


def show_prediction(i: int, loaded: LoadedRun, title: str, image, truth: str | None, ctrl: dict, k: int) -> None:
    x8, _ = analysis.prepare(loaded, image)
    exp = explained(loaded, x8, ctrl)
    seen = uint8_to_pil(x8)
    cols = st.columns([1, 1, 2], vertical_alignment="top")
    cols[0].image(ui.enlarge(image), caption=title, width=ui.DISPLAY_PX)
    cols[1].image(overlay(seen, exp.heat, ctrl["colormap"], ctrl["opacity"], size=ui.DISPLAY_PX),
                  caption=f"{analysis.METHODS[exp.method]} on the {seen.width}×{seen.height} input",
                  width=ui.DISPLAY_PX)
    with cols[2]:
        verdict = f"**{_name(loaded.class_names, exp.top)}** · {exp.confidence:.1%}"
        if truth is not None:
            verdict += " ✅" if truth == _name(loaded.class_names, exp.top) else f" ❌ (true: {truth})"
        st.markdown(verdict)
        st.plotly_chart(charts.topk_bar(exp.probs.tolist(), loaded.class_names, k), key=f"topk_{i}")
    st.divider()


def page() -> None:
    st.title("Predict")
    ui.hub_loader("predict")
    run = ui.run_picker("predict", keep=lambda r: r.has_weights(),
                        help="Runs with trained weights (at least one finished epoch).")
    if run is None:
        ui.no_runs_hint("Train a model (one epoch is enough)")
        return
    loaded = appdata.load_model(run)
    st.caption(f"{loaded.config.get('dataset_title', loaded.config.get('dataset'))} · "
               f"{'Vision Transformer' if loaded.kind == 'vit' else 'CNN'} · "
               f"{len(loaded.class_names)} classes: {', '.join(loaded.class_names[:12])}"
               f"{' …' if len(loaded.class_names) > 12 else ''}")
    layers, heads = analysis.attention_shape(loaded) if loaded.kind == "vit" else (0, 0)
    controls, top = st.columns([6, 1])
    with controls:
        ctrl = ui.map_controls("pred", analysis.methods_for(loaded), analysis.METHODS, layers, heads)
    most = max(1, min(10, len(loaded.class_names)))
    k = top.number_input("Top-k", 1, most, min(5, most), key=f"pred_k_{most}", help="classes in the bar chart")
    source = st.radio("Images from", SOURCES, horizontal=True, key="pred_source",
                      index=1 if run.file(appdata.SAMPLES).is_file() else 0)
    images = (uploaded_images() if source == SOURCES[0] else camera_image() if source == SOURCES[2]
              else sample_images(run, loaded))
    if len(images) > MAX_SHOWN:
        st.info(f"Showing the first {MAX_SHOWN} of {len(images)} images.", icon=":material/info:")
    for i, (title, image, truth) in enumerate(images[:MAX_SHOWN]):
        show_prediction(i, loaded, title, image, truth, ctrl, k)


with ui.guard("the Predict page"):
    page()
