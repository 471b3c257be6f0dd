"""Predict: classify uploaded images (or the run's saved test images) with a trained run,
show the top-k classes, what the model saw, and where it looked by every saliency method."""
from __future__ import annotations


import streamlit as st

from tinyvit.app import analysis, cache, charts, navigation, tables, ui
from tinyvit.explain import METHODS, uint8_to_pil
from tinyvit.app.heatmap import COLORMAPS, colour_bar, overlay
from tinyvit.inference import MAX_UPLOAD_BYTES, ImageError, LoadedRun, open_image
from tinyvit.samples import first_right

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
    samples = cache.load_run_samples(run)
    if not samples:
        st.info("This run has no saved test images yet: they are written when training finishes. "
                "Upload an image instead.", icon=":material/info:")
        return []
    names = loaded.class_names

    def describe(i: int) -> str:
        label, pred = int(samples["labels"][i]), int(samples["preds"][i])
        mark = "" if label == pred else f" (predicted {tables.class_name(names, pred)})"
        return f"#{int(samples['indices'][i])} · {tables.class_name(names, label)}{mark}"

    picked = st.multiselect("Test images", list(range(len(samples["labels"]))), default=[first_right(samples)],
                            format_func=describe, key=f"pred_samples_{run.name}",
                            help="Test images saved with the run: its most confident mistakes first, "
                                 "then a few of each class.")
    return [(describe(i), uint8_to_pil(samples["images"][i]), tables.class_name(names, int(samples["labels"][i])))
            for i in picked]


MAP_PX = 150
MAP_COLUMNS = 4


def map_controls(loaded: LoadedRun) -> dict:
    """Target class, colour map, opacity; for a ViT the CLS map's layer and head; ScoreCAM on demand."""
    layers, heads = analysis.attention_shape(loaded) if loaded.kind == "vit" else (0, 0)
    cols = st.columns([3, 2, 2, 2, 2] if layers else [3, 2, 2, 2])
    names = loaded.class_names
    target = cols[0].selectbox("Explain the class", [None, *range(len(names))], key=f"pred_target_{len(names)}",
                               format_func=lambda c: "the predicted one" if c is None else names[c],
                               help="Every map shows where the model found evidence for this class.")
    colormap = cols[1].selectbox("Colour map", COLORMAPS, key="pred_cmap")
    opacity = cols[2].slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="pred_opacity")
    layer, head = -1, None
    if layers:
        layer = cols[3].selectbox("CLS attention layer", list(range(layers)), index=layers - 1,
                                  key=f"pred_layer_{layers}", format_func=lambda i: f"layer {i + 1}")
        head = cols[4].selectbox("Head", [None, *range(heads)], key=f"pred_head_{heads}",
                                 format_func=lambda h: "mean of heads" if h is None else f"head {h + 1}")
    slow = st.toggle("Include ScoreCAM (about a second per image: one forward pass per feature channel)",
                     key="pred_scorecam")
    return dict(target=target, colormap=colormap, opacity=opacity, layer=layer, head=head,
                methods=analysis.methods_for(loaded, cheap_only=not slow))


def _cls_where(ctrl: dict) -> str:
    layer = "last layer" if ctrl["layer"] < 0 else f"layer {ctrl['layer'] + 1}"
    return f" ({layer}, {'mean of heads' if ctrl['head'] is None else 'head ' + str(ctrl['head'] + 1)})"


