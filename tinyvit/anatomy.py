"""The classic pictures of what a trained model holds, as arrays (Dosovitskiy et al. 2021,
"An Image is Worth 16x16 Words", figure 7; the first-layer filters and receptive fields
of CNN textbooks). Plain tensors in, numpy arrays out; the Anatomy page draws them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .explain import attention_weights


class AnatomyError(ValueError):
    """The model has not got what a picture needs (e.g. a CNN has no position embeddings)."""


def _require_vit(model: nn.Module) -> None:
    if not (hasattr(model, "pos_embed") and hasattr(model, "patch_embed") and hasattr(model, "blocks")):
        raise AnatomyError("this picture needs a TinyViT (patch and position embeddings, attention layers)")


def position_similarity(model: nn.Module) -> np.ndarray:
    """(g, g, g, g): [r, c] is the cosine similarity of patch (r, c)'s position embedding with
    every patch's, as a g×g map (the CLS token's embedding is left out)."""
    _require_vit(model)
    g = model.grid
    pos = model.pos_embed.detach().float()[0, 1:]
    unit = F.normalize(pos, dim=-1)
    return (unit @ unit.T).reshape(g, g, g, g).numpy()


def patch_components(model: nn.Module, n: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """The first n principal components of the patch-embedding filters, as (n, p, p, C)
    images scaled to [0, 1] each, and the share of variance each explains."""
    _require_vit(model)
    pe = model.patch_embed
    p = pe.patch_size
    w = pe.proj.weight.detach().float()            # (D, p*p*C), flattened in (p, p, C) order
    c = w.shape[1] // (p * p)
    centred = w - w.mean(0, keepdim=True)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    k = min(n, vt.shape[0])
    comps = vt[:k].reshape(k, p, p, c)
    lo = comps.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = comps.flatten(1).max(1).values.view(-1, 1, 1, 1)
    share = (s ** 2 / (s ** 2).sum().clamp_min(1e-12))[:k]
    return ((comps - lo) / (hi - lo).clamp_min(1e-12)).numpy(), share.numpy()


def patch_distances(grid: int, patch: int) -> torch.Tensor:
    """(g², g²) distance in pixels between the centres of every pair of patches."""
    r, c = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([r.flatten(), c.flatten()], 1).float() * patch
    return torch.cdist(centres, centres)


@torch.inference_mode()
def mean_attention_distance(model: nn.Module, x: torch.Tensor, batch: int = 128) -> np.ndarray:
    """(layers, heads): how far, in pixels, each head looks on average: the attention-weighted
    distance from each patch to the patches it attends to, over patch queries and images.
    Attention to the CLS token is left out and the rest renormalised."""
    _require_vit(model)
    d = patch_distances(model.grid, model.patch_embed.patch_size)
    total, count = None, 0
    for i in range(0, len(x), batch):
        _, attentions = attention_weights(model, x[i:i + batch])
        a = torch.stack([t.float()[:, :, 1:, 1:] for t in attentions])   # (L, B, H, N, N)
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        per = (a * d).sum(-1).mean(-1).sum(1)                            # (L, H), summed over images
        total = per if total is None else total + per
        count += a.shape[1]
    if total is None:
        raise AnatomyError("no images to measure attention distance on")
    return (total / count).numpy()


# -- CNN ----------------------------------------------------------------------------------
def first_conv(model: nn.Module) -> nn.Conv2d:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise AnatomyError("this model has no convolution")


def first_filters(model: nn.Module, n: int = 64) -> np.ndarray:
    """The first convolution's filters as (n, k, k, C) images scaled to [0, 1] each."""
    w = first_conv(model).weight.detach().float()[:n]          # (n, C, k, k)
    lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
    return ((w - lo) / (hi - lo).clamp_min(1e-12)).permute(0, 2, 3, 1).numpy()


@dataclass
class Stage:
    name: str
    receptive_field: int   # pixels of the input one feature of this stage can see
    stride: int            # input pixels between two neighbouring features
    resolution: int        # feature map side for the model's input size


def _pair(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def receptive_fields(model: nn.Module, img_size: int) -> list[Stage]:
    """The theoretical receptive field at the end of each stage (a stage ends where the
    resolution drops, and at the last layer), walking the convolutions and poolings in order.
    ResNet shortcuts (1×1 'downsample' convolutions) run beside the main path: skipped."""
    rf, jump, size = 1, 1, img_size
    stages: list[Stage] = []
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and "downsample" not in name]
    if not layers:
        raise AnatomyError("this model has no convolution or pooling layer")
    for _, m in layers:
        k, s = _pair(m.kernel_size), _pair(m.stride)
        dil = _pair(getattr(m, "dilation", 1))
        pad = _pair(getattr(m, "padding", 0))
        if s > 1 and (not stages or stages[-1].stride != jump):  # a stage ends where resolution drops
            stages.append(Stage(f"stage {len(stages) + 1}", rf, jump, size))
        rf += (dil * (k - 1)) * jump
        jump *= s
        size = (size + 2 * pad - dil * (k - 1) - 1) // s + 1
    stages.append(Stage(f"stage {len(stages) + 1}", rf, jump, size))
    return stages


def mosaic(tiles: np.ndarray, columns: int = 8, scale: int = 8, gap: int = 2) -> np.ndarray:
    """(n, h, w, C) tiles in [0, 1] as one RGB uint8 picture, each pixel scale×scale, in a grid
    with white gaps (grayscale tiles become gray RGB)."""
    n, h, w, c = tiles.shape
    rgb = np.repeat(tiles, 3, axis=-1) if c == 1 else tiles[..., :3]
    big = np.kron(rgb, np.ones((1, scale, scale, 1)))
    rows = -(-n // columns)
    th, tw = h * scale, w * scale
    out = np.ones((rows * (th + gap) - gap, min(n, columns) * (tw + gap) - gap, 3))
    for i in range(n):
        r, col = divmod(i, columns)
        out[r * (th + gap):r * (th + gap) + th, col * (tw + gap):col * (tw + gap) + tw] = big[i]
    return (out * 255).round().clip(0, 255).astype(np.uint8)
