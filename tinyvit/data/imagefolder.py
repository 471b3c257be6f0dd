"""The user's own images: a folder (or a .zip of one) with one sub-folder per class.

Classes are found the way torchvision's ImageFolder finds them (sorted sub-folder names,
images searched recursively inside each), but with checks that turn every problem a user
can upload into a one-line message.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.v2 import functional as TF

from .decode import flatten_alpha, open_upright
from .errors import DatasetError
from .safe_zip import extract_zip
from .splits import Loaded, stratified_holdout

DEFAULT_SIZE = 32
TEST_FRACTION = 0.2
TEST_SEED = 0  # fixed, not the run's seed: every run on the same folder is scored on the same images
# Without train/ and test/ folders every class is cut three ways: train, validation, test.
MIN_PER_CLASS = 3


@dataclass
class Scan:
    class_names: list[str]
    files: list[list[Path]]               # per class, sorted
    loose_images: int = 0                 # images lying directly in the folder, outside any class
    ignored: int = 0                      # files that are not images by their extension
    ignored_examples: list[str] = field(default_factory=list)


def load_imagefolder(path: str | Path | None, img_size: int | None,
                     progress: Callable[[str], None]) -> Loaded:
    if path is None or str(path) == "":
        raise DatasetError("the imagefolder dataset needs a path: a folder with one sub-folder "
                           "per class, or a .zip of one")
    path = Path(path).expanduser()
    size = img_size or DEFAULT_SIZE
    if path.is_dir():
        return _load_tree(path, size, progress)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    # Everything is decoded into memory, so the unpacked copy is only needed while loading.
    tmp = Path(tempfile.mkdtemp(prefix="tinyvit-zip-"))
    try:
        progress(f"unpacking {path.name}")
        extract_zip(path, tmp)
        return _load_tree(tmp, size, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _visible(entry: os.DirEntry | Path) -> bool:
    return not entry.name.startswith(".") and entry.name != "__MACOSX"


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(visible sub-folders, visible files), each sorted by name."""
    dirs, files = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if _visible(entry):
                (dirs if entry.is_dir() else files).append(Path(entry.path))
    return sorted(dirs), sorted(files)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS


def _descend(root: Path) -> Path:
    """Skip folders that only wrap the dataset (a zip of "mydata/cat/..., mydata/dog/...").

    A lone folder holding only files is a class, not a wrapper, and is kept.
    """
    while True:
        dirs, files = _entries(root)
        if len(dirs) != 1 or any(_is_image(f) for f in files) or not _entries(dirs[0])[0]:
            return root
        root = dirs[0]


def _scan(folder: Path, top: Path) -> Scan:
    dirs, files = _entries(folder)
    scan = Scan([d.name for d in dirs], [], loose_images=sum(_is_image(f) for f in files))
    for f in files:
        if not _is_image(f):
            scan.ignored += 1
            scan.ignored_examples.append(str(f.relative_to(top)))
    for d in dirs:
        images = []
        for base, subdirs, names in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith(".") and s != "__MACOSX")
            for name in sorted(names):
                if name.startswith("."):
                    continue
                f = Path(base) / name
                if _is_image(f):
                    images.append(f)
                else:
                    scan.ignored += 1
                    scan.ignored_examples.append(str(f.relative_to(top)))
        scan.files.append(images)
    return scan


def _check(scan: Scan, where: str, min_per_class: int, needed_for: str) -> None:
    total = sum(len(f) for f in scan.files) + scan.loose_images
    if total == 0:
        ext = ", ".join(IMG_EXTENSIONS)
        raise DatasetError(f"no images found in {where} ({scan.ignored} non-image files ignored; "
                           f"image files end in {ext})")
    n = len(scan.class_names)
    if n < 2:
        found = f"found 1: {scan.class_names[0]!r}" if n == 1 else "found none (images go in one sub-folder per class)"
        raise DatasetError(f"{where} needs at least 2 class folders, {found}")
    for name, files in zip(scan.class_names, scan.files):
        if not files:
            raise DatasetError(f"class folder {name!r} in {where} has no images")
        if len(files) < min_per_class:
            raise DatasetError(f"class folder {name!r} in {where} has {len(files)} image(s); at least "
                               f"{min_per_class} are needed (for {needed_for})")


def _load_tree(top: Path, size: int, progress: Callable[[str], None]) -> Loaded:
    root = _descend(top)
    dirs = {d.name: d for d in _entries(root)[0]}
    if "train" in dirs and "test" in dirs:
        others = sorted(set(dirs) - {"train", "test"})
        if others:
            progress(f"using train/ and test/; ignoring folder(s): {', '.join(others)}")
        train, test = _scan(dirs["train"], top), _scan(dirs["test"], top)
        _check(train, "train/", 2, "training and validation")
        _check(test, "test/", 1, "test")
        unknown = [c for c in test.class_names if c not in train.class_names]
        if unknown:
            raise DatasetError(f"test/ has class folder {unknown[0]!r} that train/ does not have")
        _report_ignored(train, test, progress=progress)
        class_names = train.class_names
        train_x, train_y = _decode_all(train, class_names, size, top, progress)
        test_x, test_y = _decode_all(test, class_names, size, top, progress)
        return Loaded(class_names, train_x, train_y, test_x, test_y)

    scan = _scan(root, top)
    _check(scan, _where(root, top), MIN_PER_CLASS, "training, validation and test")
    _report_ignored(scan, progress=progress)
    x, y = _decode_all(scan, scan.class_names, size, top, progress)
    train_idx, test_idx = stratified_holdout(y.numpy(), TEST_FRACTION, np.random.default_rng(TEST_SEED),
                                             scan.class_names, "test")
    return Loaded(scan.class_names, x[train_idx], y[train_idx], x[test_idx], y[test_idx])


def _where(root: Path, top: Path) -> str:
    rel = root.relative_to(top)
    return "the top folder" if rel == Path(".") else f"{rel.as_posix()}/"


def _report_ignored(*scans: Scan, progress: Callable[[str], None]) -> None:
    ignored = sum(s.ignored for s in scans)
    loose = sum(s.loose_images for s in scans)
    if ignored:
        examples = [e for s in scans for e in s.ignored_examples][:3]
        progress(f"ignored {ignored} non-image file(s), e.g. {', '.join(examples)}")
    if loose:
        progress(f"ignored {loose} image(s) outside the class folders")


def _decode_all(scan: Scan, class_names: list[str], size: int, top: Path,
                progress: Callable[[str], None]) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [(f, class_names.index(name)) for name, files in zip(scan.class_names, scan.files) for f in files]
    x = torch.empty((len(pairs), 3, size, size), dtype=torch.uint8)
    for i, (f, _) in enumerate(pairs):
        x[i] = decode_image(f, size, f.relative_to(top).as_posix())
        if (i + 1) % 1000 == 0:
            progress(f"decoded {i + 1:,} of {len(pairs):,} images")
    return x, torch.tensor([label for _, label in pairs], dtype=torch.int64)


def decode_image(file: Path, size: int, shown: str) -> torch.Tensor:
    """uint8 (3, size, size): upright (EXIF), transparency flattened onto white, squashed to a
    square like the app does with an uploaded image (tinyvit.inference), so both agree."""
    try:
        img = flatten_alpha(open_upright(file)).convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(f"image {shown} has too many pixels: refused as a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise DatasetError(f"cannot decode image {shown}: not an image format PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot decode image {shown}: damaged or truncated ({err})") from None
    return TF.resize(TF.pil_to_tensor(img), [size, size], antialias=True)
