"""One image through a loaded run: probabilities, saliency maps, and what the model saw.

The app's pages call this instead of touching models. No Streamlit here, so it is tested
without an app.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .. import explain as ex
from ..inference import LoadedRun, _border_mean, to_mode
from ..samples import confident_mistakes as samples_mistakes

METHODS = {k: m.title for k, m in ex.METHODS.items()}
# Cached models are shared by every browser session of the server; the CAMs hook a layer
# and run backward on the shared model, so explanations take turns.
_LOCK = threading.Lock()


@dataclass
class Explanation:
    probs: torch.Tensor    # (K,) class probabilities
    heat: torch.Tensor     # (h, w) in [0, 1]
    method: str            # a METHODS key
    target: int = -1       # the class the map explains

    @property
    def top(self) -> int:
        return int(self.probs.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probs.max())


def methods_for(loaded: LoadedRun, cheap_only: bool = True) -> list[str]:
    """The methods this run's model can run (ScoreCAM left out unless asked: it is slow)."""
    return ex.methods_for(loaded.kind, loaded.config.get("model"), cheap_only=cheap_only)


def default_method(loaded: LoadedRun) -> str:
    return "rollout" if loaded.kind == "vit" else "gradcam"


def attention_shape(loaded: LoadedRun) -> tuple[int, int]:
    """(layers, heads) of a TinyViT, for the layer and head selectors."""
    hp = loaded.config.get("model_hparams", {})
    return int(hp.get("num_layers", len(loaded.model.blocks))), int(hp.get("num_heads", 1))


def prepare(loaded: LoadedRun, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 (C, H, W) as the model sees it, normalised (1, C, H, W) batch)."""
    x8 = loaded.preprocess.to_uint8(image)
    return x8, loaded.preprocess.normalize(x8)


def explain_all(loaded: LoadedRun, x: torch.Tensor, methods: list[str] | None = None, target: int | None = None,
                layer: int = -1, head: int | None = None) -> ex.Maps:
    """Every method's map for one normalised image (1, C, H, W); see explain.explain_batch."""
    with _LOCK:
        return ex.explain_batch(loaded.model, x, loaded.kind, methods or methods_for(loaded), target, layer, head)


def explain(loaded: LoadedRun, x: torch.Tensor, method: str = "rollout", layer: int = -1,
            head: int | None = None, target: int | None = None) -> Explanation:
    """Probabilities and one method's map for one normalised image (1, C, H, W)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    maps = explain_all(loaded, x, [method], target, layer, head)
    if method in maps.errors:
        raise ValueError(maps.errors[method])
    return Explanation(maps.probs[0], maps.heat[method][0], method, int(maps.target[0]))


def grid_note(loaded: LoadedRun, method: str) -> str:
    """Where a map's resolution comes from, for the caption under it."""
    size = int(loaded.config.get("img_size", 0))
    if method in ex.ATTENTION_METHODS:
        g = loaded.model.grid
        p = size // g if g else 0
        return f"one value per {p}×{p}-pixel patch: a {g}×{g} grid, smoothed to the image"
    target = ex.CAM_TARGETS.get(loaded.config.get("model"))
    where = f"read from {target.why}" if target else "read from a feature map"
    return f"{where}, then resized to the image's pixels"


# -- what the model saw ----------------------------------------------------------------------
def preprocessing_steps(loaded: LoadedRun, image: Image.Image) -> list[str]:
    """What was done to the upload before the model saw it, in plain words."""
    pre = loaded.preprocess
    steps = []
    w, h = image.size
    if (w, h) != (pre.img_size, pre.img_size):
        squash = " (squashed to a square)" if max(w, h) > 1.3 * min(w, h) else ""
        steps.append(f"resized from {w}×{h} to {pre.img_size}×{pre.img_size}{squash}")
    mode = to_mode(image, pre.in_chans)
    if pre.in_chans == 1 and image.mode not in ("L", "1", "I", "I;16", "F", "LA"):
        steps.append("converted to grey")
    if pre.dark_background and pre.in_chans == 1:
        x = torch.from_numpy(np.array(mode.resize((pre.img_size, pre.img_size)), dtype=np.uint8))[None]
        if _border_mean(x) > 127:
            steps.append("inverted (dark strokes on a light ground become light on dark, as in training)")
    return steps


# Beyond these the upload does not look like the training images (normalised pixels have mean 0
# and standard deviation 1 over the training set).
MAX_SATURATION = 40.0         # mean HSV saturation (0..255) of a colour photo; grey is 0
MAX_MEAN_SHIFT = 1.5          # |mean| of the normalised image
STD_RANGE = (0.35, 2.5)       # its standard deviation
MAX_SHRINK = 8.0              # times smaller per side


def cautions(loaded: LoadedRun, image: Image.Image, x: torch.Tensor) -> list[str]:
    """Reasons to doubt a prediction on this upload: ways it differs from the training data."""
    pre = loaded.preprocess
    reasons = []
    if pre.in_chans == 1:
        hsv = np.asarray(to_mode(image, 3).resize((64, 64)).convert("HSV"), dtype=np.float32)
        if hsv[..., 1].mean() > MAX_SATURATION:
            reasons.append("it is a colour image, and the model only ever saw grey ones")
    shrink = max(image.size) / pre.img_size
    if shrink > MAX_SHRINK:
        reasons.append(f"it was shrunk {shrink:.0f}× to {pre.img_size}×{pre.img_size} pixels, "
                       "so most of its detail is gone")
    mean, std = float(x.mean()), float(x.std())
    if abs(mean) > MAX_MEAN_SHIFT or not STD_RANGE[0] <= std <= STD_RANGE[1]:
        reasons.append(f"its brightness and contrast are far from the training images' "
                       f"(normalised mean {mean:+.1f}, spread {std:.1f}; training: 0 and 1)")
    return reasons


def confident_mistakes(samples: dict[str, torch.Tensor], n: int = 8) -> list[int]:
    """Positions in the saved samples of the n most confident wrong predictions."""
    return samples_mistakes(samples["labels"], samples["preds"], samples["confidences"])[:n].tolist()
