"""From a confusion-matrix cell to its images, and where two runs disagree.

Plain functions over one run's test predictions (predictions.csv: label, prediction and
confidence of every test image), so the views are tested without an app."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runs import Run

OUTCOMES = ("both right", "only A right", "only B right", "both wrong")


@dataclass
class Predictions:
    labels: np.ndarray       # (N,) true class of each test image
    preds: np.ndarray        # (N,) predicted class
    confidences: np.ndarray  # (N,) probability of the predicted class

    def __len__(self) -> int:
        return len(self.labels)


def predictions_of(run: Run) -> Predictions | None:
    """The run's test predictions; None before the run finished (or for a damaged file)."""
    rows = run.predictions()
    if not rows:
        return None
    rows.sort(key=lambda r: r["index"])
    return Predictions(np.array([r["label"] for r in rows], dtype=np.int64),
                       np.array([r["pred"] for r in rows], dtype=np.int64),
                       np.array([r["confidence"] for r in rows], dtype=np.float64))


def cell(p: Predictions, true: int, pred: int) -> np.ndarray:
    """Test indices of the images of class `true` predicted as `pred`, most confident first."""
    idx = np.flatnonzero((p.labels == true) & (p.preds == pred))
    return idx[np.argsort(-p.confidences[idx], kind="stable")]


def comparable(cfg_a: dict, cfg_b: dict, a: Predictions | None, b: Predictions | None) -> str | None:
    """None if both runs were tested on the same images; else why they cannot be compared
    image by image (a sentence for the page)."""
    if a is None or b is None:
        return "Both runs need a test report: pick runs that finished training."
    if cfg_a.get("dataset") != cfg_b.get("dataset"):
        return (f"These runs were tested on different datasets ({cfg_a.get('dataset')} and "
                f"{cfg_b.get('dataset')}), so there are no common images to compare.")
    if list(cfg_a.get("class_names", [])) != list(cfg_b.get("class_names", [])):
        return "These runs have different classes, so their predictions cannot be compared."
    if len(a) != len(b) or not np.array_equal(a.labels, b.labels):
        return (f"These runs were tested on different images ({len(a)} and {len(b)} test images, "
                "e.g. another image size, seed or folder), so they cannot be compared image by image.")
    return None


def outcome_counts(a: Predictions, b: Predictions) -> dict[str, int]:
    """The 2×2 table: both right, only A right, only B right, both wrong."""
    ra, rb = a.preds == a.labels, b.preds == b.labels
    return {"both right": int((ra & rb).sum()), "only A right": int((ra & ~rb).sum()),
            "only B right": int((~ra & rb).sum()), "both wrong": int((~ra & ~rb).sum())}


def disagreements(a: Predictions, b: Predictions) -> np.ndarray:
    """Test indices where the two runs predict different classes, largest confidence gap
    first (the images one model is sure about and the other is not)."""
    idx = np.flatnonzero(a.preds != b.preds)
    gap = np.abs(a.confidences[idx] - b.confidences[idx])
    return idx[np.argsort(-gap, kind="stable")]


def wins_per_class(a: Predictions, b: Predictions, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per true class: how many images only A gets right, and how many only B does."""
    ra, rb = a.preds == a.labels, b.preds == b.labels
    only_a = np.bincount(a.labels[ra & ~rb], minlength=num_classes)[:num_classes]
    only_b = np.bincount(a.labels[~ra & rb], minlength=num_classes)[:num_classes]
    return only_a, only_b


def top_k(probs: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """(class, probability) of the k most probable classes."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [(int(i), float(probs[i])) for i in order]
