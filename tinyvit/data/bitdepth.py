"""Images deeper than 8 bits per channel, brought to 0..255 by scaling.

PIL's convert("L"/"RGB") clips a 16-bit grayscale image at 255 instead of scaling it, so
nearly every pixel turns white; the dataset loader and the app's upload path both pass
images through to_8bit first.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit ("I;16*") or 32-bit integer ("I") grayscale image as 8-bit "L"; others unchanged.

    "I" is what some PNG readers give for 16-bit files, so it is read as 16-bit unless all
    its values already fit in 8 bits."""
    if not (img.mode.startswith("I;16") or img.mode == "I"):
        return img
    values = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))
