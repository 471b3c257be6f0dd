"""tinyvit.data: every loader on small files written here in the real on-disk formats,
the splits, the zip checks and the batch augmentation. Nothing here touches the network."""
import gzip
import hashlib
import io
import os
import pickle
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.utils as tv_utils
from PIL import Image
from torchvision import datasets
from torchvision.transforms.v2 import functional as TF

from tinyvit.data import (DATASETS, DatasetError, DatasetInfo, Splits, augment_batch, dataset_info,
                          load_dataset, normalize)
from tinyvit.data import idx_files, safe_zip
from tinyvit.data.augment import jitter


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to download fails the test loudly (AssertionError is not a download error)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")
    monkeypatch.setattr(tv_utils, "download_url", refuse)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- registry

def test_registry_lists_every_dataset_with_its_defaults():
    assert set(DATASETS) == {"cifar10", "cifar100", "stl10", "mnist", "fashion-mnist", "digits",
                             "shapes", "imagefolder"}
    assert all(isinstance(i, DatasetInfo) and i.name == k for k, i in DATASETS.items())
    assert [DATASETS[n].default_epochs for n in ("cifar10", "cifar100", "stl10")] == [100, 100, 100]
    assert (DATASETS["stl10"].img_size, DATASETS["stl10"].augment) == (96, "stl")
    assert (DATASETS["mnist"].in_chans, DATASETS["mnist"].augment) == (1, "shift")
    assert {n for n, i in DATASETS.items() if i.offline} == {"digits", "shapes", "imagefolder"}


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DatasetError, match=r"unknown dataset 'cifar11'; choose one of: cifar10, .*imagefolder"):
        dataset_info("cifar11")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("nope")


