"""CIFAR-10, CIFAR-100, STL-10, MNIST and Fashion-MNIST through torchvision's dataset classes.

MNIST and Fashion-MNIST are downloaded by torchvision but read and checked by idx_files.

The CIFAR files are pickles. torchvision unpickles them only after checking every file's
MD5 against the official checksums, and this module never works around that check: a file
that fails it is reported as corrupt, not read.
"""
from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.error import URLError

import numpy as np
import torch
from torchvision import datasets
from torchvision.datasets.utils import check_integrity, extract_archive

from . import idx_files
from .errors import DatasetError
from .registry import dataset_info
from .splits import Loaded

NAMES = ("cifar10", "cifar100", "stl10", "mnist", "fashion-mnist")
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]

# What a failed download or extraction raises; KeyboardInterrupt is deliberately not among them.
_DOWNLOAD_ERRORS = (URLError, OSError, RuntimeError, ValueError, EOFError, tarfile.TarError, zlib.error)
# What reading present-but-damaged CIFAR/STL files raises inside torchvision.
_READ_ERRORS = (OSError, RuntimeError, ValueError, EOFError, AssertionError, TypeError, KeyError,
                IndexError, pickle.UnpicklingError)


@dataclass(frozen=True)
class Source:
    """Where a torchvision dataset lives under data_dir, for the checks and the messages."""
    cls: type
    folder: str                        # relative to data_dir: where the extracted files are
    files: tuple[str, ...]             # extracted files the class reads, relative to folder
    checksums: tuple[tuple[str, str], ...]   # (file relative to folder, md5) torchvision verifies
    archives: tuple[tuple[str, str], ...]    # (file relative to data_dir, md5) it extracts from
    urls: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _archive_source(cls, mean, std) -> Source:
    """CIFAR and STL-10: one .tar.gz extracted into cls.base_folder."""
    checksums = tuple((n, md5) for n, md5 in cls.train_list + cls.test_list)
    if hasattr(cls, "meta"):
        checksums += ((cls.meta["filename"], cls.meta["md5"]),)
    return Source(cls, cls.base_folder, tuple(n for n, _ in checksums), checksums,
                  ((cls.filename, cls.tgz_md5),), (cls.url,), mean, std)


def _idx_source(cls, mean, std) -> Source:
    """MNIST-like: four gzipped idx files, downloaded into and read from <ClassName>/raw/."""
    folder = f"{cls.__name__}/raw"
    return Source(cls, folder, tuple(os.path.splitext(n)[0] for n, _ in cls.resources), (),
                  tuple((f"{folder}/{n}", md5) for n, md5 in cls.resources), (cls.mirrors[0],), mean, std)


