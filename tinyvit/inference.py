"""Use a trained run: rebuild its model and preprocess any uploaded image the run's way."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from .checkpoint import WEIGHTS, CheckpointError, load_weights
from .data import normalize
from .data.bitdepth import to_8bit
from .data.decode import flatten_alpha, open_upright
from .models import ModelError, build_model, model_kind
from .runs import RunError, open_run

MAX_UPLOAD_BYTES = 50 * 2 ** 20


class ImageError(ValueError):
    """An upload that is not a usable image; the message names the problem."""


def open_image(data: bytes, name: str = "image") -> Image.Image:
    """Decode an upload fully, refusing empty, non-image, truncated and decompression-bomb files."""
    if not data:
        raise ImageError(f"{name} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"{name} is larger than {MAX_UPLOAD_BYTES // 2 ** 20} MB")
    try:
        # 16-bit grayscale to 8 bits here, so previews and overlays are right too.
        img = open_upright(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} has too many pixels (over {Image.MAX_IMAGE_PIXELS:,}): "
                         "refused as a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{name} is damaged or truncated ({err})") from None
    return img


def to_mode(img: Image.Image, in_chans: int) -> Image.Image:
    """RGB or grayscale; 16-bit grayscale scaled to 8 bits, transparency flattened onto
    white, as a viewer shows it."""
    return flatten_alpha(to_8bit(img)).convert("L" if in_chans == 1 else "RGB")


@dataclass
class Preprocess:
    img_size: int
    in_chans: int
    mean: list[float]
    std: list[float]
    # Datasets of light strokes on a dark ground (digits, MNIST): a photo of dark ink on
    # paper is inverted to match, judged by the image border.
    dark_background: bool = False

    def to_uint8(self, img: Image.Image) -> torch.Tensor:
        """(C, H, W) uint8 at the run's size: what the model saw in training."""
        img = to_mode(img, self.in_chans)
        x = TF.pil_to_tensor(img)
        x = TF.resize(x, [self.img_size, self.img_size], antialias=True)
        if self.dark_background and self.in_chans == 1 and _border_mean(x) > 127:
            x = 255 - x
        return x

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """A (B, C, H, W) float batch; one (C, H, W) image becomes a batch of one."""
        x = normalize(x_uint8, self.mean, self.std)
        return x.unsqueeze(0) if x.dim() == 3 else x

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.normalize(self.to_uint8(img))


def _border_mean(x: torch.Tensor) -> float:
    border = torch.cat([x[:, 0].flatten(), x[:, -1].flatten(), x[:, :, 0].flatten(), x[:, :, -1].flatten()])
    return float(border.float().mean())


@dataclass
class LoadedRun:
    path: Path
    name: str
    config: dict
    model: nn.Module
    preprocess: Preprocess
    class_names: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.config.get("model_kind") or model_kind(self.config["model"])

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a normalised (B, C, H, W) batch."""
        return self.model(x).float().softmax(-1)


DARK_BACKGROUND_DATASETS = ("digits", "mnist", "fashion-mnist")


def preprocess_for(cfg: dict) -> Preprocess:
    return Preprocess(int(cfg["img_size"]), int(cfg["in_chans"]), list(cfg["mean"]), list(cfg["std"]),
                      dark_background=cfg.get("dataset") in DARK_BACKGROUND_DATASETS)


def model_from_config(cfg: dict) -> nn.Module:
    try:
        return build_model(cfg["model"], num_classes=int(cfg["num_classes"]), img_size=int(cfg["img_size"]),
                           in_chans=int(cfg["in_chans"]), **cfg.get("model_hparams", {}))
    except KeyError as err:
        raise RunError(f"config.json lacks {err}: not a TinyViT Lab run") from None
    except (ModelError, ValueError, TypeError) as err:
        raise RunError(f"config.json names a model this version cannot build: {err}") from None


def load_run(path: Path | str, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild a run's model from config.json and model.safetensors, in eval mode."""
    run = open_run(path)
    cfg = run.config()
    if not run.file(WEIGHTS).is_file():
        raise RunError(f"{run.name} has no trained weights yet (it has not finished an epoch)")
    model = model_from_config(cfg)
    try:
        load_weights(run.file(WEIGHTS), model)
    except CheckpointError as err:
        raise RunError(str(err)) from None
    model.to(device).eval()
    return LoadedRun(run.path, run.name, cfg, model, preprocess_for(cfg), list(cfg.get("class_names", [])))
