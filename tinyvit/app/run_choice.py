"""Which runs Compare opens with, whether the chosen runs can be compared, and which of
their settings differ. Plain functions over run folders."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .tables import config_or_empty, origin
from ..runs import Run

# The demo pair Compare prefers, in order: Fashion-MNIST when its demo runs exist.
DEMO_DATASETS = ("fashion-mnist", "digits")
SETTINGS = ("dataset", "model", "epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "schedule",
            "warmup_epochs", "augment", "seed", "subset", "img_size", "val_fraction", "amp", "preset")


def demos_in_order(runs: Sequence[Run]) -> list[Run]:
    """The same runs, the demo runs reordered so that the featured pair leads (Fashion-MNIST,
    then digits, then the rest; a ViT before a CNN): the first run is the one Home shows first
    and Predict opens on. The user's own runs keep their places."""
    def rank(run: Run) -> tuple:
        cfg = config_or_empty(run)
        ds = cfg.get("dataset")
        return (DEMO_DATASETS.index(ds) if ds in DEMO_DATASETS else len(DEMO_DATASETS),
                cfg.get("model_kind") != "vit")
    demos = iter(sorted((r for r in runs if origin(r) == "demo"), key=rank))
    return [next(demos) if origin(r) == "demo" else r for r in runs]


def _task(run: Run) -> tuple:
    cfg = config_or_empty(run)
    return cfg.get("dataset"), tuple(cfg.get("class_names") or ())


def _newest_pair(runs: Sequence[Run]) -> list[Run]:
    """The newest run, with the newest other run of the same dataset and classes."""
    for i, run in enumerate(runs):
        for other in runs[i + 1:]:
            if _task(other) == _task(run):
                return [run, other]
    return []


def default_selection(runs: Sequence[Run]) -> list[Run]:
    """Two finished runs of one dataset, a ViT first (the slides' question is ViT against CNN)."""
    return sorted(_default(runs), key=lambda r: config_or_empty(r).get("model_kind") != "vit")


def _default(runs: Sequence[Run]) -> list[Run]:
    """The user's newest pair of finished runs of one dataset, else the demo pair
    (Fashion-MNIST, else digits), else any newest pair that shares a dataset, else the newest runs."""
    finished = [r for r in runs if r.test_metrics()]
    own = [r for r in finished if not r.readonly]
    demos = [r for r in finished if origin(r) == "demo"]
    for ds in DEMO_DATASETS:
        pair = _newest_pair([r for r in demos if _task(r)[0] == ds])
        if pair and not _newest_pair(own):
            return pair
    return _newest_pair(own) or _newest_pair(finished) or list((finished or list(runs))[:2])


def mismatch(runs: Sequence[Run]) -> str | None:
    """A sentence when the runs were not trained on the same dataset and classes."""
    tasks = {_task(r) for r in runs}
    if len(tasks) <= 1:
        return None
    datasets = sorted({str(t[0]) for t in tasks})
    if len(datasets) > 1:
        return (f"These runs were trained on different datasets ({', '.join(datasets)}): their scores "
                "measure different tasks, so no value is highlighted as the best and images cannot be "
                "compared one by one.")
    return ("These runs share a dataset but not its classes (e.g. other image folders): their scores "
            "are not comparable, so no value is highlighted as the best.")


def _flat(cfg: dict) -> dict:
    out = {k: cfg.get(k) for k in SETTINGS}
    out.update({f"{k}": v for k, v in (cfg.get("model_hparams") or {}).items()})
    return {k: (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in out.items()}


def differing_settings(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run, one column per setting or hyperparameter whose values differ."""
    # Cells become text before pandas sees them: a column of ints with a gap (a CNN has no
    # embed_dim) would otherwise turn into floats ("128.0") and NaN.
    rows = {r.name: {k: "–" if v is None else str(v) for k, v in _flat(config_or_empty(r)).items()}
            for r in runs}
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna("–")
    differs = [c for c in frame.columns if frame[c].nunique() > 1]
    return frame[differs]
