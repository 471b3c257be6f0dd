"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from .splits import Loaded, stratified_holdout

DEFAULT_SIZE = 16
TEST_FRACTION = 0.2
TEST_SEED = 0  # fixed, not the run's seed: every run is scored on the same test images


def load_digits(img_size: int | None) -> Loaded:
    """White strokes on black, upsampled from 8x8; mean and std are left to the training split."""
    from sklearn.datasets import load_digits as sklearn_digits  # import here: sklearn is slow to import

    bunch = sklearn_digits()
    # Pixel values are 0..16 (counts of set bits in a 4x4 block of the original scans).
    x = torch.from_numpy(np.round(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    size = img_size or DEFAULT_SIZE
    x = TF.resize(x, [size, size], antialias=True).contiguous()
    y = np.asarray(bunch.target, dtype=np.int64)
    names = [str(d) for d in range(10)]
    train_idx, test_idx = stratified_holdout(y, TEST_FRACTION, np.random.default_rng(TEST_SEED), names, "test")
    y_t = torch.from_numpy(y)
    return Loaded(names, x[train_idx], y_t[train_idx], x[test_idx], y_t[test_idx])
