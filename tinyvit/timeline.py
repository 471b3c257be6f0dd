"""What the model learns, epoch by epoch: the maps of a fixed probe set of validation
images and the validation confusion matrix, saved in the run folder as timeline.npz.

The probe set (PROBES images, every class represented as far as PROBES allows) is chosen
once, from the validation split, the same way for every run of the dataset. The file is
rewritten atomically after each epoch; it stays small whatever the image size or length
of the run: maps are float16 at most MAX_GRID×MAX_GRID, probe images at most IMAGE_PX, and
numpy compresses the whole (a 100-epoch digits or Fashion-MNIST run is well under 2 MB)."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import atomic_write
from .data.splits import resize_uint8
from .model_maps import own_maps

FILE = "timeline.npz"
VERSION = 1
PROBES = 16
MAX_GRID = 16
IMAGE_PX = 64
KEYS = ("version", "identity", "epochs", "maps", "preds", "confidences", "confusion",
        "images", "labels", "positions")


class TimelineError(ValueError):
    """A timeline file that cannot be used (damaged, truncated, another run's); user-facing."""


def identity(cfg: dict) -> str:
    """What ties a timeline to its run: the settings that fix the data and the model."""
    keys = ("dataset", "data_path", "model", "model_hparams", "class_names", "img_size", "seed",
            "val_fraction", "subset")
    text = json.dumps({k: cfg.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def choose_probes(labels: torch.Tensor | np.ndarray, n: int = PROBES) -> np.ndarray:
    """Positions in the validation split: the first image of every class, then the second
    of every class, … until n (with more than n classes, n of them, spread evenly)."""
    y = np.asarray(labels)
    classes = np.unique(y)
    if len(classes) > n:
        classes = classes[np.linspace(0, len(classes) - 1, n).round().astype(int)]
    queues = [list(np.flatnonzero(y == c)) for c in classes]
    picked: list[int] = []
    while len(picked) < min(n, len(y)) and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(int(q.pop(0)))
    return np.array(picked, dtype=np.int64)


@dataclass
class Timeline:
    epochs: np.ndarray       # (E,) epoch numbers, 1-based
    maps: np.ndarray         # (E, P, h, w) float16 in [0, 1]
    preds: np.ndarray        # (E, P) predicted class of each probe image
    confidences: np.ndarray  # (E, P) float16
    confusion: np.ndarray    # (E, K, K) validation confusion matrix (rows = true class)
    images: np.ndarray       # (P, C, H, W) uint8 probe images (at most IMAGE_PX)
    labels: np.ndarray       # (P,) true class of each probe image
    positions: np.ndarray    # (P,) their positions in the validation split
    identity: str

    def __len__(self) -> int:
        return len(self.epochs)

    def at(self, epoch: int) -> int:
        """Row of the last recorded epoch at or before `epoch`."""
        return max(0, int(np.searchsorted(self.epochs, epoch, side="right")) - 1)

    def truncate(self, last_epoch: int) -> "Timeline":
        keep = self.epochs <= last_epoch
        return Timeline(self.epochs[keep], self.maps[keep], self.preds[keep], self.confidences[keep],
                        self.confusion[keep], self.images, self.labels, self.positions, self.identity)


def _pool(heat: torch.Tensor) -> torch.Tensor:
    """Maps above MAX_GRID per side are averaged down to it (the file stays bounded)."""
    h, w = heat.shape[-2:]
    if max(h, w) <= MAX_GRID:
        return heat
    return F.adaptive_avg_pool2d(heat[:, None], (min(h, MAX_GRID), min(w, MAX_GRID)))[:, 0]


def save(path: Path, t: Timeline) -> None:
    arrays = dict(version=np.array(VERSION), identity=np.array(t.identity), epochs=t.epochs,
                  maps=t.maps.astype(np.float16), preds=t.preds, confidences=t.confidences.astype(np.float16),
                  confusion=t.confusion, images=t.images, labels=t.labels, positions=t.positions)
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(_npz(arrays)))


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def load(path: Path, cfg: dict | None = None) -> Timeline | None:
    """The timeline in `path`; None if there is none (older runs, first epoch not over).
    TimelineError if the file is damaged or, given the run's config, belongs to another run."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise TimelineError(f"{path.name} is not a TinyViT Lab timeline (it lacks {', '.join(missing)})")
            a = {k: z[k] for k in KEYS}
    except TimelineError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise TimelineError(f"{path.name} is damaged or truncated and cannot be read ({type(err).__name__})") from None
    if int(a["version"]) != VERSION:
        raise TimelineError(f"{path.name} has format version {int(a['version'])}; this version reads {VERSION}")
    t = Timeline(a["epochs"], a["maps"], a["preds"], a["confidences"], a["confusion"], a["images"],
                 a["labels"], a["positions"], str(a["identity"]))
    _check_shapes(path.name, t)
    if cfg is not None and t.identity != identity(cfg):
        raise TimelineError(f"{path.name} belongs to another run (other dataset, model or settings): "
                            "it is ignored")
    return t


def _check_shapes(name: str, t: Timeline) -> None:
    e, p = len(t.epochs), len(t.labels)
    ok = (t.maps.ndim == 4 and t.maps.shape[:2] == (e, p) and t.preds.shape == (e, p)
          and t.confidences.shape == (e, p) and t.confusion.ndim == 3 and len(t.confusion) == e
          and t.images.ndim == 4 and len(t.images) == p and t.positions.shape == (p,))
    if not ok:
        raise TimelineError(f"{name} is inconsistent (its arrays do not fit together): it is ignored")


class Recorder:
    """Kept by the trainer: after each validation, the probe maps and the confusion matrix."""

    def __init__(self, path: Path, cfg: dict, kind: str, val_x: torch.Tensor, val_y: torch.Tensor,
                 mean: torch.Tensor, std: torch.Tensor, num_classes: int, start_epoch: int = 0) -> None:
        self.path, self.kind, self.num_classes = Path(path), kind, num_classes
        self.positions = choose_probes(val_y.cpu().numpy())
        probes = val_x.cpu()[torch.from_numpy(self.positions)]
        self.x = ((probes.to(mean.device).float() / 255) - mean) / std
        self.labels = val_y.cpu().numpy()[self.positions]
        small = resize_uint8(probes, IMAGE_PX) if probes.shape[-1] > IMAGE_PX else probes
        self.images = small.numpy()
        self.id = identity(cfg)
        self.rows = self._resumed(self.id, start_epoch)

    def _resumed(self, ident: str, start_epoch: int) -> Timeline | None:
        """On --resume, the epochs already recorded (a foreign or damaged file starts afresh)."""
        try:
            old = load(self.path)
        except TimelineError:
            return None
        if old is None or old.identity != ident or not np.array_equal(old.positions, self.positions):
            return None
        return old.truncate(start_epoch)

    def record(self, epoch: int, model: nn.Module, val_preds: torch.Tensor, val_y: torch.Tensor) -> None:
        was_training = model.training
        model.eval()
        probs, heat = own_maps(model, self.kind, self.x)
        model.train(was_training)
        conf, pred = probs.max(1)
        k = self.num_classes
        cm = np.bincount(val_y.cpu().numpy() * k + val_preds.cpu().numpy(), minlength=k * k).reshape(k, k)
        cm = cm.astype(np.uint16 if cm.max(initial=0) < 2 ** 16 else np.uint32)
        row = Timeline(np.array([epoch]), _pool(heat.float()).cpu().numpy()[None].astype(np.float16),
                       pred.cpu().numpy()[None].astype(np.int32), conf.cpu().numpy()[None].astype(np.float16),
                       cm[None], self.images, self.labels, self.positions, self.id)
        self.rows = row if self.rows is None else _append(self.rows, row)
        save(self.path, self.rows)


def _append(t: Timeline, row: Timeline) -> Timeline:
    cat = lambda a, b: np.concatenate([a, b.astype(a.dtype)])  # noqa: E731
    # The confusion matrices widen to uint32 (numpy's promotion) once a count passes 65535.
    return Timeline(cat(t.epochs, row.epochs), cat(t.maps, row.maps), cat(t.preds, row.preds),
                    cat(t.confidences, row.confidences), np.concatenate([t.confusion, row.confusion]),
                    t.images, t.labels, t.positions, t.identity)
