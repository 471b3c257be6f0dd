"""One image through a loaded run: probabilities plus a map of where the model looked.

The app's pages call this instead of touching models: attention rollout or one layer's
CLS attention for TinyViT, Grad-CAM for any model (so ViT and CNN can be compared with
the same method). No Streamlit here, so it is tested without an app.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from PIL import Image

from .explain import attention_rollout, cls_attention, grad_cam
from .inference import LoadedRun

METHODS = {"rollout": "Attention rollout", "cls": "CLS attention (one layer)", "gradcam": "Grad-CAM"}
# Cached models are shared by every browser session of the server; Grad-CAM hooks a layer
# and runs backward on the shared model, so explanations take turns.
_LOCK = threading.Lock()


@dataclass
class Explanation:
    probs: torch.Tensor    # (K,) class probabilities
    heat: torch.Tensor     # (h, w) in [0, 1]
    method: str            # a METHODS key

    @property
    def top(self) -> int:
        return int(self.probs.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probs.max())


def methods_for(loaded: LoadedRun) -> list[str]:
    """Attention maps exist only for the ViT; Grad-CAM works for both kinds."""
    return ["rollout", "cls", "gradcam"] if loaded.kind == "vit" else ["gradcam"]


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


def explain(loaded: LoadedRun, x: torch.Tensor, method: str = "rollout", layer: int = -1,
            head: int | None = None) -> Explanation:
    """Probabilities and a map for one normalised image (1, C, H, W).

    method: "rollout" (all layers), "cls" (the CLS row of `layer`, one `head` or the
    mean of heads when None) or "gradcam" (for the predicted class)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method != "gradcam" and loaded.kind != "vit":
        raise ValueError(f"{METHODS[method]} needs a transformer; {loaded.name} is a CNN (use Grad-CAM)")
    model = loaded.model
    with _LOCK:
        if method == "gradcam":
            probs, heat = grad_cam(model, x)
            return Explanation(probs[0], heat[0], method)
        with torch.inference_mode():
            logits, attentions = model.forward_with_attention(x)
        probs = logits.float().softmax(-1)[0]
        if method == "rollout":
            heat = attention_rollout(attentions, model.grid)[0]
        else:
            heat = cls_attention(attentions, model.grid, layer, head)[0]
    return Explanation(probs, heat, method)


def confident_mistakes(samples: dict[str, torch.Tensor], n: int = 8) -> list[int]:
    """Positions in the saved samples of the n most confident wrong predictions."""
    wrong = (samples["preds"] != samples["labels"]).nonzero().flatten()
    order = samples["confidences"][wrong].argsort(descending=True)
    return wrong[order][:n].tolist()
