"""Dropout for the TinyViT blocks: the same random function as `F.dropout`, with cheaper masks on CPU.

Why not `F.dropout` on CPU. A profile of one TinyViT training step (slides' CIFAR-10 table,
batch 64, 2-core Xeon) put about 39% of the step in `aten::bernoulli_` plus ~12% in the
element-wise multiplies around it: per step the 24 dropout sites draw 32M Bernoulli numbers,
and torch's CPU `bernoulli_` costs ~5 ns per element (10-13 ms for the 2.16M-element attention
mask of one layer), then `_dropout_impl` divides the float mask by the keep rate and multiplies.

What this file does instead, per call (figures for that 2.16M-element mask, same machine):
  * 16 random bits per element from NumPy's SFC64 generator (`random_raw`, 64 bits per draw,
    read as four int16): 0.8 ms.
  * keep where the int16 is below a threshold: exactly `round(keep * 65536)` of the 65,536
    values are kept, so the keep probability is within 2**-17 (7.6e-6) of 1 - p: 0.23 ms.
  * the kept/dropped booleans become the float mask {0, 1/keep_prob} in one pass: 0.5 ms.
  Total ~1.5 ms against ~13 ms for `bernoulli_` + `div_` alone, and it runs on one thread, so
  it does not stall when the other core is busy (torch's 2-thread element-wise kernels did,
  by 5-15 ms per op, on the shared development machine).

The output is `x * mask`; autograd keeps only the mask, so the gradient is `grad * mask`.
The SFC64 seed is drawn from torch's global generator, so `torch.manual_seed` (the engine
reseeds every epoch) makes the masks reproducible, exactly as with `F.dropout`. A thread
that runs part of a batch (tinyvit.training.step) draws from its own generator instead
(`use_generator`): threads reaching the global one in a varying order would not be.

On other devices (CUDA has a fused dropout kernel), under torch.compile, for dtypes other than
float32, or when the keep rate cannot be represented, it is plain `F.dropout`.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BITS = 16
LEVELS = 1 << BITS  # 65,536 equally likely int16 values


def keep_threshold(p: float) -> tuple[int, float, float]:
    """(int16 threshold, keep probability actually used, scale = 1 / that probability).

    An element is kept when its uniform int16 is below the threshold."""
    kept_values = round((1.0 - p) * LEVELS)
    keep_prob = kept_values / LEVELS
    scale = 1.0 / keep_prob if kept_values else 0.0
    return kept_values - LEVELS // 2, keep_prob, scale


_local = threading.local()


@contextmanager
def use_generator(generator: torch.Generator):
    """Within the block, this thread's masks are seeded from `generator`."""
    previous = getattr(_local, "generator", None)
    _local.generator = generator
    try:
        yield generator
    finally:
        _local.generator = previous


def _seed() -> int:
    # One draw from torch's CPU generator (this thread's, else the default one):
    # reproducible under torch.manual_seed.
    g = getattr(_local, "generator", None)
    return int(torch.randint(0, 2 ** 62, (), dtype=torch.int64, generator=g))


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A float32 CPU tensor of `shape`: 1/keep_prob with probability keep_prob, else 0."""
    threshold, _, scale = keep_threshold(p)
    n = 1
    for s in shape:
        n *= int(s)
    words = np.random.SFC64(_seed()).random_raw((n + 3) // 4)  # 4 × 16 random bits per word
    keep = np.less(words.view(np.int16)[:n], threshold)
    mask = np.multiply(keep, np.float32(scale), dtype=np.float32)
    return torch.from_numpy(mask).view(shape)


def fast_path(x: torch.Tensor, p: float) -> bool:
    """Whether `dropout` uses the NumPy masks (CPU float32, eager, representable keep rate)."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.compiler.is_compiling():
        return False
    return 0 < round((1.0 - p) * LEVELS) < LEVELS


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if not fast_path(x, p):
        return F.dropout(x, p, training=True)
    return x * dropout_mask(x.shape, p)


class FastDropout(nn.Module):
    """F.dropout, or `dropout` above once `fast` is on (TinyViT.fast_training, the training path)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast:
            return dropout(x, self.p, self.training)
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
