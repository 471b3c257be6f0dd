"""MNIST and Fashion-MNIST from their four idx files, checked by what they hold.

torchvision checks the MD5 of the *gzipped* files. Debian's `dataset-fashion-mnist` package
recompressed them, so their MD5 differs from torchvision's list although every image is the
same. Here a file is accepted when its decompressed bytes are right: the idx header (kind,
count, 28x28), the length, the label range and, where the official file's SHA-256 is known,
that checksum. A file that is present but wrong is reported as such, never as "not found".
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError

IMAGES, LABELS = 0x0803, 0x0801          # idx magic numbers: uint8 3-d images, uint8 1-d labels
SIDE = 28


@dataclass(frozen=True)
class IdxFile:
    stem: str          # file name without .gz
    magic: int
    count: int         # images or labels in the official file


FILES = (IdxFile("train-images-idx3-ubyte", IMAGES, 60_000), IdxFile("train-labels-idx1-ubyte", LABELS, 60_000),
         IdxFile("t10k-images-idx3-ubyte", IMAGES, 10_000), IdxFile("t10k-labels-idx1-ubyte", LABELS, 10_000))

# SHA-256 of the decompressed official files, taken from Debian's dataset-fashion-mnist (its
# images and labels are Zalando's). MNIST is checked by header, length and labels only.
DIGESTS: dict[str, dict[str, str]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "mnist": {},
}

# Where a Debian package puts the files; looked at after the data dir.
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
    "mnist": (),
}


def candidate_dirs(name: str, folder: Path) -> list[Path]:
    """The data dir's own folder first, then the system-wide ones."""
    return [folder, *(Path(d) for d in SYSTEM_DIRS.get(name, ()))]


def files_in(directory: Path) -> dict[str, Path] | None:
    """{stem: path} when all four files are in `directory` (plain or .gz), else None."""
    found = {}
    for f in FILES:
        plain, packed = directory / f.stem, directory / f"{f.stem}.gz"
        path = plain if plain.is_file() else packed if packed.is_file() else None
        if path is None:
            return None
        found[f.stem] = path
    return found


def locate(name: str, folder: Path) -> dict[str, Path] | None:
    for directory in candidate_dirs(name, folder):
        found = files_in(directory)
        if found:
            return found
    return None


def _mismatch(title: str, path: Path, what: str) -> DatasetError:
    return DatasetError(f"{title} file {path} was found but its contents do not match the official file: {what}")


def _read(title: str, path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _mismatch(title, path, f"not a readable gzip file ({err})") from None
    except OSError as err:
        raise DatasetError(f"{title} file {path} could not be read: {err.strerror or err}") from None


def _parse(title: str, path: Path, data: bytes, spec: IdxFile, digest: str | None) -> np.ndarray:
    kind = "images" if spec.magic == IMAGES else "labels"
    header = 16 if spec.magic == IMAGES else 8
    if len(data) < header:
        raise _mismatch(title, path, f"{len(data)} bytes, too short for an idx header"
                        + (" (the file is empty)" if not data else ""))
    magic, count = struct.unpack(">II", data[:8])
    if magic != spec.magic:
        other = {IMAGES: "images", LABELS: "labels"}.get(magic)
        raise _mismatch(title, path, f"it holds {other}, not {kind}" if other else
                        f"unknown idx header {magic:#010x}")
    if count != spec.count:
        raise _mismatch(title, path, f"its header counts {count:,} {kind}, expected {spec.count:,}")
    size = SIDE * SIDE if spec.magic == IMAGES else 1
    if spec.magic == IMAGES:
        rows, cols = struct.unpack(">II", data[8:16])
        if (rows, cols) != (SIDE, SIDE):
            raise _mismatch(title, path, f"images of {rows}x{cols}, expected {SIDE}x{SIDE}")
    if len(data) != header + count * size:
        raise _mismatch(title, path, f"{len(data) - header:,} bytes of {kind} where the header promises "
                        f"{count * size:,} (truncated or padded)")
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise _mismatch(title, path, "the SHA-256 of its decompressed bytes differs (damaged or a different data set)")
    values = np.frombuffer(data, dtype=np.uint8, offset=header)
    if spec.magic == LABELS and values.size and int(values.max()) > 9:
        raise _mismatch(title, path, f"label {int(values.max())} is outside 0-9")
    return values.reshape(count, 1, SIDE, SIDE) if spec.magic == IMAGES else values


def read_split(name: str, title: str, found: dict[str, Path]) -> tuple[torch.Tensor, ...]:
    """(train_x, train_y, test_x, test_y) as uint8 (N, 1, 28, 28) images and int64 labels."""
    digests = DIGESTS.get(name, {})
    arrays = []
    for spec in FILES:
        path = found[spec.stem]
        arrays.append(_parse(title, path, _read(title, path), spec, digests.get(spec.stem)))
    train_x, train_y, test_x, test_y = arrays
    return (torch.from_numpy(train_x.copy()), torch.from_numpy(train_y.astype(np.int64)),
            torch.from_numpy(test_x.copy()), torch.from_numpy(test_y.astype(np.int64)))
