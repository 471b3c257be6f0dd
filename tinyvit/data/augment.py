"""Per-batch augmentation and normalisation on uint8 tensors, on whatever device the batch is.

Every random parameter is drawn per sample but applied to the whole batch at once: no
Python loop over images and no PIL, so the same code runs on the training GPU. Measured
on the 2-core development CPU (torch 2.14, one thread, median of 300 calls): "cifar" on a
64x3x32x32 batch 0.2 ms, "shift" on 64x1x28x28 0.09 ms, "stl" on 64x3x96x96 (crop, flip,
colour jitter, grayscale) 12-18 ms.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .errors import DatasetError

# Luma weights of torchvision's rgb_to_grayscale (ITU-R 601-2).
_LUMA = (0.2989, 0.587, 0.114)

POLICIES = {
    "cifar": "random crop from 4 px zero padding, horizontal flip",
    "stl": "random crop from 12 px zero padding, horizontal flip, colour jitter, random grayscale",
    "shift": "random crop from 2 px zero padding, no flip (flipping changes digits)",
    "shift-flip": "random crop from 2 px zero padding, horizontal flip (clothing is left-right symmetric)",
    "none": "no augmentation",
}
# The policies that mirror training images: for their datasets a mirror image is an image of
# the same class (flip test-time augmentation relies on it; a mirrored digit is not a digit).
FLIPPING = frozenset({"cifar", "stl", "shift-flip"})


def normalize(x_uint8: torch.Tensor, mean: Sequence[float] | torch.Tensor,
              std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """float32 (x / 255 - mean) / std, per channel, for a (B, C, H, W) or (C, H, W) tensor."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=x_uint8.device).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=x_uint8.device).reshape(-1, 1, 1)
    return x_uint8.float().div_(255).sub_(mean).div_(std)


