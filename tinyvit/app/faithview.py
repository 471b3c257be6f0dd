"""Streamlit views of a run's faithfulness report, for the Metrics and Compare pages."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from . import charts, faithjob
from ..faithfulness import BASELINES, METRICS, REMOVAL, STEPS, FaithfulnessError, load_report, mean_curves
from ..runs import Run, RunError

EXPLAINER = (f"Each map is scored on the run's test images. **Deletion**: the predicted class's probability "
             f"as the pixels the map rates highest are removed first, 1/{STEPS} of the image at a time "
             f"(\"removed\" = set to the training {REMOVAL}); the area under that curve is low when the "
             "map found what the model needs. **Insertion**: the same, revealing pixels most-salient-first "
             "from an empty image; high is good. **Pointing game**: how often the map's peak lies on the "
             "object; **relevance mass**: the share of the map on it (only where the dataset has object "
             "masks). A random map and a centre-bias map are the baselines a method should beat.")


def frame(doc: dict) -> pd.DataFrame:
    """Methods × metrics, in the report's order, columns only for the metrics it has."""
    cols = [k for k in METRICS if any(r.get(k) is not None for r in doc["methods"].values())]
    rows = {r["title"]: {METRICS[c][0]: r.get(c) for c in cols} for r in doc["methods"].values()}
    # float: a baseline's missing seconds become NaN, shown as "–".
    return pd.DataFrame.from_dict(rows, orient="index").astype(float)


def styled(doc: dict):
    """The table as text (a baseline has no seconds: "–"), each column's best method (baselines
    not counted) in bold green."""
    df = frame(doc)
    methods = [r["title"] for k, r in doc["methods"].items() if k not in BASELINES]
    higher = {METRICS[k][0]: METRICS[k][1] for k in METRICS}
    marks = pd.DataFrame("", index=df.index, columns=df.columns)
    for col in df.columns:
        vals = df.loc[df.index.isin(methods), col].dropna()
        if not vals.empty:
            target = vals.max() if higher[col] else vals.min()
            marks.loc[vals.index[vals == target], col] = "font-weight: bold; background-color: #d4f4dd"
    text = df.apply(lambda col: col.map(lambda v: "–" if pd.isna(v) else
                                        (f"{v:.4f}" if col.name.startswith("Seconds") else f"{v:.3f}")))
    return text.style.apply(lambda _: marks, axis=None)


def _height(doc: dict) -> int:
    """Every row visible, baselines included (the default height scrolls after ten)."""
    return 36 * (len(doc["methods"]) + 1) + 4


def load(run: Run) -> tuple[dict | None, str | None]:
    """(report with curves, None) or (None, why it cannot be shown)."""
    try:
        return load_report(run.path, with_curves=True), None
    except FaithfulnessError as err:
        return None, str(err)


def section(run: Run) -> None:
    """Metrics page: the table, the mean curves, and computing them when missing or invalid."""
    st.subheader("How faithful are the maps")
    doc, problem = load(run)
    job = faithjob.status(run)
    if job["state"] == "running":
        _progress(run)
        return
    if job["state"] == "failed" and doc is None:
        st.error(f"Measuring the maps failed: {job.get('error')}", icon=":material/error:")
    if problem:
        st.warning(f"The stored faithfulness report is invalid and is not shown: {problem}",
                   icon=":material/gpp_bad:")
    if doc is None:
        _compute_button(run, "Recompute" if problem else "Compute")
        return
    st.caption(f"{doc['images']} test images · target: {doc['target']} · measured {doc['created']} "
               f"in {doc['seconds']:.0f} s. Best value per column in green (baselines excluded).")
    st.dataframe(styled(doc), height=_height(doc))
    for m, why in doc.get("skipped", {}).items():
        st.caption(f"Not measured: {m}: {why}")
    with st.expander("What the columns mean", icon=":material/help:"):
        st.markdown(EXPLAINER)
    titles = {k: r["title"] for k, r in doc["methods"].items()}
    st.plotly_chart(charts.faithfulness_curves(mean_curves(doc), titles), key=f"faith_curves_{run.name}")
    if not run.readonly:
        _compute_button(run, "Recompute")


def _compute_button(run: Run, label: str) -> None:
    if run.readonly:
        st.info("This read-only run has no faithfulness report.", icon=":material/info:")
        return
    if not run.has_weights():
        st.info("The maps can be measured once the run has trained weights.", icon=":material/info:")
        return
    st.caption("Scores every saliency method on 200 test images, in its own process (a few minutes "
               "on a CPU); the page shows its progress.")
    if st.button(label, key=f"faith_compute_{run.name}", icon=":material/speed:"):
        try:
            faithjob.start(run)
        except RunError as err:
            st.error(str(err), icon=":material/error:")
            return
        st.rerun()


@st.fragment(run_every=1.0)
def _progress(run: Run) -> None:
    job = faithjob.status(run)
    if job["state"] != "running":
        st.rerun()  # the whole page: the table is there now (or the error)
    done, total = int(job.get("done", 0)), int(job.get("total", 0)) or 1
    st.progress(min(done / total, 1.0), text=f"Measuring the maps: {job.get('what', 'starting…')}")


def side_by_side(runs: list[Run]) -> None:
    """Compare page: each run's faithfulness table, side by side."""
    st.subheader("How faithful are the maps")
    st.caption("Are one model's maps more faithful than another's? Lower deletion and higher insertion, "
               "pointing game and relevance mass mean the map follows what the model uses.")
    cols = st.columns(max(2, min(len(runs), 3)))
    for col, run in zip(cols * (len(runs) // len(cols) + 1), runs):
        with col:
            st.markdown(f"**{run.name}**")
            doc, problem = load(run)
            if problem:
                st.warning(f"Invalid report, not shown: {problem}", icon=":material/gpp_bad:")
            elif doc is None:
                st.caption("Not measured yet: compute it on the Metrics page.")
            else:
                st.dataframe(styled(doc), height=_height(doc))
