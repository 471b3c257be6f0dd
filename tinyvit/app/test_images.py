"""A run's test images for the drill-down views, found the cheapest way that is right.

predictions.csv holds one row per test image, in the test split's order. The images
themselves come from the run's dataset when it loads on this machine without a download
(and still matches the predictions), else from the handful saved in samples.safetensors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import DatasetError, load_dataset
from ..samples import load_samples


@dataclass
class TestImages:
    __test__ = False  # not a pytest test class
    images: torch.Tensor   # uint8 (M, C, H, W)
    positions: np.ndarray  # (M,) test-set index of each image
    complete: bool         # every test image is here (else only the saved samples)

    def __post_init__(self) -> None:
        self._where = {int(p): i for i, p in enumerate(self.positions)}

    def has(self, index: int) -> bool:
        return int(index) in self._where

    def image(self, index: int) -> torch.Tensor:
        return self.images[self._where[int(index)]]

    def available(self, indices: np.ndarray) -> np.ndarray:
        """The given test indices that have an image here, in the same order."""
        return np.array([i for i in indices if int(i) in self._where], dtype=np.int64)


def from_dataset(cfg: dict, labels: np.ndarray) -> TestImages | None:
    """The whole test split, if the dataset loads offline and its labels are the run's."""
    try:
        splits = load_dataset(cfg["dataset"], data_dir=cfg.get("data_dir") or "data",
                              val_fraction=float(cfg.get("val_fraction", 0.1)), seed=int(cfg.get("seed", 0)),
                              download=False, img_size=cfg.get("img_size"), path=cfg.get("data_path"))
    except (DatasetError, KeyError, TypeError, ValueError, OSError):
        return None
    y = splits.test_y.numpy()
    if len(y) != len(labels) or not np.array_equal(y, labels):
        return None  # the dataset on disk is not the one the run was tested on
    return TestImages(splits.test_x, np.arange(len(y)), True)


def from_samples(path) -> TestImages | None:
    samples = load_samples(path)
    if not samples or "indices" not in samples:
        return None
    return TestImages(samples["images"], samples["indices"].numpy().astype(np.int64), False)