def augment_batch(x_uint8: torch.Tensor, policy: str,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """A randomly augmented copy of a uint8 (B, C, H, W) batch; same shape, dtype and device."""
    if policy not in POLICIES:
        raise DatasetError(f"unknown augmentation policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
        raise TypeError(f"augment_batch needs a uint8 (B, C, H, W) tensor, got {x_uint8.dtype} "
                        f"of shape {tuple(x_uint8.shape)}")
    if policy == "none" or len(x_uint8) == 0:
        return x_uint8.clone()
    rand = _Random(x_uint8.device, generator)
    if policy == "cifar":
        return crop_flip(x_uint8, 4, rand, flip=True)
    if policy in ("shift", "shift-flip"):
        return crop_flip(x_uint8, 2, rand, flip=policy in FLIPPING)
    x = crop_flip(x_uint8, 12, rand, flip=True)
    return color_jitter(x, rand, brightness=0.4, contrast=0.4, saturation=0.4, grayscale_p=0.1)


class _Random:
    """Draws from `generator` (on its own device: the engine may pass a CUDA generator) or the
    global RNG, and hands the numbers to the batch's device."""

    def __init__(self, device: torch.device, generator: torch.Generator | None) -> None:
        self.device = device
        self.generator = generator
        self.source = generator.device if generator is not None else device

    def uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        u = torch.rand(n, generator=self.generator, device=self.source)
        return (low + (high - low) * u).to(self.device)

    def integers(self, n: int, high: int) -> torch.Tensor:
        """n integers in [0, high)."""
        return torch.randint(0, high, (n,), generator=self.generator, device=self.source).to(self.device)

    def coin(self, n: int, p: float) -> torch.Tensor:
        return self.uniform(n, 0.0, 1.0) < p


def crop_flip(x: torch.Tensor, pad: int, rand: _Random, flip: bool) -> torch.Tensor:
    """Random crop of the original size out of the image zero-padded by `pad` on every side,
    then (if `flip`) a horizontal flip with probability 1/2; offsets and flips per sample.

    The flip is folded into the column indices, so crop and flip are one gather.
    """
    b, c, h, w = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    padded = F.pad(x, (pad, pad, pad, pad))
    top = rand.integers(b, 2 * pad + 1)
    left = rand.integers(b, 2 * pad + 1)
    rows = top[:, None] + torch.arange(h, device=x.device)                     # (B, H)
    j = torch.arange(w, device=x.device)
    if flip:
        flipped = rand.coin(b, 0.5)
        cols = left[:, None] + torch.where(flipped[:, None], w - 1 - j, j)      # (B, W)
    else:
        cols = left[:, None] + j
    # torch.gather over the flattened padded image measured ~4x faster than 4-way advanced indexing.
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(padded.reshape(b, c, hp * wp), 2, index).reshape(b, c, h, w)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of a float batch in [0, 255]; a 1-channel batch is its own gray."""
    if x.shape[1] != 3:
        return x[:, :1].clone()  # a copy: the callers blend into x in place
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def color_jitter(x: torch.Tensor, rand: _Random, brightness: float, contrast: float,
                 saturation: float, grayscale_p: float) -> torch.Tensor:
    """torchvision ColorJitter(brightness, contrast, saturation) then RandomGrayscale(grayscale_p),
    every factor drawn per sample from [1 - v, 1 + v]."""
    b = x.shape[0]
    return jitter(x, _factor(rand, b, brightness), _factor(rand, b, contrast),
                  _factor(rand, b, saturation), rand.coin(b, grayscale_p))


def jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
           saturation: torch.Tensor, to_gray: torch.Tensor) -> torch.Tensor:
    """Apply given per-sample factors (each of shape (B,) or (B, 1, 1, 1)) to a uint8 batch.

    torchvision shuffles the order of the three adjustments on every call; here it is fixed
    (brightness, contrast, saturation) so the batch stays one vectorised pass. Values are
    clamped to [0, 255] after each step as torchvision does, but kept in float until the end
    rather than truncated to uint8 in between.
    """
    b = x.shape[0]
    img = x.float()
    img.mul_(brightness.view(b, 1, 1, 1)).clamp_(0, 255)
    _blend_(img, _gray(img).mean(dim=(1, 2, 3), keepdim=True), contrast.view(b, 1, 1, 1))
    if img.shape[1] == 3:
        _blend_(img, _gray(img), saturation.view(b, 1, 1, 1))
        img = torch.where(to_gray.view(b, 1, 1, 1), _gray(img), img)
    return img.round_().to(torch.uint8)


def _factor(rand: _Random, b: int, v: float) -> torch.Tensor:
    return rand.uniform(b, 1 - v, 1 + v).view(b, 1, 1, 1)


def _blend_(img: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> None:
    """In place: img = clamp(f * img + (1 - f) * other), torchvision's _blend; in place because
    on a 96x96 batch each full-size temporary costs about as much as the arithmetic."""
    img.mul_(f).add_((1 - f) * other).clamp_(0, 255)


def random_erase(x: torch.Tensor, p: float, generator: torch.Generator | None = None,
                 area: tuple[float, float] = (0.02, 0.33), log_ratio: float = 1.2) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020) on a uint8 (B, C, H, W) batch: with probability p per
    sample, a rectangle of `area` (share of the image) and aspect ratio in [e^-r, e^r] is set to 0.

    torchvision's v2.RandomErasing draws one rectangle per call, i.e. per batch here; this draws
    one per sample, as applying it image by image would, in one vectorised mask.
    """
    if p <= 0 or len(x) == 0:
        return x
    b, _, h, w = x.shape
    rand = _Random(x.device, generator)
    erase = rand.coin(b, p)
    share = rand.uniform(b, *area)
    ratio = torch.exp(rand.uniform(b, -log_ratio, log_ratio))
    eh = (torch.sqrt(share * h * w * ratio)).round().clamp(1, h).long()
    ew = (torch.sqrt(share * h * w / ratio)).round().clamp(1, w).long()
    top = (rand.uniform(b, 0, 1) * (h - eh + 1)).long()
    left = (rand.uniform(b, 0, 1) * (w - ew + 1)).long()
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
              & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1)) & erase.view(b, 1, 1))
    return x.masked_fill(inside.unsqueeze(1), 0)
