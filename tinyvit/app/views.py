"""The comparison views of the Metrics and Compare pages, in Streamlit: a confusion cell's
images, the disagreements of two runs, and the learning timeline. The logic lives in
tinyvit.app.drilldown and tinyvit.timeline; maps come from tinyvit.model_maps and are cached
per run, image and method, so moving a slider or changing colours never recomputes one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch
from plotly.colors import sample_colorscale

from . import analysis, cache, drilldown, ui, view_charts
from .. import timeline
from .drilldown import Predictions
from .tables import class_name
from ..explain import uint8_to_pil
from .heatmap import overlay
from ..model_maps import method_title, own_maps
from ..runs import ACTIVE, Run
from .test_images import TestImages, from_dataset, from_samples

TILE_PX = 112
PER_PAGE = 12
PLAY_SECONDS = 0.8
LIVE_SECONDS = 3.0


# -- cached data -----------------------------------------------------------------------------
def file_mtime(run: Run, name: str) -> int:
    try:
        return run.file(name).stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(max_entries=16, show_spinner=False)
def _predictions(path: str, mtime: int) -> Predictions | None:
    return drilldown.predictions_of(Run(Path(path)))


def predictions(run: Run) -> Predictions | None:
    return _predictions(str(run.path.resolve()), file_mtime(run, "predictions.csv"))


@st.cache_resource(max_entries=6, show_spinner="Loading the test images…")
def _test_images(path: str, mtime: int) -> TestImages | None:
    run = Run(Path(path))
    p = drilldown.predictions_of(run)
    found = from_dataset(run.config(), p.labels) if p is not None else None
    return found or from_samples(run.file(cache.SAMPLES))


def test_images(run: Run) -> TestImages | None:
    return _test_images(str(run.path.resolve()), file_mtime(run, "predictions.csv"))


@st.cache_data(max_entries=512, show_spinner=False)
def _page_maps(path: str, weights_mtime: int, indices: tuple[int, ...], method: str) -> dict:
    run = Run(Path(path))
    loaded = cache.load_model(run)
    images = test_images(run)
    x = loaded.preprocess.normalize(torch.stack([images.image(i) for i in indices]))
    with analysis._LOCK:  # cached models are shared; Grad-CAM hooks and runs backward on them
        probs, heat = own_maps(loaded.model, loaded.kind, x)
    return {i: (probs[j].numpy(), heat[j].numpy()) for j, i in enumerate(indices)}


def page_maps(run: Run, indices) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{test index: (probabilities, map)} for a page of test images through the run's model,
    computed in one batch and cached per run, page and method."""
    indices = tuple(int(i) for i in indices)
    if not indices:
        return {}
    kind = run.config().get("model_kind", "vit")
    return _page_maps(str(run.path.resolve()), file_mtime(run, "model.safetensors"), indices, method_title(kind))


# -- pieces ------------------------------------------------------------------------------------
def _tile(heat: np.ndarray, images: TestImages, index: int, style: dict, caption: str) -> None:
    st.image(overlay(uint8_to_pil(images.image(index)), torch.from_numpy(heat), style["colormap"],
                     style["opacity"], size=TILE_PX), caption=caption, width=TILE_PX)


def style_controls(key: str) -> dict:
    """Colour map and opacity of the overlays (redrawn from cached maps)."""
    from .heatmap import COLORMAPS
    c = st.columns([2, 2, 4])
    return dict(colormap=c[0].selectbox("Colour map", COLORMAPS, key=f"{key}_cmap"),
                opacity=c[1].slider("Opacity", 0.0, 1.0, 0.45, 0.05, key=f"{key}_opacity"))


