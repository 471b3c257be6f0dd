"""The one map each model is explained with in the comparison views and the timeline:
attention rollout for a ViT, Grad-CAM for a CNN, for a whole batch.

Every new view (drill-down, disagreements, timeline) goes through `own_maps`, so switching
them to another explanation method is a change here only."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .explain import CAM_TARGETS, attention_rollout, attention_weights, cam_map

METHOD_TITLES = {"vit": "Attention rollout", "cnn": "Grad-CAM"}


def method_title(kind: str) -> str:
    return METHOD_TITLES.get(kind, "Grad-CAM")


def own_maps(model: nn.Module, kind: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (B, K), maps (B, h, w) in [0, 1]) for a normalised batch, at the
    model's token or feature grid. The model must be in eval mode."""
    if kind == "vit":
        with torch.inference_mode():
            logits, attentions = attention_weights(model, x)
        return logits.float().softmax(-1), attention_rollout(attentions, model.grid)
    # One plain forward gives the probabilities and the feature grid; Grad-CAM then explains the
    # predicted class with its own forward and backward (the timeline pays this every epoch).
    layer = CAM_TARGETS[getattr(model, "model_name", "cnn")].layer(model)
    seen = {}

    def keep_shape(module, inputs, output) -> None:   # returns None: the output is left as it is
        seen["grid"] = tuple(int(s) for s in output.shape[-2:])
    handle = layer.register_forward_hook(keep_shape)
    try:
        with torch.no_grad():
            probs = model(x).float().softmax(-1)
    finally:
        handle.remove()
    heat = cam_map(model, x, "gradcam", target=probs.argmax(1))   # (B, H, W) at the input's size
    # Back to the CNN's own feature grid: as coarse as what Grad-CAM really resolves, and small
    # enough for the timeline file.
    return probs, F.adaptive_avg_pool2d(heat[:, None], seen["grid"])[:, 0]
