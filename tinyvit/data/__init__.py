"""Datasets as in-memory uint8 tensors, and the per-batch augmentation the trainer applies.

    load_dataset(name, ...) -> Splits     train / validation / test, mean and std, policy
    DATASETS, dataset_info(name)          what can be loaded, for menus and defaults
    offline_source(name), how_to_get(name) whether it loads here without a network, and how to get it
    augment_batch(x, policy), normalize   vectorised batch transforms on any device
"""
from .augment import POLICIES, augment_batch, normalize
from .errors import DatasetError
from .loading import how_to_get, load_dataset, offline_source
from .registry import DATASETS, DatasetInfo, dataset_info
from .splits import Splits

__all__ = ["DATASETS", "DatasetInfo", "Splits", "DatasetError", "load_dataset", "offline_source", "how_to_get", "dataset_info",
           "normalize", "augment_batch", "POLICIES"]
