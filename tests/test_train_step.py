"""The engine's training step: splitting a batch across threads trains the same thing."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from tinyvit.models import build_model
from tinyvit.models.vit import TinyViT
from tinyvit.training.step import TrainStep, plan, splittable

CPU = torch.device("cpu")


def step_for(model, split, threads=2, sgd=False):
    opt = (torch.optim.SGD(model.parameters(), lr=0.1) if sgd  # Adam's first step is ~sign(grad)
           else torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05))
    return TrainStep(model, opt, nn.CrossEntropyLoss(label_smoothing=0.1), CPU, threads=threads, split=split)


def test_split_batch_gives_the_whole_batch_loss_gradients_and_update():
    torch.manual_seed(0)
    base = TinyViT(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64, dropout=0.0)
    x, y = torch.randn(48, 3, 32, 32), torch.randint(0, 10, (48,))
    results = []
    for split in (False, True):
        model = copy.deepcopy(base)
        step = step_for(model, split, sgd=True)
        loss, logits = step(x, y)
        step.close()
        results.append((loss, logits, [p.grad for p in model.parameters()], list(model.parameters())))
    (l0, z0, g0, p0), (l1, z1, g1, p1) = results
    assert torch.allclose(l0, l1, atol=1e-6) and torch.allclose(z0, z1, atol=1e-5)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(p0, p1):
        assert torch.allclose(a, b, atol=1e-6)


def test_split_steps_with_dropout_are_reproducible_under_manual_seed():
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        model = TinyViT(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64)
        step = step_for(model, True)
        losses.append([step(x, y)[0].item() for _ in range(3)])
        step.close()
    assert losses[0] == losses[1]


def test_thread_count_is_given_back_after_a_split_step():
    before = torch.get_num_threads()
    step = step_for(TinyViT(embed_dim=32, num_heads=4, num_layers=1, mlp_dim=64), True, threads=2)
    step(torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)))
    step.close()
    assert torch.get_num_threads() == before


def test_what_is_split_and_how():
    assert splittable(TinyViT(), CPU)
    assert not splittable(build_model("cnn", num_classes=10), CPU)  # BatchNorm sees the batch
    assert not splittable(TinyViT(), torch.device("cuda"))
    assert plan(64, 2) == (2, 1)
    assert plan(20, 2) == (1, 2)      # too small to share
    assert plan(64, 16) == (4, 4)     # chunks of at least 16 images, the rest as intra-op threads
    assert plan(64, 1) == (1, 1)
