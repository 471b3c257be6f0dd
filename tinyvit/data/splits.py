"""The loaded dataset (Splits) and the seeded, stratified ways of cutting it up."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from .errors import DatasetError


@dataclass
class Splits:
    name: str
    class_names: list[str]
    train_x: torch.Tensor   # uint8 (N, C, H, W)
    train_y: torch.Tensor   # int64 (N,)
    val_x: torch.Tensor     # held out of the training set, never the test set
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]  # per channel, of x / 255
    std: tuple[float, ...]
    augment: str
    test_masks: torch.Tensor | None = None  # bool (N_test, H, W): object masks ("shapes" only)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def img_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def in_chans(self) -> int:
        return int(self.train_x.shape[1])


@dataclass
class Loaded:
    """A dataset as its loader produces it: train and test, before the validation split."""
    class_names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...] | None = None   # None: computed from the final training split
    std: tuple[float, ...] | None = None
    test_masks: torch.Tensor | None = None


def stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator,
                       class_names: list[str], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with round(fraction * n) of every class held out.

    Every class keeps at least one image on each side, so no class silently vanishes
    from training or from evaluation.
    """
    kept, held = [], []
    for c in range(len(class_names)):
        idx = np.flatnonzero(y == c)
        if len(idx) == 0:
            continue
        if len(idx) < 2:
            raise DatasetError(f"class {class_names[c]!r} has only 1 image: at least 2 are needed "
                               f"to hold out a {what} image")
        n_held = min(max(int(round(len(idx) * fraction)), 1), len(idx) - 1)
        idx = rng.permutation(idx)
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    # Sorted, so the kept images stay in the order the source had them.
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def per_class_sample(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most `per_class` randomly chosen images of each class."""
    chosen = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        chosen.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(chosen))


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of x / 255, summed in float64 chunks so big sets need little memory."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(x), 4096):
        chunk = x[i:i + 4096].to(torch.float64).div_(255)
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    # A constant channel would give std 0 and a division by zero in normalize().
    std = (total_sq / n - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of a uint8 (N, C, H, W) stack, in chunks to bound memory."""
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, len(x), 2048):
        out[i:i + 2048] = TF.resize(x[i:i + 2048], [size, size], antialias=True)
    return out
