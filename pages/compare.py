"""Compare: several runs side by side: curves, one metric table with the best values
highlighted (the slides' bold), confusion matrices, and one image through every model."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from tinyvit.app import (analysis, cache, charts, faithview, navigation, run_choice, scaling, tables, ui,
                         views, view_charts)
from tinyvit.explain import uint8_to_pil
from tinyvit.app.heatmap import overlay
from tinyvit.inference import MAX_UPLOAD_BYTES, ImageError, open_image
from tinyvit.runs import Run, RunError
from tinyvit.samples import first_right

KEY = "cmp_runs"
PER_ROW = 3
CURVE_KEYS = ["val_accuracy", "val_loss", "train_loss", "train_accuracy", "val_f1", "val_recall",
              "val_precision", "val_mcc", "lr", "images_per_second"]
BEST_STYLE = "font-weight: bold; background-color: rgba(255, 196, 0, 0.35)"


def _add_run(run: Run) -> None:
    held = st.session_state.get(KEY, [])
    st.session_state[KEY] = held + [str(run.path)] if str(run.path) not in held else held


def pick_runs() -> list[Run]:
    ui.hub_loader("compare", on_loaded=_add_run)
    runs = ui.all_runs()
    options = [str(r.path) for r in runs]
    held = st.session_state.get(KEY, [])
    gone = [p for p in held if p not in options]
    if gone:
        st.warning("No longer on disk (deleted, perhaps in another tab): "
                   + ", ".join(Path(p).name for p in gone), icon=":material/warning:")
        st.session_state[KEY] = [p for p in held if p in options]
    if KEY not in st.session_state:
        # Default: two finished runs of one dataset (see run_choice.default_selection).
        st.session_state[KEY] = [str(r.path) for r in run_choice.default_selection(runs)]
    labels = {str(r.path): ui.run_label(r) for r in runs}
    chosen = st.multiselect("Runs to compare", options, key=KEY, format_func=lambda p: labels.get(p, p),
                            placeholder="pick two or more runs")
    return [Run(Path(p)) for p in chosen]


def highlight_best(frame: pd.DataFrame):
    """Bold the best value of each numeric column (lowest parameter count, highest score)."""
    def best(col: pd.Series):
        values = pd.to_numeric(col, errors="coerce")
        if values.notna().sum() < 2:
            return [""] * len(col)
        target = values.min() if col.name in tables.LOWER_IS_BETTER else values.max()
        return [BEST_STYLE if v == target else "" for v in values]

    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and c != "epochs"]
    fmt = {c: ("{:,.0f}" if c == "parameters" else "{:.2f}") for c in numeric}
    return frame.style.apply(best, subset=numeric).format(fmt, na_rep="–")


def table(runs: list[Run]) -> None:
    st.subheader("Metrics (%)")
    frame = tables.compare_frame(runs)
    st.dataframe(highlight_best(frame) if not run_choice.mismatch(runs) else frame)
    st.caption("Values in % (validation accuracy at the best epoch, then the test set's accuracy, F1, "
               "recall, MCC and precision, as the study reports them). Highlighted: the best value in each column "
               "(for parameters, the fewest). Test columns are empty for runs that have not finished.")
    settings(runs)


def settings(runs: list[Run]) -> None:
    if len(runs) < 2:
        return
    differ = run_choice.differing_settings(runs)
    if differ.empty:
        st.caption("These runs were trained with the same settings.")
        return
    st.markdown("**Settings that differ**")
    st.dataframe(differ)


def curves(runs: list[Run]) -> None:
    st.subheader("Curves")
    c = st.columns([3, 2, 3])
    key = c[0].selectbox("Metric", CURVE_KEYS, format_func=charts.label, key="cmp_metric")
    weight = c[1].slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="cmp_smooth",
                         help="exponential moving average; the raw values stay as faint dots")
    x_axis = c[2].radio("x-axis", ["epoch", "seconds", "minutes"], horizontal=True, key="cmp_x",
                        format_func=lambda v: v if v == "epoch" else f"training time ({v})",
                        help="training time: the sum of the epochs' training seconds")
    st.plotly_chart(view_charts.curves({r.name: r.metrics() for r in runs}, [key], weight, x_axis,
                                       height=380, title=charts.label(key)), key="cmp_curves")


def data_scaling(runs: list[Run]) -> None:
    """Drawn only when the chosen runs of one dataset differ in training-set size."""
    found = scaling.points(runs)
    if not scaling.worth_drawing(found):
        return
    st.subheader("Test accuracy against training-set size")
    st.plotly_chart(scaling.chart(found), key="cmp_scaling")
    st.caption("One line per model, one point per finished run: how much each kind of model gains from more "
               "training images (the slides: a ViT needs more data than a CNN).")


def confusions(runs: list[Run]) -> None:
    st.subheader("Confusion matrices (test)")
    normalised = st.toggle("Normalise per true class", value=True, key="cmp_norm")
    with_test = [(r, t) for r in runs if (t := r.test_metrics())]
    if not with_test:
        st.info("None of these runs has finished, so there is no test confusion matrix yet.",
                icon=":material/info:")
        return
    for start in range(0, len(with_test), PER_ROW):
        cols = st.columns(max(2, min(PER_ROW, len(with_test))))
        for col, (run, test) in zip(cols, with_test[start:start + PER_ROW]):
            col.plotly_chart(charts.confusion_heatmap(test["confusion_matrix"], test.get("class_names", []),
                                                      normalised, title=run.name, height=380),
                             key=f"cmp_cm_{run.name}")


def one_image(runs: list[Run]) -> None:
    st.subheader("One image through every model")
    usable = [r for r in runs if r.has_weights()]
    if not usable:
        st.info("None of these runs has trained weights yet.", icon=":material/info:")
        return
    c = st.columns([2, 3])
    source = c[0].radio("Image", ["A test image from a run", "Upload"], horizontal=True, key="cmp_source")
    method = c[1].radio("Map", ["each model's own", "Grad-CAM for all"], horizontal=True, key="cmp_method",
                        help="own: attention rollout for a ViT, Grad-CAM for a CNN; Grad-CAM for all "
                             "compares both kinds with the same method")
    image = _uploaded() if source == "Upload" else _sample(usable)
    if image is None:
        return
    datasets = {r.config().get("dataset") for r in usable}
    if len(datasets) > 1:
        st.warning("These runs were trained on different datasets: each model answers with its own "
                   "classes.", icon=":material/warning:")
    for start in range(0, len(usable), PER_ROW):
        cols = st.columns(max(2, min(PER_ROW, len(usable))))
        for col, run in zip(cols, usable[start:start + PER_ROW]):
            with col, ui.guard(run.name):
                _explain_in(run, image, method)


def _explain_in(run: Run, image, method_choice: str) -> None:
    loaded = cache.load_model(run)
    method = "gradcam" if method_choice.startswith("Grad") else analysis.default_method(loaded)
    x8, x = analysis.prepare(loaded, image)
    exp = cache.explain(loaded, x, method)
    name = tables.class_name(loaded.class_names, exp.top)
    st.markdown(f"**{run.name}**  \n{name} · {exp.confidence:.1%}")
    st.image(overlay(uint8_to_pil(x8), exp.heat, "Jet", 0.5, size=ui.DISPLAY_PX),
             caption=analysis.METHODS[method], width=ui.DISPLAY_PX)


def _uploaded():
    f = st.file_uploader("Image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key="cmp_upload",
                         max_upload_size=MAX_UPLOAD_BYTES // 2 ** 20)
    if f is None:
        return None
    try:
        return open_image(f.getvalue(), f.name)
    except ImageError as err:
        st.error(str(err), icon=":material/broken_image:")
        return None


def _sample(runs: list[Run]):
    c = st.columns(2)
    path = c[0].selectbox("From run", [str(r.path) for r in runs], format_func=lambda p: Path(p).name,
                          key="cmp_sample_run")
    source = Run(Path(path))
    samples = cache.load_run_samples(source)
    if not samples:
        st.info(f"{source.name} has no saved test images (they are written when training finishes).",
                icon=":material/info:")
        return None
    names = source.config().get("class_names", [])

    def describe(i: int) -> str:
        label = int(samples["labels"][i])
        return f"#{int(samples['indices'][i])} · {names[label] if label < len(names) else label}"

    i = c[1].selectbox("Test image", range(len(samples["labels"])), format_func=describe,
                       index=first_right(samples),
                       key=f"cmp_sample_{source.name}", help="the run's saved test images: its most "
                       "confident mistakes first, then a few of each class")
    label = int(samples["labels"][i])
    image = uint8_to_pil(samples["images"][i])
    st.image(ui.enlarge(image, 96), width=96, caption=f"true class: {names[label] if label < len(names) else label}")
    return image


def page() -> None:
    st.title("Compare")
    runs = pick_runs()
    if not ui.all_runs():
        navigation.no_runs_hint()
        return
    if not runs:
        st.info("Pick at least one run above (two or more to compare).", icon=":material/info:")
        return
    problem = run_choice.mismatch(runs)
    if problem:
        st.warning(problem, icon=":material/warning:")
    try:
        table(runs)
    except RunError as err:
        st.warning(str(err), icon=":material/warning:")
        return
    curves(runs)
    data_scaling(runs)
    confusions(runs)
    faithview.side_by_side(runs)
    finished = [r for r in runs if r.test_metrics()]
    if finished:
        views.drilldown_section(finished, "cmp_drill")
    if len(runs) >= 2:
        pair = pair_picker(runs)
        views.disagreement_section(*pair)
    one_image(runs)


def pair_picker(runs: list[Run]) -> tuple[Run, Run]:
    """The two runs of the disagreement explorer: the first two chosen, or any two."""
    if len(runs) == 2:
        return runs[0], runs[1]
    names = [r.name for r in runs]
    c = st.columns(2)
    a = c[0].selectbox("Run A", names, index=0, key="dis_a")
    b = c[1].selectbox("Run B", [n for n in names if n != a], index=0, key="dis_b")
    return runs[names.index(a)], runs[names.index(b)]


if __name__ == "__main__":
    navigation.run_app()
