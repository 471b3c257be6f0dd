"""Colouring saliency maps: a colour map applied to a [0, 1] map, blended over the image, and
the colour bar that says what the colours mean. numpy, PIL and matplotlib's colour tables only."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..explain import upsample

# Shown name -> matplotlib colour map.
_MATPLOTLIB = {"Jet": "jet", "Viridis": "viridis", "Inferno": "inferno", "Turbo": "turbo", "Hot": "hot",
               "Greys": "Greys"}
COLORMAPS = tuple(_MATPLOTLIB)


@lru_cache(maxsize=None)
def lut(colormap: str) -> np.ndarray:
    """(256, 3) uint8 colours from 0 (least weight) to 1 (most)."""
    from matplotlib import colormaps
    if colormap not in _MATPLOTLIB:
        raise ValueError(f"unknown colour map {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    rgba = colormaps[_MATPLOTLIB[colormap]](np.linspace(0, 1, 256))
    return (rgba[:, :3] * 255).round().astype(np.uint8)


def colourize(heat: torch.Tensor | np.ndarray, colormap: str = "Jet") -> np.ndarray:
    """A (h, w) map in [0, 1] as (h, w, 3) uint8 colours."""
    h = np.asarray(heat.detach().cpu() if isinstance(heat, torch.Tensor) else heat, dtype=np.float32)
    return lut(colormap)[(np.clip(h, 0, 1) * 255).astype(np.uint8)]


def overlay(image: Image.Image | np.ndarray, heat: torch.Tensor, colormap: str = "Jet",
            opacity: float = 0.5, size: int | None = None) -> Image.Image:
    """The heat map (any resolution, values in [0, 1]) coloured and blended over the image.
    `size` enlarges a small image (nearest neighbour, so its real pixels stay visible)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    if size:
        img = img.resize((size, size), Image.NEAREST if min(img.size) < size else Image.BILINEAR)
    heat = upsample(torch.as_tensor(heat).detach().cpu().float(), (img.size[1], img.size[0])).clamp(0, 1)
    colours = colourize(heat, colormap).astype(np.float32)
    blended = (1 - opacity) * np.asarray(img, dtype=np.float32) + opacity * colours
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def colour_bar(colormap: str = "Jet", width: int = 256, height: int = 14) -> Image.Image:
    """A horizontal strip from least weight (left) to most (right), with a thin frame."""
    strip = np.repeat(lut(colormap)[np.linspace(0, 255, width).astype(int)][None], height, axis=0)
    img = Image.fromarray(strip)
    ImageDraw.Draw(img).rectangle([0, 0, width - 1, height - 1], outline=(90, 90, 90))
    return img