def _page(key: str, total: int, per_page: int = PER_PAGE) -> slice:
    pages = max(1, -(-total // per_page))
    if pages == 1:
        return slice(0, total)
    n = st.number_input(f"Page (of {pages})", 1, pages, 1, key=key)
    return slice((n - 1) * per_page, n * per_page)


def _cell_colours(frame: pd.DataFrame) -> pd.DataFrame:
    """Blues by the share of each true class (the heatmap's colours, in a table)."""
    values = frame.to_numpy(dtype=float)
    share = values / np.maximum(values.sum(1, keepdims=True), 1)
    colours = sample_colorscale("Blues", share.flatten().tolist())
    css = [f"background-color: {c}; color: {'white' if s > 0.6 else 'black'}"
           for c, s in zip(colours, share.flatten())]
    return pd.DataFrame(np.array(css).reshape(values.shape), index=frame.index, columns=frame.columns)


def cell_picker(matrix, class_names: list[str], key: str) -> tuple[int, int] | None:
    """The confusion matrix as a table; a click on a cell returns (true, predicted)."""
    k = len(matrix)
    columns = [class_name(class_names, j) for j in range(k)]
    if len(set(columns)) < k:
        columns = [f"{j}: {c}" for j, c in enumerate(columns)]
    frame = pd.DataFrame(np.asarray(matrix, dtype=int), index=[f"true {c}" for c in columns], columns=columns)
    event = st.dataframe(frame.style.apply(_cell_colours, axis=None), on_select="rerun",
                         selection_mode="single-cell", key=key, height=min(38 + 35 * k, 420))
    cells = event.selection.get("cells", []) if event else []
    if not cells:
        return None
    row, col = cells[0]
    return (int(row), columns.index(col)) if col in columns and 0 <= int(row) < k else None


# -- confusion-matrix drill-down -----------------------------------------------------------
def drilldown_section(runs: list[Run], key: str) -> None:
    """Pick a cell of one run's test confusion matrix and see its images, most confident
    first, with the map of each run (two runs of one dataset: side by side)."""
    st.subheader("Drill down: a cell's images")
    if len(runs) > 1:
        names = [r.name for r in runs]
        chosen = st.selectbox("Confusion matrix of", names, key=f"{key}_run")
        runs = [runs[names.index(chosen)]] + [r for r in runs if r.name != chosen]
    main = runs[0]
    test, p = main.test_metrics(), predictions(main)
    if not test or p is None:
        st.info("Available when the run has finished and written its test predictions.", icon=":material/info:")
        return
    names = list(test.get("class_names") or main.config().get("class_names", []))
    others = [r for r in runs[1:] if drilldown.comparable(main.config(), r.config(), p, predictions(r)) is None]
    st.caption(f"Click a cell of **{main.name}**'s test confusion matrix (rows: true class, columns: "
               "predicted) to see its images, most confident first"
               + (f", with **{others[0].name}**'s prediction and map beside each." if others else "."))
    picked = cell_picker(test["confusion_matrix"], names, f"{key}_cells_{main.name}")
    if picked is None:
        return
    true, pred = picked
    idx = drilldown.cell(p, true, pred)
    what = f"true **{class_name(names, true)}**, predicted **{class_name(names, pred)}**"
    if len(idx) == 0:
        st.info(f"No test image is in this cell ({what}).", icon=":material/info:")
        return
    images = test_images(main)
    shown = images.available(idx) if images else np.array([], dtype=np.int64)
    st.markdown(f"{what}: {len(idx)} image(s).")
    if images is None or len(shown) == 0:
        st.info("None of this cell's images is on this machine: the dataset is not here and the run saved "
                "other test images.", icon=":material/hide_image:")
        return
    if not images.complete:
        st.caption(f"The dataset is not on this machine: showing the {len(shown)} of these images that "
                   "were saved with the run.")
    style = style_controls(f"{key}_style")
    pair = [main] + others[:1]
    per_row = 6 // len(pair)
    page = shown[_page(f"{key}_page", len(shown))]
    maps = [page_maps(run, page) for run in pair]
    for start in range(0, len(page), per_row):
        cols = st.columns(6)
        for j, index in enumerate(page[start:start + per_row]):
            for r in range(len(pair)):
                probs, heat = maps[r][int(index)]
                top = int(np.argmax(probs))
                tag = f"{'AB'[r]}: " if len(pair) > 1 else ""
                with cols[j * len(pair) + r]:
                    _tile(heat, images, index, style, f"{tag}{class_name(names, top)} {probs[top]:.0%} · #{index}")


# -- disagreements ---------------------------------------------------------------------------
def disagreement_section(a: Run, b: Run, key: str = "dis") -> None:
    st.subheader("Where the two models disagree (test)")
    pa, pb = predictions(a), predictions(b)
    reason = drilldown.comparable(a.config(), b.config(), pa, pb)
    if reason:
        st.info(reason, icon=":material/info:")
        return
    names = list(a.config().get("class_names", []))
    counts = drilldown.outcome_counts(pa, pb)
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown(f"**A** = {a.name}  \n**B** = {b.name}")
        st.dataframe(pd.DataFrame([[counts["both right"], counts["only A right"]],
                                   [counts["only B right"], counts["both wrong"]]],
                                  index=["A right", "A wrong"], columns=["B right", "B wrong"]))
        st.caption(f"Of {len(pa)} test images: both right {counts['both right']}, only A right "
                   f"{counts['only A right']}, only B right {counts['only B right']}, both wrong "
                   f"{counts['both wrong']}.")
    with right:
        only_a, only_b = drilldown.wins_per_class(pa, pb, len(names) or int(pa.labels.max()) + 1)
        st.plotly_chart(view_charts.wins_bar(only_a, only_b, names, "A", "B"), key=f"{key}_wins")
        st.caption("Per true class: bars up count the images only A gets right, bars down those only B does.")
    dis = drilldown.disagreements(pa, pb)
    images = test_images(a)
    shown = images.available(dis) if images else np.array([], dtype=np.int64)
    st.markdown(f"**{len(dis)} image(s) where A and B predict different classes**, largest confidence gap first.")
    if len(dis) == 0:
        st.success("The two models agree on every test image.", icon=":material/handshake:")
        return
    if len(shown) == 0:
        st.info("None of these images is on this machine (the dataset is not here).", icon=":material/hide_image:")
        return
    if not images.complete:
        st.caption(f"The dataset is not on this machine: showing the {len(shown)} saved with the run.")
    style = style_controls(f"{key}_style")
    page = shown[_page(f"{key}_page", len(shown), 6)]
    maps = {"A": page_maps(a, page), "B": page_maps(b, page)}
    for index in page:
        cols = st.columns([1, 1, 2, 1, 2], vertical_alignment="center")
        label = int(pa.labels[index])
        cols[0].image(ui.enlarge(uint8_to_pil(images.image(index)), TILE_PX), width=TILE_PX,
                      caption=f"#{index} · true {class_name(names, label)}")
        for tag, c in (("A", 1), ("B", 3)):
            probs, heat = maps[tag][int(index)]
            with cols[c]:
                _tile(heat, images, index, style, tag)
            cols[c + 1].markdown("  \n".join(
                f"{'**' if k == label else ''}{class_name(names, k)}{'**' if k == label else ''}: {v:.1%}"
                for k, v in drilldown.top_k(probs, 3)))


# -- the learning timeline -------------------------------------------------------------------
def timeline_section(run: Run) -> None:
    """The probe images' maps and the validation confusion matrix at a chosen epoch; a play
    button steps through the epochs. Refreshes itself while the run trains."""
    st.subheader("What the model learns, epoch by epoch")
    active = run.status()["state"] in ACTIVE
    playing = st.session_state.get(f"tl_play_{run.path}", False)
    every = PLAY_SECONDS if playing else (LIVE_SECONDS if active else None)
    st.fragment(run_every=every)(_timeline_view)(str(run.path), active, every == PLAY_SECONDS)


def _toggle_play(path: str, first: int, last: int) -> None:
    play, key = f"tl_play_{path}", f"tl_epoch_{path}"
    st.session_state[play] = not st.session_state.get(play)
    st.session_state[f"tl_hold_{path}"] = True  # show the epoch playback starts on before stepping
    if st.session_state[play] and st.session_state.get(key) == last:
        st.session_state[key] = first  # play from the start


def _timeline_view(path: str, active: bool, ticking: bool) -> None:
    run = Run(Path(path))
    if not run.exists:
        return
    try:
        t = timeline.load(run.file(timeline.FILE), run.config())
    except timeline.TimelineError as err:
        st.warning(str(err), icon=":material/warning:")
        return
    if t is None or len(t) == 0:
        st.info("This run has no timeline: it was trained before timelines were recorded, or its first "
                "epoch has not finished yet." if not active else
                "The timeline appears when the first epoch finishes.", icon=":material/info:")
        return
    names = list(run.config().get("class_names", []))
    epochs = [int(e) for e in t.epochs]
    key, play, seen = f"tl_epoch_{path}", f"tl_play_{path}", f"tl_last_{path}"
    held = st.session_state.get(key)
    if held not in epochs or (held == st.session_state.get(seen) and active):
        st.session_state[key] = epochs[-1]  # a live run's view follows the newest epoch
    if bool(st.session_state.get(play)) != ticking:
        st.rerun()  # Play or Pause was pressed: the whole page, so the fragment's timer changes
    if st.session_state.get(play) and not st.session_state.pop(f"tl_hold_{path}", False):
        later = [e for e in epochs if e > st.session_state[key]]
        if later:
            st.session_state[key] = later[0]
        else:
            st.session_state[play] = False
            st.rerun()  # the whole page, so the fragment stops ticking
    st.session_state[seen] = epochs[-1]
    c = st.columns([5, 1], vertical_alignment="bottom")
    if len(epochs) > 1:
        epoch = c[0].select_slider("Epoch", epochs, key=key)
    else:
        epoch = epochs[0]
        c[0].caption(f"Epoch {epoch} (the only one recorded so far)")
    c[1].button("Pause" if st.session_state.get(play) else "Play", key=f"tl_btn_{path}",
                icon=":material/pause:" if st.session_state.get(play) else ":material/play_arrow:",
                disabled=len(epochs) < 2, on_click=_toggle_play, args=(path, epochs[0], epochs[-1]))
    row = t.at(epoch)
    kind = run.config().get("model_kind", "vit")
    st.caption(f"{method_title(kind)} of {len(t.labels)} fixed validation images (every class represented) "
               f"after epoch {epoch}, and the validation confusion matrix then.")
    left, right = st.columns([3, 2], gap="large")
    with left:
        per_row = 8 if len(t.labels) > 8 else len(t.labels)
        for start in range(0, len(t.labels), per_row):
            cols = st.columns(per_row)
            for j in range(start, min(start + per_row, len(t.labels))):
                img = uint8_to_pil(torch.from_numpy(t.images[j]))
                heat = torch.from_numpy(t.maps[row, j].astype(np.float32))
                pred, conf = int(t.preds[row, j]), float(t.confidences[row, j])
                mark = "✓" if pred == int(t.labels[j]) else "✗"
                cols[j - start].image(overlay(img, heat, "Jet", 0.45, size=80), width=80,
                                      caption=f"{class_name(names, int(t.labels[j]))}→{class_name(names, pred)} {mark} {conf:.0%}")
    with right:
        acc = np.trace(t.confusion[row]) / max(1, t.confusion[row].sum())
        st.plotly_chart(view_charts.confusion_at(t.confusion[row], names, f"validation, epoch {epoch}: "
                                                 f"{acc:.1%} right"), key=f"tl_cm_{path}")
