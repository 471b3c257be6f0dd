"""The run store: one directory per run, written by train.py and read by the app.

    config.json        what was trained: dataset, model + hyperparameters, settings,
                       class names, image size, channels, normalisation
    status.json        state, pid, epoch/batch progress, error message (rewritten atomically)
    metrics.jsonl      one JSON object per finished epoch
    test_metrics.json  the final test-set report
    predictions.csv    one row per test image: index,label,pred,confidence
    samples.safetensors  a few test images (uint8) for galleries, with their labels
    model.safetensors  the latest complete epoch's weights (what predictions use)
    checkpoint.safetensors  weights + optimizer state + history, for --resume
    STOP               present = please stop after the current batch
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT, WEIGHTS, atomic_write_text

# "pruned": a sweep's pruner ended the run early (its checkpoint is usable, like a stopped run's).
STATES = ("queued", "running", "finished", "stopped", "failed", "diverged", "pruned")
ACTIVE = ("queued", "running")
READONLY_MARK = ".readonly"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunError(RuntimeError):
    """A run folder that is missing, not a run, or cannot be changed; user-facing."""


# Small trained runs shipped with the repository (read-only), so every page has
# something to show before the user trains anything.
DEMO_ROOT = Path(__file__).resolve().parent.parent / "demo_runs"


def default_root() -> Path:
    return Path(os.environ.get("TINYVIT_RUNS", "runs"))


def run_roots() -> tuple[Path, ...]:
    """Where runs are listed from: the user's runs folder, then the demo runs."""
    demo = os.environ.get("TINYVIT_DEMO_RUNS", str(DEMO_ROOT))
    return (default_root(),) + ((Path(demo),) if demo else ())


def check_run_name(name: str) -> str:
    """Run names become folder names: letters, digits, '.', '_', '-' only, so they never escape."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise RunError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' (at most 100)")
    return name


def _read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return default


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (finished, not yet reaped by the app that started it) is not running.
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class Run:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        return self.file("config.json").is_file()

    @property
    def readonly(self) -> bool:
        return self.file(READONLY_MARK).exists()

    # -- reading ---------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        cfg = _read_json(self.file("config.json"))
        if not isinstance(cfg, dict):
            raise RunError(f"{self.path} is not a TinyViT Lab run (no readable config.json)")
        return cfg

    def status(self) -> dict[str, Any]:
        """status.json, with a dead process's 'running' shown as 'failed'."""
        st = _read_json(self.file("status.json"), {}) or {}
        st.setdefault("state", "queued")
        if st["state"] in ACTIVE and st.get("pid") and not pid_alive(st.get("pid")):
            st = {**st, "state": "failed",
                  "error": st.get("error") or "the training process ended unexpectedly"}
        return st

    def metrics(self) -> list[dict[str, Any]]:
        rows = []
        try:
            text = self.file("metrics.jsonl").read_text(encoding="utf-8")
        except FileNotFoundError:
            return rows
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being appended
        return rows

    def test_metrics(self) -> dict[str, Any] | None:
        return _read_json(self.file("test_metrics.json"))

    def predictions(self) -> list[dict[str, Any]]:
        try:
            with self.file("predictions.csv").open(encoding="utf-8", newline="") as f:
                return [{"index": int(r["index"]), "label": int(r["label"]), "pred": int(r["pred"]),
                         "confidence": float(r["confidence"])} for r in csv.DictReader(f)]
        except (FileNotFoundError, KeyError, ValueError):
            return []

    def has_weights(self) -> bool:
        return self.file(WEIGHTS).is_file()

    def best(self, key: str = "val_accuracy") -> float | None:
        vals = [m[key] for m in self.metrics() if isinstance(m.get(key), (int, float))]
        return max(vals) if vals else None

    # -- writing (train.py only) ----------------------------------------------
    def write_config(self, cfg: dict[str, Any]) -> None:
        atomic_write_text(self.file("config.json"), json.dumps(cfg, indent=2))

    def write_status(self, **fields: Any) -> dict[str, Any]:
        st = _read_json(self.file("status.json"), {}) or {}
        st.update(fields, updated_at=time.time())
        atomic_write_text(self.file("status.json"), json.dumps(st, indent=2))
        return st

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.file("metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.file("metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_test_metrics(self, report: dict[str, Any]) -> None:
        atomic_write_text(self.file("test_metrics.json"), json.dumps(report, indent=2))

    def write_predictions(self, labels, preds, confidences) -> None:
        lines = ["index,label,pred,confidence"]
        lines += [f"{i},{int(y)},{int(p)},{float(c):.6f}"
                  for i, (y, p, c) in enumerate(zip(labels, preds, confidences))]
        atomic_write_text(self.file("predictions.csv"), "\n".join(lines) + "\n")

    def request_stop(self) -> None:
        self.file("STOP").touch()

    def stop_requested(self) -> bool:
        return self.file("STOP").exists()


def create_run(root: Path | str, name: str, config: dict[str, Any]) -> Run:
    """Make a new run folder with its config, in state 'queued'. Never reuses a folder."""
    root = Path(root)
    run = Run(root / check_run_name(name))
    root.mkdir(parents=True, exist_ok=True)
    try:
        run.path.mkdir()
    except FileExistsError:
        raise RunError(f"a run named {name!r} already exists in {root}") from None
    run.write_config(config)
    run.write_status(state="queued", created_at=time.time())
    return run


def open_run(path: Path | str) -> Run:
    run = Run(Path(path))
    if not run.path.is_dir():
        raise RunError(f"no run at {run.path}")
    if not run.exists:
        raise RunError(f"{run.path} is not a TinyViT Lab run (it has no config.json)")
    return run


def list_runs(*roots: Path | str) -> list[Run]:
    """Runs under the given roots (default: the runs folder and the demo runs), newest first."""
    found: list[Run] = []
    for root in roots or run_roots():
        root = Path(root)
        if not root.is_dir():
            continue
        found += [Run(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]

    def created(run: Run) -> float:
        return (_read_json(run.file("status.json"), {}) or {}).get("created_at", 0.0)

    return sorted(found, key=created, reverse=True)


def delete_run(run: Run) -> None:
    """Delete a run's folder; refused for demo (read-only) runs and while it trains."""
    if run.readonly:
        raise RunError(f"{run.name} is read-only (a demo run or a run loaded from the Hub) and cannot be deleted")
    if run.status()["state"] == "running":
        raise RunError(f"{run.name} is still training: stop it first")
    shutil.rmtree(run.path)


def unique_run_name(root: Path | str, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever does not exist yet."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-.") or "run"
    base = base[:90]
    name, i = base, 2
    while (Path(root) / name).exists():
        name, i = f"{base}-{i}", i + 1
    return check_run_name(name)


def checkpoint_path(run: Run) -> Path:
    return run.file(CHECKPOINT)
