"""A handful of test images saved with the run, so the app can show galleries and
offer samples to predict on without the dataset at hand (e.g. a run from the Hub)."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from .checkpoint import atomic_write

PER_CLASS = 8
MISTAKES = 32
MAX_BYTES = 3 * 2 ** 20


def confident_mistakes(labels: torch.Tensor, preds: torch.Tensor, confs: torch.Tensor) -> torch.Tensor:
    """Indices of the wrong predictions, the most confident first."""
    wrong = (preds != labels).nonzero().flatten()
    return wrong[confs[wrong].argsort(descending=True)]


def choose(labels: torch.Tensor, preds: torch.Tensor, confs: torch.Tensor, image_bytes: int,
           num_classes: int) -> torch.Tensor:
    """Indices: the most confident mistakes first, then the first few of every class."""
    budget = max(num_classes, MAX_BYTES // max(1, image_bytes))
    wrong = confident_mistakes(labels, preds, confs)[:MISTAKES]
    per_class = min(PER_CLASS, max(1, (budget - len(wrong)) // num_classes))
    picked = [wrong]
    for k in range(num_classes):
        picked.append((labels == k).nonzero().flatten()[:per_class])
    idx = torch.cat(picked)
    # Keep order, drop repeats (a mistake can also be among its class's first images).
    seen, keep = set(), []
    for i in idx.tolist():
        if i not in seen:
            seen.add(i)
            keep.append(i)
    return torch.tensor(keep[:budget], dtype=torch.long)


def save_samples(path: Path, data, preds: torch.Tensor, confs: torch.Tensor) -> None:
    x, y = data.test_x, data.test_y
    idx = choose(y, preds, confs, x[0].numel(), data.num_classes)
    tensors = {"images": x[idx].contiguous(), "labels": y[idx].contiguous(),
               "preds": preds[idx].contiguous(), "confidences": confs[idx].float().contiguous(),
               "indices": idx}
    if getattr(data, "test_masks", None) is not None:
        tensors["masks"] = data.test_masks[idx].to(torch.uint8).contiguous()
    from safetensors.torch import save_file
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp)))


def load_samples(path: Path) -> dict[str, torch.Tensor] | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except Exception:  # a damaged samples file only hides the gallery
        return None


def first_right(samples: dict[str, torch.Tensor]) -> int:
    """Position of the first saved test image the model got right (0 if it got none right): the
    pages open on it, so a first look shows the model working, not its worst mistake."""
    right = (samples["labels"] == samples["preds"]).nonzero()
    return int(right[0, 0]) if len(right) else 0
