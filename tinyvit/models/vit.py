"""TinyViT: the slides' small Vision Transformer, with its own encoder block.

The slides build the encoder from `nn.TransformerEncoder`. Its fast path hides the
attention weights, so this file writes the block itself (timm-style): the same
parameters, the same dropout sites, fused attention unless `fused_attn` is off, an
explicit softmax then, whose weights pass through `attn_drop` where a forward hook can
catch them (tinyvit.explain.attention_weights). With the slides' CIFAR-10 table it has
exactly the slides' 1,205,898 trainable parameters.

Training switches on two CPU speed-ups with `TinyViT.fast_training()`; without them the
model computes as the slides describe it (and the two give the same function).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin

from .dropout import FastDropout, fast_path

NORMS = ("post", "pre")
# The slides' encoder (their CIFAR-10 table), named once: the registry's defaults, the presets,
# the studies and the benchmark all start from it.
SLIDES_ENCODER = dict(embed_dim=128, num_heads=8, num_layers=6, mlp_dim=512, dropout=0.1)


class PatchEmbedding(nn.Module):
    """Cut the image into p×p patches, flatten each (p, p, C) and project it linearly."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch_size
        # (B, C, gh, p, gw, p) -> (B, gh, gw, p, p, C): the slides' flattening order, so
        # weights are interchangeable with the slides' unfold-based code.
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return self.proj(x.reshape(b, self.num_patches, p * p * c))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, fused_attn: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = FastDropout(dropout)
        self.proj_drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        p = self.attn_drop.p if self.training else 0.0
        # SDPA with dropout_p > 0 on CPU takes its math path and draws the mask with
        # bernoulli_ (~5 ns per element); there the explicit product with FastDropout is faster.
        if self.fused_attn and not (p > 0 and self.attn_drop.fast and fast_path(x, p)):
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = self.attn_drop(weights) @ v
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(out))

    def cls_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output (before `proj`) of the CLS query alone, (B, 1, D): keys and
        values from every token, the query from token 0 only."""
        b, n, d = x.shape
        w, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, :1], w[:d], bias[:d]).view(b, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = F.linear(x, w[d:], bias[d:]).view(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.training and self.attn_drop.p > 0:
            weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = self.attn_drop(weights) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, 1, d)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop1 = FastDropout(dropout)
        self.drop2 = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same dropout sites as nn.TransformerEncoderLayer: inside the FFN and after it.
        return self.drop2(self.fc2(self.drop1(F.gelu(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, a residual branch is dropped for
    whole samples with probability p and scaled by 1/(1-p) otherwise. The per-sample mask comes
    from the blocks' dropout generator, so split-batch threads stay reproducible."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.keep = FastDropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self.keep(x.new_ones((x.shape[0],) + (1,) * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """One encoder layer; `norm="post"` matches nn.TransformerEncoderLayer's default."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float, norm: str,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm_first = norm == "pre"
        self.attn = Attention(dim, num_heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dp = self.drop_path
        if self.norm_first:
            x = x + dp(self.attn(self.norm1(x)))
            return x + dp(self.mlp(self.norm2(x)))
        x = self.norm1(x + dp(self.attn(x)))
        return self.norm2(x + dp(self.mlp(x)))

    def forward_cls(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for the CLS token alone, (B, 1, D).

        The classifier reads only the CLS token of the last block, and in that block the other
        tokens' outputs reach nothing: their queries, attention rows, MLP and norms are dead
        work, 64 of the 65 rows of everything after the key/value projection. Computing the
        CLS row alone is the same function with the same dropout on every element that counts
        (tests/test_vit_speed.py: equal logits and gradients), and skips 14% of a training step's
        FLOPs with the slides' table (0.50 -> 0.43 GFLOP per image): +16% images/s on one core."""
        a, dp = self.attn, self.drop_path
        if self.norm_first:
            h = x[:, :1] + dp(a.proj_drop(a.proj(a.cls_forward(self.norm1(x)))))
            return h + dp(self.mlp(self.norm2(h)))
        h = self.norm1(x[:, :1] + dp(a.proj_drop(a.proj(a.cls_forward(x)))))
        return self.norm2(h + dp(self.mlp(h)))


class TinyViT(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="tinyvit-lab",
    tags=["image-classification", "vision-transformer", "tinyvit-lab"],
):
    """The slides' TinyViT. Defaults are the slides' CIFAR-10 table."""

    def __init__(
        self,
        num_classes: int = 10,
        embed_dim: int = 128,
        img_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 3,
        num_heads: int = 8,
        num_layers: int = 6,
        mlp_dim: int = 512,
        dropout: float = 0.1,
        norm: str = "post",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        check_vit_hparams(img_size, patch_size, embed_dim, num_heads, num_layers, mlp_dim, dropout, norm)
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path {drop_path} must be in [0, 1)")
        self.patch_embed = PatchEmbedding(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        # Stochastic depth grows linearly with depth, as in DeiT/timm: 0 at the first block.
        rates = [drop_path * i / max(1, num_layers - 1) for i in range(num_layers)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_dim, dropout, norm, rate) for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.grid = self.patch_embed.grid
        self.cls_only_last_block = False  # see fast_training()

    def fast_training(self, on: bool = True) -> TinyViT:
        """The training path's CPU speed-ups, one switch for both. In training mode the last
        block computes the CLS token alone (Block.forward_cls: the only token the classifier
        reads), and dropout draws its masks with NumPy (models/dropout.py). Same function and
        gradients either way (tests/test_vit_speed.py); evaluation always runs every token."""
        self.cls_only_last_block = on
        for m in self.modules():
            if isinstance(m, FastDropout):
                m.fast = on
        return self

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._tokens(x)
        cls_only = self.cls_only_last_block and self.training
        for block in self.blocks[:-1] if cls_only else self.blocks:
            x = block(x)
        if cls_only:
            x = self.blocks[-1].forward_cls(x)
        return self.classifier(self.norm(x[:, 0]))


def check_vit_hparams(img_size, patch_size, embed_dim, num_heads, num_layers, mlp_dim, dropout, norm):
    """Raise ValueError with a one-line reason for an impossible TinyViT shape."""
    if patch_size <= 0 or img_size <= 0 or img_size % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide img_size {img_size}")
    if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
        raise ValueError(f"num_heads {num_heads} must divide embed_dim {embed_dim}")
    if num_layers <= 0 or mlp_dim <= 0:
        raise ValueError("num_layers and mlp_dim must be positive")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout {dropout} must be in [0, 1)")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
