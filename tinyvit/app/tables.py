"""Tables the app shows, assembled from a run's files (no Streamlit, no computation of
metrics: the trainer already wrote them with scikit-learn).

Values stay fractions in the data and become percentages only here, as the slides
print them.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import pandas as pd

from ..metrics import METRIC_NAMES, METRIC_TITLES
from ..models import MODELS
from ..runs import ACTIVE, Run, RunError


def class_name(names: Sequence[str], i: int) -> str:
    """Class `i`'s name, or "class i" where the run names fewer classes."""
    return str(names[i]) if 0 <= i < len(names) else f"class {i}"


def model_title(cfg: dict) -> str:
    """The model's title from the registry, else its name as the run recorded it."""
    return MODELS[cfg["model"]].title if cfg.get("model") in MODELS else cfg.get("model", "?")


def percent(value) -> float | None:
    return None if value is None else 100.0 * float(value)


def best_row(rows: Sequence[dict], key: str = "val_accuracy") -> dict | None:
    scored = [r for r in rows if isinstance(r.get(key), (int, float))]
    return max(scored, key=lambda r: r[key]) if scored else None


def origin(run: Run) -> str:
    """Where a read-only run came from: "demo" (shipped in demo_runs/), "hub" (loaded from
    the Hugging Face Hub); "" for the user's own runs."""
    if not run.readonly:
        return ""
    return "hub" if run.status().get("source") == "hub" else "demo"


def config_or_empty(run: Run) -> dict:
    """config.json for a table row; {} for a damaged one (its problems are shown instead)."""
    try:
        return run.config()
    except RunError:
        return {}


def run_summary(run: Run) -> dict:
    """One line per run for the Home page's table; a damaged run says what is wrong."""
    cfg, st, rows = config_or_empty(run), run.status(), run.metrics()
    test = run.test_metrics() or {}
    best = best_row(rows)
    created = st.get("created_at")
    return {
        "run": run.name,
        "dataset": cfg.get("dataset_title") or cfg.get("dataset", "?"),
        "model": cfg.get("model", "?"),
        "state": st["state"] + (f" ({origin(run)})" if run.readonly else ""),
        "epochs": f"{len(rows)} / {cfg.get('epochs') or '?'}",
        "best val acc %": percent(best["val_accuracy"]) if best else None,
        "test acc %": percent(test.get("accuracy")),
        "parameters": cfg.get("num_params"),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "",
        "problems": "; ".join(run.problems()),
    }


def slides_table(run: Run) -> pd.DataFrame:
    """The slides' table: accuracy, F1, recall, MCC, precision (%) for validation at the
    best epoch and the last epoch, and for the test set (rows present only if known)."""
    rows = run.metrics()
    table: dict[str, dict] = {}
    best = best_row(rows)
    if best:
        table[f"validation, best (epoch {best['epoch']})"] = {m: best.get(f"val_{m}") for m in METRIC_NAMES}
        last = rows[-1]
        table[f"validation, last (epoch {last['epoch']})"] = {m: last.get(f"val_{m}") for m in METRIC_NAMES}
    test = run.test_metrics()
    if test:
        table["test"] = {m: test.get(m) for m in METRIC_NAMES}
    frame = pd.DataFrame.from_dict(table, orient="index", columns=list(METRIC_NAMES))
    frame = frame.apply(lambda col: col.map(percent)).astype(float)
    frame.columns = [METRIC_TITLES[m] for m in METRIC_NAMES]
    frame.index.name = "split"
    return frame


def per_class_frame(test: dict) -> pd.DataFrame:
    """Per-class precision, recall, F1 (%) and support from test_metrics.json."""
    frame = pd.DataFrame(test.get("per_class", []), columns=["class", "precision", "recall", "f1", "support"])
    for col in ("precision", "recall", "f1"):
        frame[col] = frame[col].astype(float) * 100
    return frame.rename(columns={"precision": "precision %", "recall": "recall %", "f1": "F1 %"})


# Per-epoch values stored as fractions (MCC in [-1, 1]); the per-epoch table shows them in %.
EPOCH_PERCENT = ("train_accuracy", "val_accuracy", "val_f1", "val_recall", "val_precision", "val_mcc")


def epochs_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """One row per epoch, scores in % ("val_accuracy %"), like the app's other tables."""
    frame = pd.DataFrame(list(rows))
    for col in EPOCH_PERCENT:
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce") * 100
    return frame.rename(columns={c: f"{c} %" for c in EPOCH_PERCENT})


# Short headers, so the table of several runs fits the page without scrolling sideways.
TEST_SHORT = {"accuracy": "acc", "f1": "F1", "recall": "recall", "mcc": "MCC", "precision": "prec."}


def compare_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: what it is, its best validation accuracy and its test scores (%)."""
    out = []
    for run in runs:
        cfg, rows = config_or_empty(run), run.metrics()
        best, test = best_row(rows), run.test_metrics() or {}
        line = {"run": run.name, "model": cfg.get("model"), "dataset": cfg.get("dataset"),
                "parameters": cfg.get("num_params"), "epochs": len(rows),
                "best val acc": percent(best["val_accuracy"]) if best else None}
        line.update({f"test {TEST_SHORT[m]}": percent(test.get(m)) for m in METRIC_NAMES})
        out.append(line)
    return pd.DataFrame(out).set_index("run")


# Columns of compare_frame where smaller is better; every other numeric column: larger.
LOWER_IS_BETTER = {"parameters"}


def time_left(status: dict, rows: Sequence[dict]) -> float | None:
    """Seconds until a running job ends: the current epoch's ETA plus the remaining epochs
    at the average speed so far (None until something has been timed)."""
    if status.get("state") not in ACTIVE:
        return None
    epochs, current = status.get("epochs"), status.get("epoch")
    eta = status.get("epoch_eta_seconds")
    if not epochs or current is None or eta is None:
        return None
    times = [r["epoch_seconds"] for r in rows if isinstance(r.get("epoch_seconds"), (int, float))]
    per_epoch = sum(times) / len(times) if times else None
    remaining = max(0, int(epochs) - int(current) - 1)
    if remaining and per_epoch is None:
        return None
    return float(eta) + remaining * (per_epoch or 0.0)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"
