"""What each dataset is: the table the CLI, the trainer and the app choose from."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import DatasetError


@dataclass(frozen=True)
class DatasetInfo:
    name: str            # registry key
    title: str           # for display, e.g. "CIFAR-10"
    num_classes: int     # 0 where only loading tells (imagefolder)
    img_size: int        # side of the square images as loaded by default
    in_chans: int        # 1 or 3
    augment: str         # default augmentation policy (see tinyvit.data.augment.POLICIES)
    default_epochs: int
    offline: bool        # True when nothing ever has to be downloaded
    description: str


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("cifar10", "CIFAR-10", 10, 32, 3, "cifar", 100, False,
                "60,000 colour photos of 10 classes (airplane, cat, ship, ...) at 32x32."),
    DatasetInfo("cifar100", "CIFAR-100", 100, 32, 3, "cifar", 100, False,
                "60,000 colour photos of 100 fine-grained classes at 32x32."),
    DatasetInfo("stl10", "STL-10", 10, 96, 3, "stl", 100, False,
                "13,000 labelled colour photos of 10 classes at 96x96 (5,000 train / 8,000 test)."),
    DatasetInfo("mnist", "MNIST", 10, 28, 1, "shift", 10, False,
                "70,000 handwritten digits, white on black, at 28x28."),
    DatasetInfo("fashion-mnist", "Fashion-MNIST", 10, 28, 1, "shift-flip", 10, False,
                "70,000 grayscale photos of 10 kinds of clothing at 28x28."),
    DatasetInfo("digits", "Digits (scikit-learn)", 10, 16, 1, "shift", 40, True,
                "1,797 small handwritten digits bundled with scikit-learn, upsampled to 16x16."),
    DatasetInfo("shapes", "Shapes (generated)", 6, 32, 3, "cifar", 20, True,
                "Generated coloured shapes (circle, square, triangle, cross, ring, star) with object masks."),
    DatasetInfo("imagefolder", "Image folder", 0, 32, 3, "cifar", 30, True,
                "Your own images: a folder or .zip with one sub-folder per class."),
)}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
