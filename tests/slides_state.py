"""The slides' model's weights under TinyViT's parameter names: what lets the tests show that
TinyViT(norm="post") computes the same function as tinyvit.models.slides.SlidesTinyViT."""
from __future__ import annotations

import torch

from tinyvit.models.slides import SlidesTinyViT


def to_tinyvit_state(slides: SlidesTinyViT) -> dict[str, torch.Tensor]:
    """The slides model's weights under TinyViT's parameter names."""
    s = slides.state_dict()
    out = {"patch_embed.proj.weight": s["proj.weight"], "patch_embed.proj.bias": s["proj.bias"],
           "cls_token": s["cls_token"], "pos_embed": s["pos_embed"],
           "norm.weight": s["norm.weight"], "norm.bias": s["norm.bias"],
           "classifier.weight": s["classifier.weight"], "classifier.bias": s["classifier.bias"]}
    names = {"self_attn.in_proj_weight": "attn.qkv.weight", "self_attn.in_proj_bias": "attn.qkv.bias",
             "self_attn.out_proj.weight": "attn.proj.weight", "self_attn.out_proj.bias": "attn.proj.bias",
             "linear1.weight": "mlp.fc1.weight", "linear1.bias": "mlp.fc1.bias",
             "linear2.weight": "mlp.fc2.weight", "linear2.bias": "mlp.fc2.bias",
             "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
             "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias"}
    for key, value in s.items():
        if key.startswith("transformer.layers."):
            _, _, i, rest = key.split(".", 3)
            out[f"blocks.{i}.{names[rest]}"] = value
    return out
