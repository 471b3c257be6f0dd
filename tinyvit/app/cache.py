"""Cached loading for the app: models and saved samples, once per server process.

Keyed by the run's path and the file's modification time, so a run that trained further
(or was retrained under the same name) is reloaded, and bounded by max_entries, so the
server's memory does not grow as users click through many runs.
"""
from __future__ import annotations

import hashlib

import streamlit as st
import torch

from . import analysis

from ..checkpoint import CHECKPOINT, WEIGHTS, CheckpointError, verify
from ..inference import LoadedRun, load_run
from ..runs import Run, RunError
from ..samples import load_samples

SAMPLES = "samples.safetensors"


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _model(path: str, mtime_ns: int) -> LoadedRun:
    return load_run(path)


@st.cache_resource(max_entries=8, show_spinner=False)
def _samples(path: str, mtime_ns: int):
    return load_samples(path)


def _mtime(run: Run, name: str) -> int | None:
    try:
        return run.file(name).stat().st_mtime_ns
    except OSError:
        return None


def load_model(run: Run) -> LoadedRun:
    """The run's model in eval mode; RunError (user-facing) if it has no usable weights."""
    mtime = _mtime(run, WEIGHTS)
    if mtime is None:
        raise RunError(f"{run.name} has no trained weights yet: wait until its first epoch ends")
    return _model(str(run.path.resolve()), mtime)


@st.cache_resource(max_entries=64, show_spinner=False)
def _explanation(model_key: tuple, image_digest: str, method: str, layer: int, head: int | None,
                 _loaded: LoadedRun, _x: torch.Tensor) -> analysis.Explanation:
    return analysis.explain(_loaded, _x, method, layer, head)


def explain(loaded: LoadedRun, x: torch.Tensor, method: str, layer: int = -1,
            head: int | None = None) -> analysis.Explanation:
    """analysis.explain, once per model, image and map settings: moving the opacity or
    changing the colour map only redraws the overlay."""
    return _explanation(_model_key(loaded), _digest(x), method, layer, head, loaded, x)


@st.cache_resource(max_entries=64, show_spinner=False)
def _explanations(model_key: tuple, image_digest: str, methods: tuple[str, ...], target: int | None,
                  layer: int, head: int | None, _loaded: LoadedRun, _x: torch.Tensor):
    return analysis.explain_all(_loaded, _x, list(methods), target, layer, head)


def explain_all(loaded: LoadedRun, x: torch.Tensor, methods: list[str], target: int | None = None,
                layer: int = -1, head: int | None = None):
    """analysis.explain_all, once per model, image and map settings (see `explain`)."""
    return _explanations(_model_key(loaded), _digest(x), tuple(methods), target, layer, head, loaded, x)


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _model_key(loaded: LoadedRun) -> tuple:
    try:  # new weights (a run that trained further) are a new model
        return (str(loaded.path), (loaded.path / WEIGHTS).stat().st_mtime_ns)
    except OSError:
        return (str(loaded.path), id(loaded.model))


def load_run_samples(run: Run) -> dict | None:
    """The test images saved with a finished run (None before the run finished)."""
    mtime = _mtime(run, SAMPLES)
    return None if mtime is None else _samples(str(run.file(SAMPLES).resolve()), mtime)


@st.cache_data(max_entries=4, show_spinner="Checking the dataset zip…")
def _zip_check(file_id: str, img_size: int | None, _data: bytes, filename: str) -> dict:
    from ..training.config import ConfigError
    from ..data import DatasetError
    from .jobs import check_zip_dataset
    try:
        return check_zip_dataset(_data, filename, img_size)
    except (ConfigError, DatasetError) as err:
        # Kept as a result, not raised, so a bad zip is not re-read on every rerun.
        return {"error": str(err)}


def check_zip_upload(upload, img_size: int | None) -> dict:
    """The dataset summary of an uploaded zip (see jobs.check_zip_dataset), or {"error": message}.
    Keyed by the upload's id: each upload is unpacked and decoded once, not on every click."""
    return _zip_check(upload.file_id, img_size, upload.getvalue(), upload.name)


@st.cache_data(max_entries=16, show_spinner=False)
def _checkpoint_problem(path: str, mtime_ns: int) -> str | None:
    try:
        verify(path)
    except CheckpointError as err:
        return str(err).replace(path, "the checkpoint").replace("checkpoint the checkpoint", "the checkpoint")
    return None


def checkpoint_problem(run: Run) -> str | None:
    """Why `run` cannot be resumed from its checkpoint, or None when it can. Checked once per
    version of the file (the checksum reads the whole file)."""
    mtime = _mtime(run, CHECKPOINT)
    if mtime is None:
        # Weights come after the checkpoint: none yet means it stopped in its first epoch and
        # restarts from epoch 1; weights without one mean the checkpoint was lost.
        return "its checkpoint is missing, so it cannot continue" if run.has_weights() else None
    return _checkpoint_problem(str(run.file(CHECKPOINT).resolve()), mtime)
