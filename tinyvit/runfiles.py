"""Reading a run folder's JSON files, checked in one place.

A run folder may be damaged (a crash, a hand edit, a Hub repo made by something else).
Each reader returns what can be trusted plus a list of problems in words; a value whose
type is not what the app expects is never passed on, so a damaged run shows what is wrong
with it instead of breaking a page, and the other runs are unaffected.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, Callable

# "pruned": a sweep's pruner ended the run early (its checkpoint is usable, like a stopped run's).
STATES = ("queued", "running", "finished", "stopped", "failed", "diverged", "pruned")
METRIC_NAMES = ("accuracy", "f1", "recall", "mcc", "precision")
MISSING = object()


def _whole(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _text(v) -> bool:
    return isinstance(v, str)


def _maybe(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _dict_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(check(x) for x in v.values())


# key -> (check, what it should be), for the keys the app reads.
CONFIG = {
    "dataset": (_text, "a dataset name"), "model": (_text, "a model name"),
    "epochs": (_maybe(_whole), "a whole number"), "batch_size": (_maybe(_whole), "a whole number"),
    "lr": (_maybe(_number), "a number"), "threads": (_maybe(_whole), "a whole number"),
    "class_names": (_list_of(_text), "a list of names"), "num_classes": (_whole, "a whole number"),
    "img_size": (_maybe(_whole), "a whole number"), "in_chans": (_whole, "a whole number"),
    "mean": (_list_of(_number), "a list of numbers"), "std": (_list_of(_number), "a list of numbers"),
    "num_params": (_whole, "a whole number"), "model_hparams": (lambda v: isinstance(v, dict), "an object"),
    "dataset_title": (_text, "text"), "sizes": (_dict_of(_whole), "an object of whole numbers"),
}
REQUIRED_CONFIG = ("dataset", "model")
STATUS = {
    "state": (lambda v: v in STATES, "one of " + ", ".join(STATES)),
    "pid": (_maybe(_whole), "a process id"), "pid_start": (_maybe(_text), "text"),
    "epoch": (_maybe(_whole), "a whole number"), "epochs": (_maybe(_whole), "a whole number"),
    "batch": (_maybe(_whole), "a whole number"), "batches": (_maybe(_whole), "a whole number"),
    "error": (_maybe(_text), "text"), "message": (_maybe(_text), "text"),
    "created_at": (_maybe(_number), "a time"), "updated_at": (_maybe(_number), "a time"),
    "epoch_eta_seconds": (_maybe(_number), "a number"),
}
TEST_METRICS = {
    **{name: (_number, "a number") for name in METRIC_NAMES},
    "num_samples": (_whole, "a whole number"),
    "confusion_matrix": (_list_of(_list_of(_whole)), "a list of rows of whole numbers"),
    "per_class": (_list_of(lambda d: isinstance(d, dict) and _text(d.get("class"))
                           and all(_number(d.get(k)) for k in ("precision", "recall", "f1"))),
                  "a list of per-class objects"),
}
METRIC_ROW_NUMBERS = ("train_loss", "train_accuracy", "val_loss", "lr", "epoch_seconds",
                      "images_per_second", *(f"val_{m}" for m in METRIC_NAMES))


def read_json(path: Path) -> tuple[Any, str | None]:
    """(value, None), or (MISSING, why) for a missing or unreadable file."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return MISSING, f"{path.name} is missing"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return MISSING, f"{path.name} is not valid JSON"
    except OSError as err:
        return MISSING, f"{path.name} cannot be read ({err.strerror})"


def _bad_fields(obj: dict, schema: dict, where: str) -> list[str]:
    return [f"{where}: {key!r} should be {what}, got {_short(obj[key])}"
            for key, (check, what) in schema.items() if key in obj and not check(obj[key])]


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(path: Path) -> tuple[dict | None, list[str]]:
    value, problem = read_json(path)
    if problem:
        return None, [problem]
    if not isinstance(value, dict):
        return None, [f"{path.name} is not a JSON object"]
    return value, []


def read_config(path: Path) -> tuple[dict | None, list[str]]:
    """config.json, or None with the reasons it cannot be used."""
    cfg, problems = _object(path)
    if cfg is None:
        return None, problems
    problems = [f"config.json lacks {key!r}" for key in REQUIRED_CONFIG if key not in cfg]
    problems += _bad_fields(cfg, CONFIG, "config.json")
    return (None if problems else cfg), problems


def read_status(path: Path) -> tuple[dict | None, list[str]]:
    """status.json with wrongly typed fields dropped; None if it has no usable state."""
    st, problems = _object(path)
    if st is None:
        return None, problems
    if "state" not in st:
        return None, ["status.json has no state"]
    if st["state"] not in STATES:
        return None, [f"status.json has an unknown state {_short(st['state'])}".replace('"', "'")]
    problems = _bad_fields(st, STATUS, "status.json")
    return {k: v for k, v in st.items() if k not in STATUS or STATUS[k][0](v)}, problems


def read_metrics(path: Path) -> tuple[list[dict], list[str]]:
    """metrics.jsonl's well-formed rows; a last line without its newline is still being written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as err:
        return [], [f"metrics.jsonl cannot be read ({err})"]
    rows, problems = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number < len(lines):  # not the unfinished last line
                problems.append(f"metrics.jsonl line {number} is not valid JSON")
            continue
        if not isinstance(row, dict):
            problems.append(f"metrics.jsonl line {number} is not a JSON object")
            continue
        bad = [f"{key!r} should be a whole number" for key in ("epoch",) if not _whole(row.get("epoch"))]
        bad += [f"{key!r} should be a number" for key in METRIC_ROW_NUMBERS
                if key in row and not _maybe(_number)(row[key])]
        if bad:
            problems.append(f"metrics.jsonl line {number}: " + ", ".join(bad))
            continue
        rows.append(row)
    return rows, problems


def read_test_metrics(path: Path) -> tuple[dict | None, list[str]]:
    """test_metrics.json, or None (absent until a run finishes, or damaged: then with why)."""
    if not path.exists():
        return None, []
    report, problems = _object(path)
    if report is None:
        return None, problems
    problems = _bad_fields(report, TEST_METRICS, "test_metrics.json")
    return (None if problems else report), problems
