"""Metrics: everything the trainer measured for one run, read from its files.

The slides' table (validation at the best and last epoch, test), per-class scores, the
confusion matrix, per-epoch curves, how faithful the saliency maps are, and the most
confident mistakes with their maps.
A run still training shows what exists so far."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from tinyvit.app import (analysis, cache, charts, faithview, navigation, tables, ui, views,
                         view_charts)
from tinyvit.explain import uint8_to_pil
from tinyvit.app.heatmap import overlay
from tinyvit.runs import ACTIVE, Run

GALLERY_PX = 128
CURVES = {
    "Loss": ["train_loss", "val_loss"],
    "Accuracy": ["train_accuracy", "val_accuracy"],
    "F1 · recall · precision · MCC": ["val_f1", "val_recall", "val_precision", "val_mcc"],
    "Learning rate": ["lr"],
    "Speed": ["images_per_second"],
}


def summary(run: Run) -> None:
    table = tables.slides_table(run)
    st.subheader("The study's table (%)")
    if table.empty:
        st.info("No epoch has finished yet, so there is nothing to tables.", icon=":material/info:")
        return
    st.dataframe(table.style.format("{:.2f}", na_rep="–"))
    rows = run.metrics()
    row = st.container(horizontal=True)
    row.download_button("Metrics table (CSV)", table.to_csv(float_format="%.4f"),
                            file_name=f"{run.name}-metrics.csv", mime="text/csv", icon=":material/download:")
    row.download_button("Per-epoch metrics (CSV)", tables.epochs_frame(rows).to_csv(index=False),
                            file_name=f"{run.name}-epochs.csv", mime="text/csv", icon=":material/download:")
    test = run.test_metrics()
    if test:
        row.download_button("Per-class table (CSV)", tables.per_class_frame(test).to_csv(index=False),
                                file_name=f"{run.name}-per-class.csv", mime="text/csv",
                                icon=":material/download:")


def test_details(run: Run) -> None:
    test = run.test_metrics()
    if not test:
        st.info("Per-class scores and the confusion matrix come from the test set, which is "
                "evaluated when training finishes.", icon=":material/info:")
        return
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.subheader("Per class (test)")
        st.caption("Click a column header to sort.")
        st.dataframe(tables.per_class_frame(test), hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%.1f") for c in ("precision %", "recall %", "F1 %")})
    with right:
        st.subheader("Confusion matrix (test)")
        mode = st.radio("Show", ["counts", "normalised per true class"], horizontal=True, key="cm_mode",
                        label_visibility="collapsed")
        st.plotly_chart(charts.confusion_heatmap(test["confusion_matrix"], test.get("class_names", []),
                                                 normalised=mode != "counts"), key="confusion")


def curves(run: Run) -> None:
    st.subheader("Per epoch")
    rows = run.metrics()
    weight, x_axis = curve_options("m")
    tabs = st.tabs(list(CURVES))
    for tab, (title, keys) in zip(tabs, CURVES.items()):
        with tab:
            st.plotly_chart(view_charts.curves({run.name: rows}, keys, weight, x_axis), key=f"curve_{title}")


def curve_options(key: str) -> tuple[float, str]:
    """Smoothing (TensorBoard's moving average) and the x-axis: epochs or training time."""
    c = st.columns([2, 3, 3])
    weight = c[0].slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key=f"{key}_smooth",
                         help="exponential moving average; the raw values stay as faint dots")
    x_axis = c[1].radio("x-axis", ["epoch", "seconds", "minutes"], horizontal=True, key=f"{key}_x",
                        format_func=lambda v: v if v == "epoch" else f"training time ({v})",
                        help="training time: the sum of the epochs' training seconds")
    return weight, x_axis


def live(path: str, polling: bool) -> None:
    """The parts that change while a run trains, re-read every few seconds."""
    run = Run(Path(path))
    if polling and run.status()["state"] not in ACTIVE:
        st.rerun()  # it just finished: the whole page, with its test report
    summary(run)
    curves(run)


def mistakes(run: Run) -> None:
    st.subheader("Most confident mistakes (test)")
    samples = cache.load_run_samples(run)
    if not samples:
        st.info("The gallery appears when training finishes (it uses the saved test images).",
                icon=":material/info:")
        return
    n = st.columns([1, 3])[0].slider("How many", 4, 32, 8, step=4, key="mistakes_n")
    picks = analysis.confident_mistakes(samples, n)
    if not picks:
        st.success("No mistakes among the saved test images.", icon=":material/check_circle:")
        return
    loaded = cache.load_model(run)
    method = analysis.default_method(loaded)
    st.caption(f"Each with its {analysis.METHODS[method].lower()} overlay: where the model looked "
               "when it got the image wrong.")
    names = loaded.class_names
    cols = st.columns(4)
    for j, i in enumerate(picks):
        image = uint8_to_pil(samples["images"][i])
        exp = cache.explain(loaded, loaded.preprocess.normalize(samples["images"][i]), method)
        true, pred = int(samples["labels"][i]), int(samples["preds"][i])
        cols[j % 4].image(overlay(image, exp.heat, "Jet", 0.45, size=GALLERY_PX),
                          caption=f"true {tables.class_name(names, true)} → {tables.class_name(names, pred)} "
                                  f"({float(samples['confidences'][i]):.0%})")


def page() -> None:
    st.title("Metrics")
    ui.hub_loader("metrics")
    run = ui.run_picker("metrics")
    if run is None:
        navigation.no_runs_hint()
        return
    status, cfg = run.status(), run.config()
    left, right = st.columns([4, 1], vertical_alignment="center")
    model = tables.model_title(cfg)
    left.caption(f"{model} on {cfg.get('dataset_title') or cfg.get('dataset')} · "
                 f"{cfg.get('num_params') or 0:,} parameters · {len(run.metrics())} of {cfg.get('epochs')} epochs")
    with right:
        ui.hub_pusher(run, "metrics")
    if status["state"] in ACTIVE:
        st.info(f"This run is still {status['state']}: showing what exists so far. The test report, "
                "per-class scores and the gallery appear when it finishes.", icon=":material/pending:")
    elif status["state"] in ("failed", "diverged", "stopped"):
        st.warning(f"This run {status['state']} before the end"
                   f"{': ' + ui.app_text(status['error']) if status.get('error') else ''}; it has no test report "
                   "unless it finished earlier.", icon=":material/warning:")
    polling = status["state"] in ACTIVE
    st.fragment(run_every=views.LIVE_SECONDS if polling else None)(live)(str(run.path), polling)
    views.timeline_section(run)
    test_details(run)
    faithview.section(run)
    views.drilldown_section([run], "m_drill")
    mistakes(run)


if __name__ == "__main__":
    navigation.run_app()
