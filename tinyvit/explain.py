"""Where a model looks: attention rollout and CLS attention (ViT), Grad-CAM (any model)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from plotly.colors import get_colorscale, sample_colorscale

COLORMAPS = ("Jet", "Viridis", "Inferno", "Turbo", "Hot", "Greys")


def _unit(m: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] per map (a flat map becomes all zeros)."""
    flat = m.flatten(-2)
    lo, hi = flat.min(-1).values[..., None, None], flat.max(-1).values[..., None, None]
    return (m - lo) / (hi - lo).clamp_min(1e-12)


def attention_rollout(attentions: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Abnar & Zuidema (2020): average heads, add the residual identity, renormalise rows,
    multiply through the layers; the CLS row over the patches, as a (B, grid, grid) map in [0, 1]."""
    joint = None
    for a in attentions:
        a = a.float().mean(1)
        a = a + torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        joint = a if joint is None else a @ joint
    cls = joint[:, 0, 1:]
    return _unit(cls.reshape(-1, grid, grid))


def cls_attention(attentions: list[torch.Tensor], grid: int, layer: int, head: int | None) -> torch.Tensor:
    """Raw attention of the CLS token to each patch in one layer; one head, or their mean."""
    a = attentions[layer].float()
    a = a.mean(1) if head is None else a[:, head]
    return _unit(a[:, 0, 1:].reshape(-1, grid, grid))


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM on the model's `cam_layer()`: (probabilities (B, K), map (B, h, w) in [0, 1]).

    `target` is the class explained (default: each image's predicted class)."""
    store: dict[str, torch.Tensor] = {}

    def keep(_module, _inp, out):
        act = out[0] if isinstance(out, tuple) else out
        act.retain_grad()
        store["act"] = act

    handle = model.cam_layer().register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(False)
            logits = model(x)
            idx = logits.argmax(1) if target is None else torch.full((len(x),), target, device=x.device)
            score = logits.gather(1, idx[:, None]).sum()
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        handle.remove()
    act = model.cam_reshape(store["act"])
    grad = model.cam_reshape(store["act"].grad)
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1))
    model.zero_grad(set_to_none=True)
    return logits.detach().float().softmax(1), _unit(cam.detach())


def upsample(heat: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    size = (size, size) if isinstance(size, int) else size
    return F.interpolate(heat[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def _lut(colormap: str) -> np.ndarray:
    scale = get_colorscale(colormap)
    cols = sample_colorscale(scale, np.linspace(0, 1, 256).tolist(), colortype="tuple")
    return (np.array(cols) * (255 if max(max(c) for c in cols) <= 1 else 1)).clip(0, 255).astype(np.uint8)


def overlay(image: Image.Image | np.ndarray, heat: torch.Tensor, colormap: str = "Jet",
            opacity: float = 0.5, size: int | None = None) -> Image.Image:
    """The heat map (any resolution, values in [0, 1]) coloured and blended over the image."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    if size:
        img = img.resize((size, size), Image.NEAREST if min(img.size) < size else Image.BILINEAR)
    heat = upsample(heat.detach().cpu(), (img.size[1], img.size[0])).clamp(0, 1)
    colours = _lut(colormap)[(heat.numpy() * 255).astype(np.uint8)]
    blended = (1 - opacity) * np.asarray(img, dtype=np.float32) + opacity * colours.astype(np.float32)
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def uint8_to_pil(x: torch.Tensor) -> Image.Image:
    """(C, H, W) uint8 tensor → PIL image (gray or RGB)."""
    arr = x.detach().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
