"""Speed changes to TinyViT keep its function: the last block computes the CLS row alone."""
from __future__ import annotations

import pytest
import torch

from tinyvit.models import dropout as dropout_module
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


def positional_mask(shape, p):
    """A dropout mask that is a fixed function of each element's position, so the CLS row
    (token 0) gets the same mask whether every token or the CLS token alone is computed."""
    code = torch.zeros(shape, dtype=torch.long)
    for dim, (n, prime) in enumerate(zip(shape, (7, 13, 31, 61))):
        view = [1] * len(shape)
        view[dim] = n
        code = code + torch.arange(n).view(view) * prime
    return ((code % 10) != 3).float() / 0.9  # drops one element in ten


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cls_only_last_block_equals_the_full_block_in_training_mode(norm, monkeypatch):
    monkeypatch.setattr(dropout_module, "dropout_mask", positional_mask)
    torch.manual_seed(5)
    model = TinyViT(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64, dropout=0.1, norm=norm).train()
    x = torch.randn(3, 3, 32, 32)
    runs = []
    for forward in (model, lambda t: model.forward_with_attention(t)[0]):  # the latter: every token
        model.zero_grad()
        out = forward(x)
        out.square().sum().backward()
        runs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, ga), (b, gb) = runs
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # and dropout did act: without it the logits differ
        assert not torch.allclose(model.eval()(x), a, atol=1e-3)
