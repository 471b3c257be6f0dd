"""Speed changes to TinyViT keep its function: the last block computes the CLS row alone."""
from __future__ import annotations

import pytest
import torch

from tinyvit.models.vit import TinyViT


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cls_only_last_block_gives_the_full_blocks_logits_and_gradients(norm):
    torch.manual_seed(4)
    model = TinyViT(embed_dim=32, num_heads=4, num_layers=3, mlp_dim=64, norm=norm).eval()
    x = torch.randn(6, 3, 32, 32)
    runs = []
    for forward in (model, lambda t: model.forward_with_attention(t)[0]):  # the latter: every token
        model.zero_grad()
        out = forward(x)
        out.square().sum().backward()
        runs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, ga), (b, gb) = runs
    assert torch.allclose(a, b, atol=1e-5)
    assert all(torch.allclose(u, v, atol=1e-5, rtol=1e-4) for u, v in zip(ga, gb))