@pytest.mark.parametrize("kwargs, message", [
    (dict(subset=0), "subset must be a positive"),
    (dict(subset=-3), "subset must be a positive"),
    (dict(val_fraction=0.0), "val_fraction must be between 0 and 1"),
    (dict(val_fraction=1.0), "val_fraction must be between 0 and 1"),
    (dict(img_size=2), "img_size must be"),
    (dict(path="x.zip"), "only used by the 'imagefolder' dataset"),
])
def test_bad_arguments_are_refused_with_a_message(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("digits", **kwargs)


# --------------------------------------------------------------------------- CIFAR

def cifar_image(i: int) -> np.ndarray:
    """(3, 32, 32): red = column, green = row, blue = the image's id, to check the layout."""
    img = np.empty((3, 32, 32), dtype=np.uint8)
    img[0] = np.arange(32)[None, :]
    img[1] = np.arange(32)[:, None]
    img[2] = i % 256
    img[2, 0, 1] = i // 256
    return img


def ids(x: torch.Tensor) -> torch.Tensor:
    """The ids cifar_image wrote into a batch of images."""
    return x[:, 2, 0, 0].long() + 256 * x[:, 2, 0, 1].long()


def write_cifar(root: Path, monkeypatch, cls, per_file: int, num_test: int, num_classes: int,
                label_key: str, meta_key: str) -> list[str]:
    """Write the real python-pickle layout (str keys, as the Python 2 pickles read with latin1)
    and point the class's MD5 table at what was written, so torchvision's checked path runs."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    next_id = 0

    def batch(name: str, n: int) -> list[str]:
        nonlocal next_id
        ids = list(range(next_id, next_id + n))
        next_id += n
        data = np.stack([cifar_image(i).reshape(-1) for i in ids])
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, label_key: [i % num_classes for i in ids]}, f, protocol=2)
        return [name, md5(folder / name)]

    train = [batch(name, per_file) for name, _ in cls.train_list]
    test = [batch(name, num_test) for name, _ in cls.test_list]
    names = [f"class{c}" for c in range(num_classes)]
    meta_file = folder / cls.meta["filename"]
    with open(meta_file, "wb") as f:
        pickle.dump({meta_key: names}, f, protocol=2)
    monkeypatch.setattr(cls, "train_list", train)
    monkeypatch.setattr(cls, "test_list", test)
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(meta_file)})
    return names


def test_cifar10_loads_through_torchvision_with_layout_labels_and_names(tmp_path, monkeypatch):
    names = write_cifar(tmp_path, monkeypatch, datasets.CIFAR10, 20, 20, 10, "labels", "label_names")
    s = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert isinstance(s, Splits) and s.class_names == names
    assert (s.num_classes, s.img_size, s.in_chans, s.augment) == (10, 32, 3, "cifar")
    assert s.train_x.shape == (90, 3, 32, 32) and s.val_x.shape == (10, 3, 32, 32)
    assert s.test_x.shape == (20, 3, 32, 32)
    for x, y in ((s.train_x, s.train_y), (s.val_x, s.val_y), (s.test_x, s.test_y)):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.is_contiguous()
        assert torch.equal(x[:, 0], torch.arange(32, dtype=torch.uint8).expand(len(x), 32, 32))
        assert torch.equal(x[:, 1], torch.arange(32, dtype=torch.uint8)[:, None].expand(len(x), 32, 32))
        assert torch.equal(y, ids(x) % 10)
    train_ids = set(ids(s.train_x).tolist())
    val_ids = set(ids(s.val_x).tolist())
    # Validation comes out of the training set (ids 0..99), never out of the test set (100..119).
    assert not train_ids & val_ids and train_ids | val_ids == set(range(100))
    assert set(ids(s.test_x).tolist()) == set(range(100, 120))
    assert torch.bincount(s.val_y, minlength=10).tolist() == [1] * 10
    assert s.mean == (0.4914, 0.4822, 0.4465) and s.std == (0.2470, 0.2435, 0.2616)


def test_cifar_validation_split_follows_the_seed_and_subset_counts_per_class(tmp_path, monkeypatch):
    write_cifar(tmp_path, monkeypatch, datasets.CIFAR10, 20, 20, 10, "labels", "label_names")
    a, b, c = (load_dataset("cifar10", data_dir=tmp_path, download=False, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    assert torch.equal(a.test_x, c.test_x)
    s = load_dataset("cifar10", data_dir=tmp_path, download=False, subset=3, img_size=16)
    assert torch.bincount(s.train_y).tolist() == [3] * 10
    assert torch.bincount(s.val_y).tolist() == [1] * 10      # max(1, round(3 * 0.1 / 0.9))
    assert len(s.test_y) == 20
    assert s.train_x.shape[1:] == s.val_x.shape[1:] == s.test_x.shape[1:] == (3, 16, 16)


def test_cifar100_reads_fine_labels_and_fine_label_names(tmp_path, monkeypatch):
    names = write_cifar(tmp_path, monkeypatch, datasets.CIFAR100, 200, 100, 100, "fine_labels",
                        "fine_label_names")
    s = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert s.class_names == names and s.num_classes == 100
    assert len(s.train_y) + len(s.val_y) == 200 and len(s.test_y) == 100
    assert torch.equal(s.train_y, ids(s.train_x) % 100)
    assert torch.equal(s.test_y, ids(s.test_x) % 100)


class _Tripwire:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_cifar_file_failing_its_md5_is_refused_and_never_unpickled(tmp_path, monkeypatch):
    write_cifar(tmp_path, monkeypatch, datasets.CIFAR10, 20, 20, 10, "labels", "label_names")
    marker = tmp_path / "unpickled"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump(_Tripwire(marker), f)
    with pytest.raises(DatasetError, match=r"data_batch_3 is corrupt or incomplete \(MD5 mismatch\)"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()


def test_a_placed_cifar_archive_is_extracted_without_any_download(tmp_path, monkeypatch):
    names = write_cifar(tmp_path / "src", monkeypatch, datasets.CIFAR10, 20, 20, 10, "labels", "label_names")
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", md5(data / "cifar-10-python.tar.gz"))
    log = []
    s = load_dataset("cifar10", data_dir=data, download=False, progress=log.append)
    assert s.class_names == names and len(s.test_y) == 20
    assert (data / "cifar-10-batches-py" / "test_batch").is_file()
    assert any(m.startswith("extracting CIFAR-10") for m in log)


def test_missing_cifar_offline_names_the_file_and_folder(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "data", download=False)
    msg = str(err.value)
    assert "CIFAR-10 not found in" in msg and "cifar-10-python.tar.gz" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert f"{tmp_path / 'data' / 'cifar-10-batches-py'}/" in msg and "\n" not in msg


def test_a_failed_download_becomes_the_missing_message(tmp_path, monkeypatch):
    def offline(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(tv_utils, "download_url", offline)
    monkeypatch.setattr(idx_files, "SYSTEM_DIRS", {})
    for name, file in (("cifar100", "cifar-100-python.tar.gz"), ("stl10", "stl10_binary.tar.gz"),
                       ("fashion-mnist", "train-images-idx3-ubyte.gz")):
        with pytest.raises(DatasetError, match=rf"not found in .*{file}.*download failed: .*Temporary failure in name resolution"):
            load_dataset(name, data_dir=tmp_path, download=True)


def test_an_interrupted_download_is_not_swallowed(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(tv_utils, "download_url", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("mnist", data_dir=tmp_path, download=True)


# --------------------------------------------------------------------------- STL-10

def stl_image(i: int) -> np.ndarray:
    img = np.empty((3, 96, 96), dtype=np.uint8)
    img[0] = np.arange(96)[None, :]
    img[1] = np.arange(96)[:, None]
    img[2] = i
    return img


def test_stl10_reads_column_major_binaries_and_one_based_labels(tmp_path, monkeypatch):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]

    def write(stem: str, ids: range) -> None:
        # Each channel is stored column-major (Fortran order), as in the official files.
        imgs = np.stack([stl_image(i) for i in ids])
        (folder / f"{stem}_X.bin").write_bytes(imgs.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{stem}_y.bin").write_bytes(bytes(i % 10 + 1 for i in ids))

    write("train", range(30))
    write("test", range(30, 50))
    (folder / "unlabeled_X.bin").write_bytes(np.zeros((1, 3, 96, 96), np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    sums = {f: md5(folder / f) for f in ("train_X.bin", "train_y.bin", "unlabeled_X.bin", "test_X.bin", "test_y.bin")}
    monkeypatch.setattr(datasets.STL10, "train_list", [[f, sums[f]] for f in ("train_X.bin", "train_y.bin", "unlabeled_X.bin")])
    monkeypatch.setattr(datasets.STL10, "test_list", [[f, sums[f]] for f in ("test_X.bin", "test_y.bin")])

    s = load_dataset("stl10", data_dir=tmp_path, download=False)
    assert s.class_names == names and (s.img_size, s.in_chans, s.augment) == (96, 3, "stl")
    assert len(s.train_y) + len(s.val_y) == 30 and s.test_x.shape == (20, 3, 96, 96)
    for x, y in ((s.train_x, s.train_y), (s.test_x, s.test_y)):
        assert torch.equal(x[:, 0, 5], torch.arange(96, dtype=torch.uint8).expand(len(x), 96))
        assert torch.equal(x[:, 1, :, 5], torch.arange(96, dtype=torch.uint8).expand(len(x), 96))
        assert torch.equal(y, x[:, 2, 0, 0].long() % 10)   # labels back to 0-based


# --------------------------------------------------------------------------- MNIST-like

def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    header = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)


def write_mnist(root: Path, folder: str, n_train: int = 100, n_test: int = 20, gz: bool = False) -> Path:
    raw = root / folder / "raw" if folder else root
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, ids in (("train", range(n_train)), ("t10k", range(n_train, n_train + n_test))):
        imgs = np.zeros((len(ids), 28, 28), dtype=np.uint8)
        imgs[:, :, :] = np.arange(28)[None, None, :] * 9
        imgs[:, 27, 27] = list(ids)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.array([i % 10 for i in ids]), gz)
    return raw


@pytest.fixture
def small_idx(monkeypatch):
    """The idx checks expect 100 training and 20 test images, with no known checksum, and no
    system-wide copy is looked at: the files the test writes are the only ones."""
    monkeypatch.setattr(idx_files, "FILES", tuple(
        idx_files.IdxFile(f.stem, f.magic, 100 if f.stem.startswith("train") else 20) for f in idx_files.FILES))
    monkeypatch.setattr(idx_files, "DIGESTS", {})
    monkeypatch.setattr(idx_files, "SYSTEM_DIRS", {})


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name, folder, first_class", [("mnist", "MNIST", "0 - zero"),
                                                       ("fashion-mnist", "FashionMNIST", "T-shirt/top")])
def test_mnist_like_sets_read_the_raw_idx_files(tmp_path, small_idx, name, folder, first_class, gz):
    write_mnist(tmp_path, folder, gz=gz)
    s = load_dataset(name, data_dir=tmp_path, download=False)
    assert s.class_names[0] == first_class and s.num_classes == 10
    assert (s.in_chans, s.img_size) == (1, 28)
    assert s.augment == ("shift" if name == "mnist" else "shift-flip")
    assert s.train_x.shape == (90, 1, 28, 28) and s.val_x.shape == (10, 1, 28, 28)
    assert s.test_x.shape == (20, 1, 28, 28) and s.test_x.dtype == torch.uint8
    assert torch.equal(s.train_y, s.train_x[:, 0, 27, 27].long() % 10)
    assert torch.equal(s.test_x[:, 0, 3, :26], (torch.arange(26) * 9).to(torch.uint8).expand(20, 26))
    assert len(s.mean) == len(s.std) == 1


def test_a_system_wide_copy_is_found_after_the_data_dir(tmp_path, small_idx, monkeypatch):
    system = write_mnist(tmp_path / "usr-share", "", gz=True)
    monkeypatch.setattr(idx_files, "SYSTEM_DIRS", {"fashion-mnist": (str(system),)})
    messages = []
    s = load_dataset("fashion-mnist", data_dir=tmp_path / "data", download=False, progress=messages.append)
    assert s.test_x.shape == (20, 1, 28, 28) and any(str(system) in m for m in messages)
    # A copy in the data dir wins over the system-wide one.
    write_mnist(tmp_path / "data", "FashionMNIST", n_train=100, n_test=20)
    (tmp_path / "data" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"FashionMNIST/raw/t10k-images-idx3-ubyte was found but"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "data", download=False)


def test_a_recompressed_file_is_accepted_by_its_decompressed_checksum(tmp_path, small_idx, monkeypatch):
    raw = write_mnist(tmp_path, "FashionMNIST", gz=True)
    digests = {f.stem: hashlib.sha256(gzip.decompress((raw / f"{f.stem}.gz").read_bytes())).hexdigest()
               for f in idx_files.FILES}
    monkeypatch.setattr(idx_files, "DIGESTS", {"fashion-mnist": digests})
    # Another gzip wrapper (level, mtime) of the same bytes: a different .gz MD5, the same contents.
    for f in idx_files.FILES:
        path = raw / f"{f.stem}.gz"
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=12345))
    assert load_dataset("fashion-mnist", data_dir=tmp_path, download=False).test_x.shape[0] == 20
    digests["t10k-labels-idx1-ubyte"] = "0" * 64
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz was found but its contents do not match.*SHA-256"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b""), r"too short for an idx header \(the file is empty\)"),
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), r"truncated or padded"),
    (lambda p: p.write_bytes(b"not gzip at all"), r"not a readable gzip file"),
    (lambda p: shutil.copy(p.with_name("t10k-labels-idx1-ubyte.gz"), p), r"it holds labels, not images"),
])
def test_damaged_idx_files_name_the_file_and_what_is_wrong(tmp_path, small_idx, damage, reason):
    raw = write_mnist(tmp_path, "MNIST", gz=True)
    target = raw / "t10k-images-idx3-ubyte.gz"
    if "gzip" not in reason and "labels" not in reason:
        data = gzip.decompress(target.read_bytes())
        target.write_bytes(data)
        damage(target)
        target.write_bytes(gzip.compress(target.read_bytes()))
    else:
        damage(target)
    with pytest.raises(DatasetError, match=rf"MNIST file .*t10k-images-idx3-ubyte.gz was found but its contents do not match the official file: .*{reason}") as err:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert "\n" not in str(err.value) and "not found" not in str(err.value)


def test_counts_that_disagree_with_the_official_files_are_named(tmp_path, small_idx):
    write_mnist(tmp_path, "MNIST", n_train=100, n_test=19)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte was found but .*header counts 19 images, expected 20"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_missing_fashion_mnist_says_how_to_get_it_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_files, "SYSTEM_DIRS", {"fashion-mnist": (str(tmp_path / "nowhere"),)})
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "Fashion-MNIST not found in" in msg and f"{tmp_path / 'nowhere'}/" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


# --------------------------------------------------------------------------- digits

def test_digits_are_real_upsampled_uint8_with_a_fixed_stratified_test_split():
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=1)
    assert a.class_names == [str(d) for d in range(10)]
    assert (a.img_size, a.in_chans, a.augment) == (16, 1, "shift")
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape[1:] == (1, 16, 16)
    assert int(a.train_x.max()) >= 250 and int(a.train_x.min()) == 0
    assert len(a.train_y) + len(a.val_y) + len(a.test_y) == 1797
    # The test set is the same whatever the run's seed; the validation split is not.
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.val_y, b.val_y) or not torch.equal(a.val_x, b.val_x)
    # Stratified: every class has about 20% of its images in test and 10% of the rest in val.
    full = torch.bincount(torch.cat([a.train_y, a.val_y, a.test_y]), minlength=10)
    assert ((torch.bincount(a.test_y, minlength=10) - 0.2 * full).abs() <= 1).all()
    pool = full - torch.bincount(a.test_y, minlength=10)
    assert ((torch.bincount(a.val_y, minlength=10) - 0.1 * pool).abs() <= 1).all()
    # Train + val is the same pool of images for both seeds: val is carved from train only.
    def rows(*xs):
        return sorted(map(bytes, torch.cat(xs).flatten(1).numpy()))
    assert rows(a.train_x, a.val_x) == rows(b.train_x, b.val_x)
    assert a.std[0] > 0 and 0 < a.mean[0] < 1


def test_digits_subset_keeps_that_many_per_class_and_shrinks_validation():
    s = load_dataset("digits", subset=20, val_fraction=0.2)
    assert torch.bincount(s.train_y).tolist() == [20] * 10
    assert torch.bincount(s.val_y).tolist() == [5] * 10    # round(20 * 0.2 / 0.8)
    assert len(s.test_y) == len(load_dataset("digits").test_y)
    assert load_dataset("digits", img_size=28).train_x.shape[1:] == (1, 28, 28)


# --------------------------------------------------------------------------- shapes

def test_shapes_are_seeded_with_masks_on_a_clearly_different_background():
    a = load_dataset("shapes", seed=0)
    assert len(a.class_names) >= 5 and (a.img_size, a.in_chans) == (32, 3)
    assert len(a.train_y) + len(a.val_y) == 600 * a.num_classes and len(a.test_y) == 100 * a.num_classes
    assert torch.bincount(a.test_y).tolist() == [100] * a.num_classes
    masks = a.test_masks
    assert masks.dtype == torch.bool and masks.shape == (len(a.test_y), 32, 32)
    area = masks.flatten(1).sum(1)
    assert (area > 0).all() and (area < 32 * 32).all()
    x = a.test_x.float()
    m = masks[:, None].float()
    inside = (x * m).sum((2, 3)) / m.sum((2, 3))
    outside = (x * (1 - m)).sum((2, 3)) / (1 - m).sum((2, 3))
    assert ((inside - outside).norm(dim=1) > 100).all()
    # Inside the mask is one colour plus noise, so the mask really is the object.
    spread = ((x - inside[:, :, None, None]) ** 2 * m).sum((2, 3)) / m.sum((2, 3))
    assert (spread.sqrt() < 20).all()

    b, c = load_dataset("shapes", seed=0), load_dataset("shapes", seed=1)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.equal(a.test_x, c.test_x) and torch.equal(a.test_masks, c.test_masks)


def test_shapes_can_be_drawn_at_another_size():
    s = load_dataset("shapes", img_size=48, subset=10)
    assert s.train_x.shape == (10 * s.num_classes, 3, 48, 48) and s.test_masks.shape[1:] == (48, 48)


# --------------------------------------------------------------------------- imagefolder

COLOURS = {"cat": (220, 30, 30), "dog": (30, 30, 220), "owl": (30, 200, 30)}


def image_bytes(colour, size=(40, 30), mode="RGB", fmt="PNG") -> bytes:
    img = Image.new("RGB", size, colour)
    if mode == "RGBA":
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode == "L":
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def dataset_files(per_class: int = 5, classes=("cat", "dog"), prefix: str = "") -> dict[str, bytes]:
    modes = ["RGB", "RGBA", "P", "L", "RGB"]
    files = {}
    for name in classes:
        for i in range(per_class):
            files[f"{prefix}{name}/{i}.png"] = image_bytes(COLOURS[name], mode=modes[i % len(modes)])
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point tempfile at an empty folder, to check that unpacked zips are always removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_imagefolder_from_a_folder_skips_non_images_and_hidden_files(tmp_path):
    files = dataset_files() | {"cat/notes.txt": b"x", ".DS_Store": b"x", "dog/.hidden.png": b"bad"}
    root = write_tree(tmp_path / "pets", files)
    log = []
    s = load_dataset("imagefolder", path=root, progress=log.append)
    assert s.class_names == ["cat", "dog"] and (s.img_size, s.in_chans, s.augment) == (32, 3, "cifar")
    assert len(s.train_y) + len(s.val_y) == 8 and torch.bincount(s.test_y).tolist() == [1, 1]
    x, y = torch.cat([s.train_x, s.val_x, s.test_x]), torch.cat([s.train_y, s.val_y, s.test_y])
    assert x.dtype == torch.uint8 and x.shape == (10, 3, 32, 32)
    # Cats are red and dogs blue whatever the file's mode (RGB, RGBA, palette), except the
    # one grayscale ("L") file per class, which comes out with three equal channels.
    gray = (x[:, 0] == x[:, 1]).all((1, 2)) & (x[:, 1] == x[:, 2]).all((1, 2))
    assert int(gray.sum()) == 2
    red_minus_blue = x[:, 0].float().mean((1, 2)) - x[:, 2].float().mean((1, 2))
    assert torch.equal((red_minus_blue > 100)[~gray], (y == 0)[~gray])
    assert torch.equal((red_minus_blue < -100)[~gray], (y == 1)[~gray])
    assert any("1 non-image file" in m and "cat/notes.txt" in m for m in log)
    assert len(s.mean) == 3 and all(0 < v < 1 for v in s.mean)
    assert load_dataset("imagefolder", path=root, img_size=20).test_x.shape[-2:] == (20, 20)


def test_imagefolder_turns_images_upright_by_their_exif_orientation(tmp_path):
    files = dataset_files(classes=("cat", "dog"))
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 20, 20))             # left half black
    exif = Image.Exif()
    exif[0x0112] = 6                                 # "rotate 90 degrees clockwise to view"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    files = {k: v for k, v in files.items() if not k.startswith("cat/")}
    files |= {f"cat/{i}.jpg": buf.getvalue() for i in range(5)}
    s = load_dataset("imagefolder", path=write_tree(tmp_path / "d", files))
    cats = torch.cat([s.train_x[s.train_y == 0], s.val_x[s.val_y == 0], s.test_x[s.test_y == 0]])
    # Upright, the black half is on top: top-left and top-right dark, bottom-left light.
    assert (cats[:, :, 2, 2] < 60).all() and (cats[:, :, 2, 29] < 60).all() and (cats[:, :, 29, 2] > 200).all()


def test_imagefolder_from_a_zip_with_a_wrapping_folder_and_mac_debris(tmp_path, private_tmp):
    files = dataset_files(classes=("cat", "dog", "owl"), prefix="mydata/")
    files |= {"__MACOSX/mydata/._0.png": b"junk", "mydata/.DS_Store": b"junk"}
    s = load_dataset("imagefolder", path=write_zip(tmp_path / "upload.zip", files))
    assert s.class_names == ["cat", "dog", "owl"]
    assert len(s.train_y) + len(s.val_y) + len(s.test_y) == 15
    assert list(private_tmp.iterdir()) == []


def test_imagefolder_uses_train_and_test_folders_when_present(tmp_path, private_tmp):
    files = dataset_files(per_class=6, prefix="set/train/") | dataset_files(per_class=2, prefix="set/test/")
    for source in (write_tree(tmp_path / "tree", files), write_zip(tmp_path / "set.zip", files)):
        s = load_dataset("imagefolder", path=source)
        assert s.class_names == ["cat", "dog"]
        assert torch.bincount(s.test_y).tolist() == [2, 2]
        assert len(s.train_y) + len(s.val_y) == 12
    assert list(private_tmp.iterdir()) == []


def test_a_single_class_folder_is_not_mistaken_for_a_wrapper(tmp_path):
    root = write_tree(tmp_path / "d", dataset_files(classes=("cat",)))
    with pytest.raises(DatasetError, match=r"needs at least 2 class folders, found 1: 'cat'"):
        load_dataset("imagefolder", path=root)


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    return write_zip(path, dataset_files() | members)


@pytest.mark.parametrize("member, message", [
    ("../evil.png", r"zip member '\.\./evil\.png' points outside its folder"),
    ("cat/../../evil.png", r"zip member 'cat/\.\./\.\./evil\.png' points outside its folder"),
    ("/etc/evil.png", r"zip member '/etc/evil\.png' has an absolute path"),
    ("C:/evil.png", r"zip member 'C:/evil\.png' has an absolute path"),
    ("..\\evil.png", r"points outside its folder"),
])
def test_zip_members_that_would_escape_are_refused(tmp_path, private_tmp, member, message):
    path = zip_with(tmp_path / "bad.zip", {member: image_bytes((1, 2, 3))})
    with pytest.raises(DatasetError, match=message):
        load_dataset("imagefolder", path=path)
    assert not (tmp_path / "evil.png").exists() and not (private_tmp.parent / "evil.png").exists()
    assert list(private_tmp.iterdir()) == []


def test_zip_symlink_members_are_refused(tmp_path, private_tmp):
    path = zip_with(tmp_path / "link.zip", {})
    info = zipfile.ZipInfo("cat/link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match=r"zip member 'cat/link\.png' is a symbolic link"):
        load_dataset("imagefolder", path=path)
    assert list(private_tmp.iterdir()) == []


def test_zip_bombs_are_stopped_by_size_and_member_count(tmp_path, private_tmp, monkeypatch):
    path = zip_with(tmp_path / "big.zip", {"cat/big.png": b"\0" * 50_000})
    monkeypatch.setattr(safe_zip, "MAX_TOTAL_BYTES", 20_000)
    with pytest.raises(DatasetError, match="unpacks to .*more than"):
        load_dataset("imagefolder", path=path)
    monkeypatch.setattr(safe_zip, "MAX_TOTAL_BYTES", 2 ** 30)
    monkeypatch.setattr(safe_zip, "MAX_MEMBERS", 5)
    with pytest.raises(DatasetError, match=r"has 11 members, more than the 5 allowed"):
        load_dataset("imagefolder", path=path)
    assert list(private_tmp.iterdir()) == []


def test_a_zip_whose_directory_understates_sizes_is_refused(tmp_path, private_tmp, monkeypatch):
    path = zip_with(tmp_path / "liar.zip", {"cat/big.png": b"\0" * 50_000})
    monkeypatch.setattr(safe_zip, "MAX_TOTAL_BYTES", 20_000)
    real_infolist = zipfile.ZipFile.infolist

    def lying_infolist(self):
        infos = real_infolist(self)
        for info in infos:
            info.file_size = 1
        return infos
    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying_infolist)
    with pytest.raises(DatasetError, match=r"cannot unpack zip member 'cat/[^']+'|unpacks to more than"):
        load_dataset("imagefolder", path=path)
    assert list(private_tmp.iterdir()) == []


def test_bad_uploads_get_one_line_messages(tmp_path, private_tmp):
    only_text = write_zip(tmp_path / "text.zip", {"cat/a.txt": b"x", "dog/b.txt": b"x", "readme.md": b"x"})
    with pytest.raises(DatasetError, match=r"no images found .*3 non-image files ignored"):
        load_dataset("imagefolder", path=only_text)

    broken = zip_with(tmp_path / "broken.zip", {"dog/broken.png": b"this is not a png"})
    with pytest.raises(DatasetError, match=r"cannot decode image dog/broken\.png"):
        load_dataset("imagefolder", path=broken)

    not_zip = tmp_path / "data.zip"
    not_zip.write_text("hello")
    with pytest.raises(DatasetError, match=r"data\.zip is not a readable zip file"):
        load_dataset("imagefolder", path=not_zip)

    empty_class = write_zip(tmp_path / "empty.zip", dataset_files(classes=("cat",)) | {"dog/a.txt": b"x"})
    with pytest.raises(DatasetError, match=r"class folder 'dog' .*has no images"):
        load_dataset("imagefolder", path=empty_class)

    one_class = write_zip(tmp_path / "one.zip", dataset_files(classes=("cat",)))
    with pytest.raises(DatasetError, match=r"needs at least 2 class folders, found 1: 'cat'"):
        load_dataset("imagefolder", path=one_class)

    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset("imagefolder")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("imagefolder", path=tmp_path / "missing")
    assert list(private_tmp.iterdir()) == []


def test_too_few_images_in_a_class_is_explained(tmp_path):
    files = dataset_files() | {"owl/0.png": image_bytes(COLOURS["owl"])}
    with pytest.raises(DatasetError, match=r"class folder 'owl' .*has 1 image\(s\); at least 3"):
        load_dataset("imagefolder", path=write_tree(tmp_path / "d", files))


# --------------------------------------------------------------------------- augmentation

def crops(img: torch.Tensor, pad: int, flip: bool) -> list[torch.Tensor]:
    """Every crop (and mirrored crop) of one (C, H, W) image padded by `pad`, one at a time."""
    _, h, w = img.shape
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            c = padded[:, dy:dy + h, dx:dx + w]
            out.append(c)
            if flip:
                out.append(c.flip(-1))
    return out


def batch_of_one_image(n: int, shape=(3, 32, 32), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(1, 256, shape, generator=g, dtype=torch.uint8)
    return img.expand(n, *shape).contiguous()


@pytest.mark.parametrize("policy, pad, flip", [("cifar", 4, True), ("shift", 2, False)])
def test_every_augmented_sample_is_a_crop_of_its_padded_image(policy, pad, flip):
    x = batch_of_one_image(40)
    out = augment_batch(x, policy, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device
    candidates = crops(x[0], pad, flip)
    matches = [[i for i, c in enumerate(candidates) if torch.equal(o, c)] for o in out]
    assert all(len(m) == 1 for m in matches)            # each sample is exactly one crop
    assert len({m[0] for m in matches}) > 10             # and the crops differ between samples
    if flip:
        mirrored = sum(m[0] % 2 for m in matches)
        assert 5 < mirrored < 35                         # some flipped, some not


def test_augmentation_is_reproducible_with_a_generator_and_uses_the_global_rng_without():
    x = batch_of_one_image(64)
    for policy in ("cifar", "stl", "shift"):
        a = augment_batch(x, policy, torch.Generator().manual_seed(7))
        b = augment_batch(x, policy, torch.Generator().manual_seed(7))
        c = augment_batch(x, policy, torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    a = augment_batch(x, "cifar")
    torch.manual_seed(3)
    assert torch.equal(a, augment_batch(x, "cifar"))


def test_none_policy_is_the_identity_and_unknown_policies_are_refused():
    x = batch_of_one_image(8)
    out = augment_batch(x, "none")
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    with pytest.raises(DatasetError, match="unknown augmentation policy 'mixup'"):
        augment_batch(x, "mixup")


def test_stl_policy_turns_some_samples_gray_and_jitters_the_rest():
    x = batch_of_one_image(300)
    out = augment_batch(x, "stl", torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    gray = (out[:, 0] == out[:, 1]).all((1, 2)) & (out[:, 1] == out[:, 2]).all((1, 2))
    assert 10 <= int(gray.sum()) <= 60                   # p = 0.1 of 300
    # Jitter changes the colours, so most samples are no plain crop of the original.
    centre = out[:, :, 12:20, 12:20].float().mean((1, 2, 3))
    assert centre.std() > 5


def test_colour_jitter_matches_torchvision_for_the_same_factors():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 16, 16), generator=g, dtype=torch.uint8)
    bf, cf, sf = (torch.rand(6, generator=g) * 0.8 + 0.6 for _ in range(3))
    ours = jitter(x, bf, cf, sf, torch.zeros(6, dtype=torch.bool)).float()
    for i in range(6):
        ref = x[i].float() / 255
        ref = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(ref, bf[i].item()), cf[i].item()), sf[i].item())
        assert (ours[i] - ref * 255).abs().max() <= 1.0
    gray = jitter(x, torch.ones(6), torch.ones(6), torch.ones(6), torch.ones(6, dtype=torch.bool)).float()
    expected = TF.rgb_to_grayscale(x.float(), num_output_channels=3)
    assert (gray - expected).abs().max() <= 1.0


def test_normalize_with_the_batch_statistics_gives_zero_mean_unit_std():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 3, 8, 8), generator=g, dtype=torch.uint8)
    xf = x.double() / 255
    mean = xf.mean((0, 2, 3)).tolist()
    std = xf.std((0, 2, 3), unbiased=False).tolist()
    for m, s in ((mean, std), (torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))):
        y = normalize(x, m, s)
        assert y.dtype == torch.float32 and y.shape == x.shape
        assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
        assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_offline_source_tells_bundled_on_disk_and_missing_apart(tmp_path, small_idx, monkeypatch):
    from tinyvit.data import how_to_get, offline_source
    assert offline_source("digits", tmp_path) == "bundled"
    assert offline_source("mnist", tmp_path) is None and offline_source("cifar10", tmp_path) is None
    assert "apt-get install dataset-fashion-mnist" not in how_to_get("mnist", tmp_path)
    write_mnist(tmp_path / "share", "", gz=True)
    monkeypatch.setattr(idx_files, "SYSTEM_DIRS", {"fashion-mnist": (str(tmp_path / "share"),)})
    assert offline_source("fashion-mnist", tmp_path / "data") == str(tmp_path / "share")
    assert offline_source("mnist", tmp_path / "data") is None


def test_random_erasing_blanks_one_rectangle_in_about_p_of_the_images():
    from tinyvit.data.augment import random_erase
    x = torch.full((400, 1, 28, 28), 200, dtype=torch.uint8)
    out = random_erase(x, 0.5, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1)
    hit = erased.any(1)
    assert 150 < int(hit.sum()) < 250 and torch.equal(x, torch.full_like(x, 200))   # input untouched
    shares = erased[hit].float().mean(1)
    assert float(shares.min()) >= 0.01 and float(shares.max()) <= 0.5
    for img in out[hit][:20, 0]:
        rows, cols = (img == 0).nonzero(as_tuple=True)
        box = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool((box == 0).all())          # one solid rectangle, nothing else blanked
    assert torch.equal(random_erase(x, 0.0), x)
    again = random_erase(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_shapes_can_generate_more_training_images_per_class_only():
    s = load_dataset("shapes", generate_per_class=50, val_fraction=0.2)
    assert len(s.train_y) + len(s.val_y) == 300 and s.train_y.bincount().tolist() == [40] * 6
    assert len(s.test_y) == 600                   # the fixed test set does not change
    for bad in (dict(name="digits", generate_per_class=50), dict(name="shapes", generate_per_class=0),
                dict(name="shapes", generate_per_class=10 ** 6)):
        with pytest.raises(DatasetError, match="generate_per_class is for the generated 'shapes' dataset"):
            load_dataset(bad.pop("name"), **bad)


def test_a_highly_compressed_zip_is_refused_as_a_zip_bomb_before_unpacking(tmp_path, private_tmp):
    path = tmp_path / "bomb.zip"
    write_zip(path, dataset_files())
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("cat/huge.bmp", "w", force_zip64=True) as out:
            zeros = b"\0" * 2 ** 20
            for _ in range(160):  # 160 MiB of zeros: well under the size cap, about 1000:1
                out.write(zeros)
    assert path.stat().st_size < 2 ** 20
    with pytest.raises(DatasetError, match=r"bomb\.zip looks like a zip bomb: .*compressed"):
        load_dataset("imagefolder", path=path)
    assert list(private_tmp.iterdir()) == []


def test_a_zip_declaring_more_than_the_cap_is_called_a_zip_bomb(tmp_path, private_tmp, monkeypatch):
    path = zip_with(tmp_path / "big.zip", {"cat/big.png": b"\0" * 50_000})
    monkeypatch.setattr(safe_zip, "MAX_TOTAL_BYTES", 20_000)
    with pytest.raises(DatasetError, match=r"big\.zip looks like a zip bomb: it unpacks to"):
        load_dataset("imagefolder", path=path)
    assert list(private_tmp.iterdir()) == []


def sixteen_bit(img8: Image.Image) -> Image.Image:
    """The same picture as a 16-bit grayscale PNG stores it (full 0..65535 range)."""
    return Image.fromarray(np.asarray(img8).astype(np.uint16) * 257)


def test_16_bit_grayscale_images_load_like_their_8_bit_originals(tmp_path):
    digits = load_dataset("digits").test_x[:40]
    for i, x in enumerate(digits):
        img = Image.fromarray(x[0].numpy())
        for bits, picture in (("8", img), ("16", sixteen_bit(img))):
            folder = tmp_path / bits / f"class{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            picture.save(folder / f"{i}.png")
    assert Image.open(tmp_path / "16" / "class0" / "0.png").mode.startswith("I;16")
    eight = load_dataset("imagefolder", path=tmp_path / "8", img_size=16)
    sixteen = load_dataset("imagefolder", path=tmp_path / "16", img_size=16)
    assert torch.equal(eight.train_x, sixteen.train_x) and torch.equal(eight.test_x, sixteen.test_x)


def test_16_bit_digits_are_predicted_like_8_bit(tiny_runs):
    from tinyvit.inference import load_run, open_image
    loaded = load_run(tiny_runs["cnn"])
    digits = load_dataset("digits").test_x[:80]

    def predict(picture):
        buf = io.BytesIO()
        picture.save(buf, "PNG")
        return loaded.predict(loaded.preprocess(open_image(buf.getvalue()))).argmax().item()
    imgs = [Image.fromarray(x[0].numpy()) for x in digits]
    assert [predict(sixteen_bit(img)) for img in imgs] == [predict(img) for img in imgs]
