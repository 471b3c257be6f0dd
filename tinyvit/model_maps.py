"""The one map each model is explained with in the comparison views and the timeline:
attention rollout for a ViT, Grad-CAM for a CNN, for a whole batch.

Every new view (drill-down, disagreements, timeline) goes through `own_maps`, so switching
them to another explanation method is a change here only."""
from __future__ import annotations

import torch
import torch.nn as nn

from .explain import attention_rollout, grad_cam

METHOD_TITLES = {"vit": "Attention rollout", "cnn": "Grad-CAM"}


def method_title(kind: str) -> str:
    return METHOD_TITLES.get(kind, "Grad-CAM")


def own_maps(model: nn.Module, kind: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (B, K), maps (B, h, w) in [0, 1]) for a normalised batch, at the
    model's token or feature grid. The model must be in eval mode."""
    if kind == "vit":
        with torch.inference_mode():
            logits, attentions = model.forward_with_attention(x)
        return logits.float().softmax(-1), attention_rollout(attentions, model.grid)
    return grad_cam(model, x)
