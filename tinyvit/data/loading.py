"""load_dataset: any registered dataset as in-memory uint8 train / validation / test tensors."""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import torchvision_sets
from .digits import load_digits
from .errors import DatasetError
from .imagefolder import load_imagefolder
from .registry import dataset_info
from .shapes import load_shapes
from .splits import Loaded, Splits, channel_stats, per_class_sample, resize_uint8, stratified_holdout

MIN_IMG_SIZE = 4
MAX_IMG_SIZE = 512
MAX_GENERATED = 20_000   # shapes images per class: 120,000 32x32 images, 369 MB as uint8


def load_dataset(name: str, *, data_dir: str | Path = "data", subset: int | None = None,
                 val_fraction: float = 0.1, seed: int = 0, download: bool = True,
                 img_size: int | None = None, path: str | Path | None = None,
                 generate_per_class: int | None = None,
                 progress: Callable[[str], None] | None = None) -> Splits:
    """Load `name` whole into memory as uint8 (N, C, H, W) CPU tensors.

    The validation split is a seeded, per-class `val_fraction` of the training set (never
    the test set). `subset` keeps that many training images per class, and shrinks the
    validation split in proportion. `generate_per_class` sets how many training images per
    class a generated dataset (shapes) draws, before the validation split. Raises DatasetError with a one-line message for
    anything that stops the dataset loading.
    """
    info = dataset_info(name)
    _check_arguments(info.name, subset, val_fraction, seed, img_size, path)
    if generate_per_class is not None and (info.name != "shapes" or not _whole(generate_per_class)
                                           or not 2 <= generate_per_class <= MAX_GENERATED):
        raise DatasetError("generate_per_class is for the generated 'shapes' dataset, a whole number "
                           f"from 2 to {MAX_GENERATED:,}, got {generate_per_class!r} for {info.name!r}")
    subset = None if subset is None else int(subset)
    img_size = None if img_size is None else int(img_size)
    # numpy's SeedSequence wants a non-negative integer; negative seeds still get their own stream.
    seed = int(seed) % 2 ** 64
    progress = progress or (lambda message: None)

    if info.name in torchvision_sets.NAMES:
        loaded = torchvision_sets.load_torchvision(info.name, data_dir, download, progress)
    elif info.name == "digits":
        loaded = load_digits(img_size)
    elif info.name == "shapes":
        loaded = load_shapes(seed, img_size, **({"train_per_class": int(generate_per_class)}
                                                if generate_per_class else {}))
    else:
        loaded = load_imagefolder(path, img_size, progress)
    return _split(info.name, info.augment, loaded, subset, val_fraction, seed, img_size)


def offline_source(name: str, data_dir: str | Path = "data") -> str | None:
    """Where `name` loads from without a network, for menus: "bundled" for the datasets that
    ship with the code, a folder for files on disk, None when it would have to be downloaded."""
    info = dataset_info(name)
    if info.offline:
        return "bundled"
    found = torchvision_sets.local_copy(info.name, data_dir)
    return str(found) if found else None


def how_to_get(name: str, data_dir: str | Path = "data") -> str:
    """One line on getting `name` onto this machine (the message a failed load would give)."""
    return torchvision_sets.missing_message(dataset_info(name).name, Path(data_dir).expanduser())


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_arguments(name: str, subset, val_fraction, seed, img_size, path) -> None:
    if subset is not None and (not _whole(subset) or subset <= 0):
        raise DatasetError(f"subset must be a positive number of training images per class, got {subset!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    if not _whole(seed):
        raise DatasetError(f"seed must be a whole number, got {seed!r}")
    if img_size is not None and (not _whole(img_size) or not MIN_IMG_SIZE <= img_size <= MAX_IMG_SIZE):
        raise DatasetError(f"img_size must be a whole number from {MIN_IMG_SIZE} to {MAX_IMG_SIZE}, got {img_size!r}")
    if path not in (None, "") and name != "imagefolder":
        raise DatasetError(f"a path is only used by the 'imagefolder' dataset, not by {name!r}")


def _split(name: str, augment: str, loaded: Loaded, subset: int | None, val_fraction: float,
           seed: int, img_size: int | None) -> Splits:
    rng = np.random.default_rng(seed)
    y = loaded.train_y.numpy()
    train_idx, val_idx = stratified_holdout(y, val_fraction, rng, loaded.class_names, "validation")
    if subset is not None:
        train_idx = train_idx[per_class_sample(y[train_idx], subset, rng)]
        val_per_class = max(1, round(subset * val_fraction / (1 - val_fraction)))
        val_idx = val_idx[per_class_sample(y[val_idx], val_per_class, rng)]

    def take(x: torch.Tensor, idx: np.ndarray | None = None) -> torch.Tensor:
        x = x if idx is None else x[torch.from_numpy(idx)]
        return (resize_uint8(x, img_size) if img_size else x).contiguous()

    train_x = take(loaded.train_x, train_idx)
    if loaded.mean is not None and loaded.std is not None:
        mean, std = loaded.mean, loaded.std
    else:
        mean, std = channel_stats(train_x)
    test_x = take(loaded.test_x)
    masks = loaded.test_masks
    assert masks is None or masks.shape[-2:] == test_x.shape[-2:], "masks are drawn at the images' size"
    return Splits(
        name=name, class_names=list(loaded.class_names),
        train_x=train_x, train_y=loaded.train_y[torch.from_numpy(train_idx)].contiguous(),
        val_x=take(loaded.train_x, val_idx), val_y=loaded.train_y[torch.from_numpy(val_idx)].contiguous(),
        test_x=test_x, test_y=loaded.test_y.contiguous(),
        mean=tuple(mean), std=tuple(std), augment=augment, test_masks=masks,
    )
