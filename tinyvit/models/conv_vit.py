"""TinyViT with a convolutional tokenizer, after CCT (Hassani et al. 2021, "Escaping the Big
Data Paradigm with Compact Transformers").

The slides' TinyViT cuts the image into patches and projects each one linearly: every token
starts from one patch alone, and the encoder must learn locality from data. Here a few 3x3
convolutions, each followed by ReLU and a 2x2 max-pool, make the tokens instead: they see
neighbouring pixels and overlap, the inductive bias a small dataset cannot teach. The token
grid is the one patches would give (4x4 patches and two conv stages both turn 32 px into
8x8), and the encoder, CLS token and head are the slides' TinyViT unchanged, so attention
maps, rollout and Grad-CAM work as for TinyViT.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .vit import TinyViT


def default_conv_stages(img_size: int) -> int:
    """Fewest stride-2 stages that bring the grid to at most 8x8 (28 and 32 px: 2; 96 px: 4)."""
    stages = 1
    while img_size // 2 ** stages > 8 and img_size % 2 ** (stages + 1) == 0:
        stages += 1
    return stages


class ConvTokenizer(nn.Module):
    """(B, C, H, W) -> (B, grid*grid, embed_dim): conv3x3 + ReLU + max-pool 2, `stages` times,
    the widths doubling up to embed_dim."""

    def __init__(self, img_size: int, in_chans: int, embed_dim: int, stages: int) -> None:
        super().__init__()
        if img_size % 2 ** stages:
            raise ValueError(f"conv_stages {stages} must halve img_size {img_size} evenly each time")
        widths = [max(embed_dim // 2 ** (stages - 1 - i), 8) for i in range(stages)]
        widths[-1] = embed_dim
        layers: list[nn.Module] = []
        cin = in_chans
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = w
        self.conv = nn.Sequential(*layers)
        self.grid = img_size // 2 ** stages
        self.num_patches = self.grid * self.grid
        self.patch_size = 2 ** stages   # each token's stride in pixels, for display

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(2).transpose(1, 2)


class TinyViTConv(TinyViT, library_name="tinyvit-lab",
                  tags=["image-classification", "vision-transformer", "tinyvit-lab"]):
    """TinyViT whose patch embedding is a small convolutional tokenizer."""

    def __init__(self, num_classes: int = 10, embed_dim: int = 128, img_size: int = 32,
                 conv_stages: int = 2, in_chans: int = 3, num_heads: int = 8, num_layers: int = 6,
                 mlp_dim: int = 512, dropout: float = 0.1, norm: str = "pre",
                 drop_path: float = 0.0) -> None:
        if conv_stages <= 0:
            raise ValueError(f"conv_stages must be positive, got {conv_stages}")
        super().__init__(num_classes=num_classes, embed_dim=embed_dim, img_size=img_size,
                         patch_size=2 ** conv_stages, in_chans=in_chans, num_heads=num_heads,
                         num_layers=num_layers, mlp_dim=mlp_dim, dropout=dropout, norm=norm,
                         drop_path=drop_path)
        self.patch_embed = ConvTokenizer(img_size, in_chans, embed_dim, conv_stages)