def show_prediction(i: int, loaded: LoadedRun, title: str, image, truth: str | None, ctrl: dict, k: int) -> None:
    x8, x = analysis.prepare(loaded, image)
    maps = cache.explain_all(loaded, x, ctrl["methods"], ctrl["target"], ctrl["layer"], ctrl["head"])
    probs, top = maps.probs[0], int(maps.probs[0].argmax())
    seen = uint8_to_pil(x8)
    cols = st.columns([1, 1, 2], vertical_alignment="top")
    cols[0].image(ui.enlarge(image), caption=f"{title} ({image.width}×{image.height})", width=ui.DISPLAY_PX)
    steps = analysis.preprocessing_steps(loaded, image)
    cols[1].image(ui.enlarge(seen), width=ui.DISPLAY_PX,
                  caption=f"What the model saw: {seen.width}×{seen.height} pixels"
                          f"{' (' + ', '.join(steps) + ')' if steps else ''}")
    with cols[2]:
        verdict = f"**{tables.class_name(loaded.class_names, top)}** · {float(probs.max()):.1%}"
        if truth is not None:
            right = truth == tables.class_name(loaded.class_names, top)
            verdict += " :green[:material/check_circle:]" if right else f" :red[:material/cancel:] (true: {truth})"
        st.markdown(verdict)
        st.plotly_chart(charts.topk_bar(probs.tolist(), loaded.class_names, k), key=f"topk_{i}")
    reasons = analysis.cautions(loaded, image, x)
    if reasons:
        st.warning("**Caution: this image is unlike the training data**, so the prediction and the maps "
                   "may mean little: " + "; ".join(reasons) + ".", icon=":material/warning:")
    target = int(maps.target[0])
    st.markdown(f"**Where the model found evidence for *{tables.class_name(loaded.class_names, target)}***, "
                f"by {len(maps.heat)} methods. Colour: how much weight a method gives each spot, "
                f"relative to that map's own maximum.")
    grid = st.columns(MAP_COLUMNS)
    for j, (method, heat) in enumerate(maps.heat.items()):
        info = METHODS[method]
        with grid[j % MAP_COLUMNS]:
            st.image(overlay(seen, heat[0], ctrl["colormap"], ctrl["opacity"], size=MAP_PX), width=MAP_PX,
                     caption=info.title + (_cls_where(ctrl) if method == "cls" else ""))
            st.image(colour_bar(ctrl["colormap"], MAP_PX, 10), width=MAP_PX)
            empty = " **Empty here: nothing this method reads raises the class.**" if float(heat.max()) == 0 else ""
            st.caption(f"least weight ← → most · {info.sentence} "
                       f"{analysis.grid_note(loaded, method).capitalize()}.{empty}")
    for method, why in maps.errors.items():
        st.caption(f"{METHODS[method].title} not shown: {why}")
    st.divider()


def page() -> None:
    st.title("Predict")
    ui.hub_loader("predict")
    run = ui.run_picker("predict", keep=lambda r: r.has_weights(),
                        help="Runs with trained weights (at least one finished epoch).")
    if run is None:
        navigation.no_runs_hint("Train a model (one epoch is enough)")
        return
    loaded = cache.load_model(run)
    st.caption(f"{loaded.config.get('dataset_title', loaded.config.get('dataset'))} · "
               f"{'Vision Transformer' if loaded.kind == 'vit' else 'CNN'} · "
               f"{len(loaded.class_names)} classes: {', '.join(loaded.class_names[:12])}"
               f"{' …' if len(loaded.class_names) > 12 else ''}")
    controls, top = st.columns([6, 1])
    with controls:
        ctrl = map_controls(loaded)
    most = max(1, min(10, len(loaded.class_names)))
    k = top.number_input("Top-k", 1, most, min(5, most), key=f"pred_k_{most}", help="classes in the bar chart")
    source = st.radio("Images from", SOURCES, horizontal=True, key="pred_source",
                      index=1 if run.file(cache.SAMPLES).is_file() else 0)
    images = (uploaded_images() if source == SOURCES[0] else camera_image() if source == SOURCES[2]
              else sample_images(run, loaded))
    if len(images) > MAX_SHOWN:
        st.info(f"Showing the first {MAX_SHOWN} of {len(images)} images.", icon=":material/info:")
    for i, (title, image, truth) in enumerate(images[:MAX_SHOWN]):
        show_prediction(i, loaded, title, image, truth, ctrl, k)


if __name__ == "__main__":
    navigation.run_app()
