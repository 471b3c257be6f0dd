"""TinyViT Lab: the Streamlit app. `streamlit run app.py` (or `make run`).

This file is the router (st.navigation over the pages that tinyvit.app.navigation lists) and
the Home page. Every page only shows what the run folders on disk hold and calls `tinyvit/`
for the rest; training happens in separate train.py processes started by tinyvit.app.jobs.
"""
from __future__ import annotations

import os

import streamlit as st
import torch

from tinyvit.app import jobs, navigation, tables, ui
from tinyvit.runs import RunError, default_root

# An emoji icon is drawn in the browser; a :material/…: one is fetched from Google's font
# server, which fails offline.
st.set_page_config(page_title="TinyViT Lab", page_icon="🔬", layout="wide")

SIDEBAR_REFRESH = 3.0  # seconds
# Named once, here; the other pages say "the study".
STUDY = ("**“TinyViT: A Small Vision Transformer”** (Lucian Dorin Crainic, Master's degree in Computer "
         "Science, Sapienza Università di Roma, academic year 2024/2025)")


def device() -> tuple[str, str]:
    """(short name for the metric, details for its caption)."""
    if torch.cuda.is_available():
        return "GPU", f"{torch.cuda.get_device_name(0)} · torch {torch.__version__}"
    return "CPU", f"no CUDA GPU found · {os.cpu_count()} cores · torch {torch.__version__}"


def home() -> None:
    st.title("TinyViT Lab")
    ui.space_notice()
    st.markdown(
        f"This app reproduces the study {STUDY}: its small **Vision Transformer** and **CNN** "
        "baseline, trained on image datasets, then looked inside: live training curves, "
        "predictions with attention maps and Grad-CAM, the study's metric table, and "
        "side-by-side comparisons. \"The study\" on every page means this one.  \n"
        "Each training job runs as its own `train.py` process and writes a run folder on disk, "
        "so jobs keep going while you switch pages, refresh, or open a second tab.")
    cols = st.columns(3)
    name, details = device()
    cols[0].metric("Device", name, help="Where new training jobs run (device 'auto').")
    cols[0].caption(details)
    cols[1].metric("Torch threads (this app)", torch.get_num_threads())
    cols[2].metric("Job slots", jobs.max_jobs(), help="Jobs that may train at the same time; more "
                   "launches wait in a queue. Set the TINYVIT_MAX_JOBS environment variable to change it.")

    st.subheader("Runs on disk")
    st.caption(f"Your runs are in `{default_root()}` (set `TINYVIT_RUNS` to use another folder).")
    with ui.guard("the runs table"):
        runs = ui.all_runs()
        demo_note(runs)
        rows = []
        for run in runs:
            try:
                rows.append(tables.run_summary(run))
            except RunError:
                continue  # deleted while the table was being built
        if rows:
            st.dataframe(rows, hide_index=True, column_config={
                "best val acc %": st.column_config.NumberColumn(format="%.1f"),
                "test acc %": st.column_config.NumberColumn(format="%.1f"),
                "parameters": st.column_config.NumberColumn(format="localized"),
            })
        else:
            st.info("No runs yet: start one on the Train page (the default, a TinyViT on the "
                    "offline Digits dataset, needs no download).", icon=":material/info:")

    st.subheader("Where next")
    for name, info in navigation.PAGES.items():
        left, right = st.columns([1, 4], vertical_alignment="center")
        left.page_link(navigation.page(name), label=info.title, icon=info.icon)
        right.caption(info.blurb)


def demo_note(runs) -> None:
    """Say whether the read-only demo runs are there, so a new user knows every page has
    something to show before they train anything."""
    demos = [r for r in runs if tables.origin(r) == "demo"]
    if demos:
        st.info(f"**{len(demos)} demo run(s)** are available ({', '.join(r.name for r in demos[:4])}"
                f"{' …' if len(demos) > 4 else ''}): trained models shipped with the app, read-only, so "
                "Predict, Metrics and Compare have something to show right away.", icon=":material/school:")
    else:
        st.caption("No demo runs found (`make demo-runs` trains them into demo_runs/).")


def sidebar_jobs() -> None:
    """Running and queued jobs, on every page (read from disk, so every tab agrees)."""
    with ui.guard("the job list"):
        active = jobs.active_runs()
        st.markdown("**Jobs**")
        st.caption(f"{jobs.max_jobs()} job slot(s); more launches wait in the queue.")
        if not active:
            st.caption("Nothing is training right now.")
        for run in active:
            s = run.status()
            if s["state"] == "running" and s.get("epochs"):
                st.progress(min(1.0, len(run.metrics()) / int(s["epochs"])),
                            text=f"{run.name}: epoch {int(s.get('epoch') or 0) + 1}/{s['epochs']}")
            else:
                st.caption(f":material/hourglass_empty: {run.name}: queued")


def keep_train_form() -> None:
    """Streamlit forgets a page's widget values when another page is shown; re-assigning
    them here (this file runs on every page) keeps the Train form as the user left it."""
    for key in list(st.session_state):
        if key.startswith(("tf_", "hp_", "sw_")):
            st.session_state[key] = st.session_state[key]


keep_train_form()
nav = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True)]
                   + [navigation.page(name) for name in navigation.PAGES])
with st.sidebar:
    # Always refreshing (reading a few small status files), so a job launched in another tab
    # or one that just ended shows up here without a click.
    st.fragment(run_every=SIDEBAR_REFRESH)(sidebar_jobs)()
    ui.keep_browser_token()
nav.run()
