"""The sweep's trials as rows (for `status` and the Sweep page), read from the study alone,
so trials trained on other machines show the same figures as local ones."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..runs import Run

STATE_NAMES = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
               TrialState.RUNNING: "running", TrialState.WAITING: "queued"}


def trial_state(t: optuna.trial.FrozenTrial) -> str:
    a = t.user_attrs
    if t.state == TrialState.PRUNED and a.get("skipped"):
        return "skipped"
    if t.state == TrialState.FAIL and a.get("stopped"):
        return "stopped"
    return STATE_NAMES.get(t.state, t.state.name.lower())


def note(t: optuna.trial.FrozenTrial) -> str:
    a = t.user_attrs
    if a.get("skipped"):
        return a["skipped"]
    if a.get("pruned_at"):
        return f"pruned after epoch {a['pruned_at']}"
    if a.get("stopped"):
        return "stopped; `resume` carries it on"
    if a.get("continues") is not None:
        return f"continues trial {a['continues']}"
    if t.state == TrialState.FAIL:
        return a.get("error") or "its worker ended unexpectedly"
    return ""


def best_accuracy(t: optuna.trial.FrozenTrial) -> float | None:
    """The best validation accuracy so far: the objective once finished, else the history."""
    if t.state == TrialState.COMPLETE and t.values:
        return t.values[0]
    hist = [h["val_accuracy"] for h in t.user_attrs.get("history", []) if h.get("val_accuracy") is not None]
    return max(hist) if hist else t.user_attrs.get("best_val_accuracy")


def local_run(t: optuna.trial.FrozenTrial) -> Run | None:
    """The trial's run folder, when it is on this machine."""
    path = t.user_attrs.get("run_dir")
    return Run(Path(path)) if path and Path(path, "config.json").is_file() else None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        acc = best_accuracy(t)
        hist = a.get("history", [])
        rows.append({
            "trial": t.number,
            "state": trial_state(t),
            "best val acc %": None if acc is None else 100 * acc,
            "epochs": len(hist),
            "parameters": a.get("num_params"),
            "img/s": a.get("images_per_second") or (hist[-1].get("images_per_second") if hist else None),
            **{f"p:{k}": v for k, v in t.params.items()},
            "run": a.get("run", ""),
            "host": a.get("host", ""),
            "note": note(t),
        })
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: higher accuracy with at most as many
    parameters (x: parameters, smaller is better; y: accuracy, larger is better)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def accuracy_vs_params(study: optuna.Study) -> list[dict[str, Any]]:
    """Finished trials as (trial, parameters, best val acc %, on the Pareto front)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("num_params")]
    pts = [(float(t.user_attrs["num_params"]), 100 * t.values[0]) for t in done]
    front = set(pareto_front(pts))
    return [{"trial": t.number, "parameters": int(x), "best val acc %": y, "pareto": i in front}
            for i, (t, (x, y)) in enumerate(zip(done, pts))]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table for the terminal."""
    if not rows:
        return "no trials yet"
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1 else f"{v:,.1f}"
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    body = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(b) for b in body])


def machinery_seconds(t: optuna.trial.FrozenTrial) -> float | None:
    """What the sweep added to a trial beyond its train.py process: asking, sampling,
    checking the model, making the run folder, watching, pruning checks and telling."""
    secs = t.user_attrs.get("process_seconds")
    if secs is None or t.datetime_start is None or t.datetime_complete is None:
        return None
    return max(0.0, (t.datetime_complete - t.datetime_start).total_seconds() - secs)
