"""FastDropout is the same random function as F.dropout(p): checked statistically, not by timing."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyvit.models.dropout import FastDropout, dropout, dropout_mask, fast_path, keep_threshold, use_generator
from slides_state import to_tinyvit_state
from tinyvit.models.slides import SlidesTinyViT
from tinyvit.models.vit import TinyViT

N = 4_000_000


def test_keep_rate_is_the_requested_one_to_within_the_16_bit_grid():
    for p in (0.1, 0.25, 0.5, 0.9):
        threshold, keep, scale = keep_threshold(p)
        assert abs(keep - (1 - p)) <= 2 ** -17
        assert scale == pytest.approx(1 / keep)
        assert -32768 <= threshold <= 32768
    assert keep_threshold(0.5)[1] == 0.5  # exactly representable rates are exact


def test_mask_keeps_about_90_percent_scaled_by_one_over_0_9():
    torch.manual_seed(0)
    mask = dropout_mask((N,), 0.1)
    assert mask.dtype == torch.float32 and mask.shape == (N,)
    values = torch.unique(mask).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.9, rel=1e-4)
    kept = (mask > 0).float().mean().item()
    # Binomial standard deviation sqrt(0.09 / N) = 1.5e-4: 6 sigma is 9e-4.
    assert abs(kept - 0.9) < 9e-4


def test_output_has_the_input_mean_and_dropout_variance():
    torch.manual_seed(1)
    x = torch.full((N,), 2.0)
    y = dropout(x, 0.1, training=True)
    keep = keep_threshold(0.1)[1]
    # E[y] = x; Var[y] = x^2 (1 - keep) / keep, as for F.dropout.
    assert y.mean().item() == pytest.approx(2.0, abs=6 * 2.0 * math.sqrt(0.1 / 0.9 / N))
    assert y.var().item() == pytest.approx(4.0 * (1 - keep) / keep, rel=0.01)
    ref = F.dropout(x, 0.1, training=True)
    assert y.var().item() == pytest.approx(ref.var().item(), rel=0.02)


def test_masks_are_independent_between_calls_and_of_position():
    torch.manual_seed(2)
    a = dropout_mask((N,), 0.1) > 0
    b = dropout_mask((N,), 0.1) > 0
    both = (a & b).float().mean().item()
    assert abs(both - 0.81) < 1.5e-3          # independent calls: 0.9 * 0.9
    assert abs(a[: N // 2].float().mean().item() - a[N // 2:].float().mean().item()) < 2e-3
    # Neighbouring elements (drawn from the same 64-bit word) are independent too.
    pairs = (a[0::2] & a[1::2]).float().mean().item()
    assert abs(pairs - 0.81) < 2e-3


def test_identity_in_eval_and_at_p_zero():
    x = torch.randn(3, 7)
    layer = FastDropout(0.1).eval()
    assert layer(x) is x
    assert dropout(x, 0.0, training=True) is x


def test_gradient_is_the_mask():
    torch.manual_seed(3)
    x = torch.randn(64, 65, 128, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    y.backward(torch.ones_like(y))
    kept = y.detach() != 0
    scale = keep_threshold(0.1)[2]
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], scale))
    assert torch.all(x.grad[~kept] == 0)
    assert torch.allclose(y.detach()[kept], x.detach()[kept] * scale)


def test_reproducible_under_manual_seed_and_per_thread_generator():
    x = torch.randn(1000)
    torch.manual_seed(4)
    a = dropout(x, 0.1)
    torch.manual_seed(4)
    b = dropout(x, 0.1)
    assert torch.equal(a, b)
    with use_generator(torch.Generator().manual_seed(9)):
        c = dropout(x, 0.1)
    with use_generator(torch.Generator().manual_seed(9)):
        d = dropout(x, 0.1)
    assert torch.equal(c, d) and not torch.equal(a, c)


def test_other_devices_and_dtypes_fall_back_to_torch():
    assert fast_path(torch.zeros(2), 0.1)
    assert not fast_path(torch.zeros(2, dtype=torch.bfloat16), 0.1)
    torch.manual_seed(5)
    y = dropout(torch.ones(10_000, dtype=torch.float64), 0.1)
    assert y.dtype == torch.float64 and abs((y > 0).double().mean().item() - 0.9) < 0.03


@pytest.fixture
def one_thread():
    # 80 small forwards: one thread is faster than two, and much faster on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_eval_logits_equal_the_slides_model_and_training_statistics_match(one_thread):
    torch.manual_seed(6)
    slides = SlidesTinyViT()
    ours = TinyViT(norm="post")
    ours.load_state_dict(to_tinyvit_state(slides))
    x = torch.randn(8, 3, 32, 32)
    slides.eval(), ours.eval()
    with torch.no_grad():
        assert torch.allclose(slides(x), ours(x), atol=1e-5)
    # In training the two draw different masks, but the spread dropout adds to the logits
    # is the same: the same dropout sites with the same rate.
    slides.train(), ours.train()
    with torch.no_grad():
        s = torch.stack([slides(x) for _ in range(16)]).std(0).mean().item()
        o = torch.stack([ours(x) for _ in range(16)]).std(0).mean().item()
    assert s > 0 and o == pytest.approx(s, rel=0.1)


def test_model_gradients_flow_through_every_dropout_site():
    torch.manual_seed(7)
    model = TinyViT().fast_training().train()
    sites = [m for name, m in model.named_modules() if isinstance(m, FastDropout) and "drop_path" not in name]
    assert all(m.fast for m in sites)
    assert len(sites) == 24  # attention weights, attention output, inside and after the MLP, x 6
    seen = []

    def record(module, inputs, output):
        inputs[0].retain_grad()
        seen.append((inputs[0], output))

    for site in sites:
        site.register_forward_hook(record)
    loss = nn.CrossEntropyLoss()(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert len(seen) == 24 and all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    scale = keep_threshold(0.1)[2]
    for i, (x, y) in enumerate(seen):
        dropped = (y == 0) & (x != 0)
        # Every site drops about one element in ten (5 binomial sigmas), scales the rest by
        # 1/0.9, and passes no gradient through the dropped elements.
        rate = dropped.float().mean().item()
        assert abs(rate - 0.1) < 5 * math.sqrt(0.09 / x.numel()), (i, rate)
        torch.testing.assert_close(y[~dropped], x[~dropped] * scale)
        assert torch.all(x.grad[dropped] == 0) and x.grad[~dropped].abs().sum() > 0, i