def _sources() -> dict[str, Source]:
    return {
        "cifar10": _archive_source(datasets.CIFAR10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        "cifar100": _archive_source(datasets.CIFAR100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        # torchvision's integrity check wants unlabeled_X.bin too, although only the
        # labelled splits are used here; it comes in the same archive.
        "stl10": _archive_source(datasets.STL10, (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
        "mnist": _idx_source(datasets.MNIST, (0.1307,), (0.3081,)),
        "fashion-mnist": _idx_source(datasets.FashionMNIST, (0.2860,), (0.3530,)),
    }


def source(name: str) -> Source:
    # Built on each use rather than once at import, so it always agrees with the class attributes.
    return _sources()[name]


def _dir(path: Path) -> str:
    return f"{str(path).rstrip('/')}/"


def _one_line(err: BaseException, limit: int = 200) -> str:
    """The error on one line; torchvision's MNIST joins one error per mirror with newlines."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def missing_message(name: str, root: Path) -> str:
    src, title = source(name), dataset_info(name).title
    archives = [a for a, _ in src.archives]
    if len(archives) == 1:
        where = (f"place {archives[0]} ({src.urls[0]}) in {_dir(root)}, or its contents extracted "
                 f"as {_dir(root / src.folder)}")
    else:
        names = ", ".join(Path(a).name for a in archives)
        where = f"place {names} ({src.urls[0]}) in {_dir(root / src.folder)}"
    system = idx_files.SYSTEM_DIRS.get(name, ())
    if system:
        looked = " or ".join(_dir(Path(d)) for d in system)
        return (f"{title} not found in {_dir(root)} nor {looked}: install Debian's dataset-{name} package "
                f"(apt-get install dataset-{name}), {where}, or run once with network access")
    return f"{title} not found in {_dir(root)}: {where}, or run once with network access"


def _present(src: Source, root: Path) -> bool:
    return all((root / src.folder / f).is_file() for f in src.files)


def _archives_ready(src: Source, root: Path) -> bool:
    return all(check_integrity(str(root / a), md5) for a, md5 in src.archives)


def _corrupt_message(name: str, root: Path, err: BaseException) -> str:
    src, title = source(name), dataset_info(name).title
    fix = (f"delete {_dir(root / src.folder)} and place {', '.join(Path(a).name for a, _ in src.archives)} "
           f"({src.urls[0]}) again, or run once with network access")
    for f, md5 in src.checksums:
        if not check_integrity(str(root / src.folder / f), md5):
            return f"{title} file {root / src.folder / f} is corrupt or incomplete (MD5 mismatch): {fix}"
    return f"{title} files in {_dir(root / src.folder)} could not be read ({_one_line(err)}): {fix}"


def _open(name: str, root: Path, download: bool, progress: Callable[[str], None], **split) -> object:
    src, title = source(name), dataset_info(name).title
    if _present(src, root):
        try:
            return src.cls(str(root), download=False, **split)
        except _READ_ERRORS as err:
            raise DatasetError(_corrupt_message(name, root, err)) from None
    ready = _archives_ready(src, root)
    if not ready and not download:
        raise DatasetError(missing_message(name, root))
    progress(f"extracting {title} in {_dir(root)}" if ready else f"downloading {title} to {_dir(root)}")
    try:
        if ready:
            # Verified archives in place: extract them here so that nothing touches the network.
            for archive, _ in src.archives:
                extract_archive(str(root / archive), str((root / archive).parent))
            return src.cls(str(root), download=False, **split)
        return src.cls(str(root), download=True, **split)
    except _DOWNLOAD_ERRORS as err:
        raise DatasetError(f"{missing_message(name, root)} (download failed: {_one_line(err)})") from None


def _load_idx(name: str, root: Path, download: bool, progress: Callable[[str], None]) -> Loaded:
    """MNIST-like sets: read and checked by idx_files, whatever gzip wrapper the files have."""
    src, title = source(name), dataset_info(name).title
    found = idx_files.locate(name, root / src.folder)
    if found is None:
        if not download:
            raise DatasetError(missing_message(name, root))
        progress(f"downloading {title} to {_dir(root)}")
        try:
            src.cls(str(root), download=True)
        except _DOWNLOAD_ERRORS as err:
            raise DatasetError(f"{missing_message(name, root)} (download failed: {_one_line(err)})") from None
        found = idx_files.locate(name, root / src.folder)
        if found is None:
            raise DatasetError(missing_message(name, root))
    progress(f"reading {title} from {_dir(next(iter(found.values())).parent)}")
    train_x, train_y, test_x, test_y = idx_files.read_split(name, title, found)
    return Loaded(list(src.cls.classes), train_x, train_y, test_x, test_y, src.mean, src.std)


def load_torchvision(name: str, data_dir: str | Path, download: bool,
                     progress: Callable[[str], None]) -> Loaded:
    root = Path(data_dir).expanduser()
    src = source(name)
    if issubclass(src.cls, datasets.MNIST):
        return _load_idx(name, root, download, progress)
    progress(f"loading {dataset_info(name).title} from {_dir(root)}")
    if src.cls is datasets.STL10:
        train, test = (_open(name, root, download, progress, split=s) for s in ("train", "test"))
    else:
        train, test = (_open(name, root, download, progress, train=t) for t in (True, False))
    try:
        train_x, train_y, class_names = _tensors(train)
        test_x, test_y, _ = _tensors(test)
    except (ValueError, TypeError, RuntimeError) as err:
        raise DatasetError(_corrupt_message(name, root, err)) from None
    for y in (train_y, test_y):
        if len(y) and not 0 <= int(y.min()) <= int(y.max()) < len(class_names):
            raise DatasetError(_corrupt_message(name, root, ValueError("labels out of range")))
    return Loaded(class_names, train_x, train_y, test_x, test_y, src.mean, src.std)


def _tensors(ds) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(uint8 (N, C, H, W), int64 (N,), class names) from a torchvision dataset object."""
    if isinstance(ds, datasets.STL10):
        x = torch.from_numpy(np.ascontiguousarray(ds.data))            # stored (N, C, H, W)
        y = torch.from_numpy(ds.labels.astype(np.int64))
        names = list(getattr(ds, "classes", STL10_CLASSES))
    else:
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # CIFAR is NHWC
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        names = list(ds.classes)
    if x.dtype != torch.uint8 or len(x) != len(y):
        raise ValueError(f"unexpected data: {x.dtype} images, {len(x)} images for {len(y)} labels")
    return x, y, names


def local_copy(name: str, data_dir: str | Path) -> Path | None:
    """The folder that holds `name` on this machine without a download, or None: the data dir's
    extracted files or verified archives, or (MNIST-like) a system-wide copy such as Debian's."""
    root = Path(data_dir).expanduser()
    src = source(name)
    if issubclass(src.cls, datasets.MNIST):
        found = idx_files.locate(name, root / src.folder)
        return next(iter(found.values())).parent if found else None
    if _present(src, root) or _archives_ready(src, root):
        return root
    return None
