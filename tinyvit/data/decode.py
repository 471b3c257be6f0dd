"""Opening one image file the way both the image-folder loader and the app's uploads need it:
decoded whole, upright (EXIF), 8 bits per channel, transparency flattened onto white."""
from __future__ import annotations

import warnings
from typing import BinaryIO

from PIL import Image, ImageOps

from .bitdepth import to_8bit


def flatten_alpha(img: Image.Image) -> Image.Image:
    """Transparent pixels onto white, as an image viewer shows them; other images unchanged."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img


def open_upright(source: str | BinaryIO) -> Image.Image:
    """The decoded image, upright and 8-bit. PIL's own errors pass through for the caller to
    word; a decompression-bomb warning (between PIL's pixel limit and twice it) is raised as
    the error it stands for."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source) as img:
            img.load()
            return to_8bit(ImageOps.exif_transpose(img))
