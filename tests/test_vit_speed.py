"""TinyViT's training speed-ups (TinyViT.fast_training) keep its function: the last block
computes the CLS row alone, and the switch turns on both speed-ups and only in training."""
from __future__ import annotations

import pytest
import torch

from tinyvit.models import dropout as dropout_module
from tinyvit.models.vit import TinyViT


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cls_only_last_block_gives_the_full_blocks_logits_and_gradients(norm):
    torch.manual_seed(4)
    model = TinyViT(embed_dim=32, num_heads=4, num_layers=3, mlp_dim=64, dropout=0.0, norm=norm).train()
    x = torch.randn(6, 3, 32, 32)
    runs = []
    for cls_only in (True, False):  # the latter: every token
        model.cls_only_last_block = cls_only
        model.zero_grad()
        out = model(x)
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
    model = TinyViT(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64, dropout=0.1, norm=norm)
    model.fast_training().train()
    x = torch.randn(3, 3, 32, 32)
    runs = []
    for cls_only in (True, False):  # the latter: every token, with the same NumPy masks
        model.cls_only_last_block = cls_only
        model.zero_grad()
        out = model(x)
        out.square().sum().backward()
        runs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, ga), (b, gb) = runs
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # and dropout did act: without it the logits differ
        assert not torch.allclose(model.eval()(x), a, atol=1e-3)


def test_the_switch_turns_both_speed_ups_on_and_evaluation_runs_every_token(monkeypatch):
    model = TinyViT(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64)
    drops = [m for m in model.modules() if isinstance(m, dropout_module.FastDropout)]
    assert not model.cls_only_last_block and not any(m.fast for m in drops)  # as the slides compute
    model.fast_training()
    assert model.cls_only_last_block and all(m.fast for m in drops)
    calls = []
    monkeypatch.setattr(type(model.blocks[-1]), "forward_cls", lambda self, x: calls.append(1) or x[:, :1])
    with torch.no_grad():
        model.eval()(torch.randn(2, 3, 32, 32))
        assert calls == []
        model.train()(torch.randn(2, 3, 32, 32))
        assert calls == [1]
