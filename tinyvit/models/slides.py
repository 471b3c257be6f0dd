"""The slides' way of building TinyViT: `nn.TransformerEncoder`, post-norm.

Not used for training. It is the baseline the benchmark measures against, and the tests
(tests/slides_state.py) load its weights into `TinyViT` to show both compute the same function.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class SlidesTinyViT(nn.Module):
    def __init__(self, num_classes: int = 10, embed_dim: int = 128, img_size: int = 32,
                 patch_size: int = 4, in_chans: int = 3, num_heads: int = 8, num_layers: int = 6,
                 mlp_dim: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(embed_dim, num_heads, mlp_dim, dropout, "gelu",
                                           batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        p = self.patch_size
        # unfold → (B, C, gh, gw, p, p) → patches flattened as (p, p, C), as the slides do.
        x = x.unfold(2, p, p).unfold(3, p, p).reshape(b, c, -1, p, p)
        x = self.proj(x.permute(0, 2, 3, 4, 1).reshape(b, self.num_patches, -1))
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + self.pos_embed
        x = self.transformer(x)
        return self.classifier(self.norm(x[:, 0]))
