"""Classification metrics, as the slides report them, computed by scikit-learn."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, matthews_corrcoef,
                             precision_recall_fscore_support, precision_score, recall_score)

# The slides' table, in the slides' column order.
METRIC_NAMES = ("accuracy", "f1", "recall", "mcc", "precision")
METRIC_TITLES = {"accuracy": "Accuracy", "f1": "F1", "recall": "Recall", "mcc": "MCC",
                 "precision": "Precision"}


def classification_metrics(y_true, y_pred, num_classes: int) -> dict[str, float]:
    """Accuracy, macro F1/recall/precision and MCC as fractions.

    `labels=range(K)` keeps classes absent from a small split in the macro average,
    and `zero_division=0` scores them 0 instead of warning.
    """
    labels = list(range(num_classes))
    kw = dict(labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, **kw)),
        "recall": float(recall_score(y_true, y_pred, **kw)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, **kw)),
    }


def per_class_report(y_true, y_pred, class_names: list[str]) -> list[dict]:
    labels = list(range(len(class_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return [
        {"class": name, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
         "support": int(s[i])}
        for i, name in enumerate(class_names)
    ]


def confusion(y_true, y_pred, num_classes: int) -> list[list[int]]:
    """K×K counts, rows = true class, columns = predicted class."""
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes))).astype(int).tolist()


def full_report(y_true, y_pred, class_names: list[str]) -> dict:
    """Everything test_metrics.json holds."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = len(class_names)
    return {
        **classification_metrics(y_true, y_pred, k),
        "confusion_matrix": confusion(y_true, y_pred, k),
        "per_class": per_class_report(y_true, y_pred, class_names),
        "class_names": list(class_names),
        "num_samples": int(len(y_true)),
    }


def format_table(rows: list[tuple[str, dict]], title: str = "") -> str:
    """The slides' table in plain text: one row per (label, metrics), values in percent."""
    head = f"{'':<24}" + "".join(f"{METRIC_TITLES[m]:>11}" for m in METRIC_NAMES)
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for label, m in rows:
        lines.append(f"{label:<24}" + "".join(f"{100 * m[k]:>11.2f}" for k in METRIC_NAMES))
    return "\n".join(lines)
