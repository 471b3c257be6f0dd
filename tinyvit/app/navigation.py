"""The app's pages and how a URL reaches one.

Each page is a module in pages/ whose `page()` function draws it; app.py hands those
functions to st.navigation, so every page runs inside app.py's frame (the job list, the
browser token, the page config).

Streamlit still treats a pages/ folder next to the entrypoint as a legacy multipage app
until st.navigation has been called once in the server process. So the first request a new
server gets, if it is a deep link such as /train, runs pages/train.py by itself as a script
(`__name__ == "__main__"`), without app.py. Each page file therefore ends with
`if __name__ == "__main__": navigation.run_app()`, which runs app.py within that same script
run: app.py's st.navigation switches the legacy mode off for the process and draws the page
the URL names, inside the frame. (Streamlit's AppTest starts every run in that legacy mode,
so the app's tests take this path on every run.)
"""
from __future__ import annotations

import importlib
import runpy
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from . import ui

ENTRYPOINT = Path(__file__).resolve().parents[2] / "app.py"

class PageInfo(NamedTuple):
    title: str
    icon: str
    blurb: str  # what the Home page says the page is for


# The URL path of each page is its key, which is also its module's name in pages/.
PAGES = {
    "train": PageInfo("Train", ":material/model_training:",
                      "Launch a training job and watch its curves live; stop, resume or delete runs."),
    "predict": PageInfo("Predict", ":material/image_search:",
                        "Classify your own images or saved test images and see where the model looked."),
    "metrics": PageInfo("Metrics", ":material/analytics:",
                        "The study's metric table, per-class scores, confusion matrix and worst mistakes."),
    "compare": PageInfo("Compare", ":material/compare:",
                        "Several runs side by side: curves, metrics, confusion matrices and one image."),
    "sweep": PageInfo("Sweep", ":material/tune:",
                      "Hyperparameter sweeps with Optuna: define a space, launch workers, watch trials, "
                      "open the best."),
    "anatomy": PageInfo("Anatomy", ":material/neurology:",
                        "Inside a trained model: a ViT's position embeddings, patch filters and attention "
                        "distances; a CNN's filters and receptive fields."),
}


def page(name: str) -> st.Page:
    """A new StreamlitPage for pages/<name>.py, for st.navigation, st.page_link and
    st.switch_page (which match pages by URL path). A new one each call: st.navigation marks
    the object it returns as the one to run, so an object shared by two sessions' runs
    could be marked and run by the wrong one."""
    info = PAGES[name]
    draw = importlib.import_module(f"pages.{name}").page

    def guarded() -> None:
        with ui.guard(f"the {info.title} page"):
            draw()

    return st.Page(guarded, title=info.title, icon=info.icon, url_path=name)


def no_runs_hint(what: str = "Train a model first") -> None:
    st.info(f"No runs to show yet. {what} on the Train page.", icon=":material/info:")
    st.page_link(page("train"), label="Go to Train", icon=PAGES["train"].icon)


def run_app() -> None:
    """Called by a page file that Streamlit ran by itself (see the module's docstring). Not
    st.rerun: a rerun would drop the click or upload that came with this run."""
    runpy.run_path(str(ENTRYPOINT), run_name="__main__")
