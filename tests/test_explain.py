import numpy as np
import torch
from PIL import Image

from tinyvit.explain import attention_rollout, cls_attention, grad_cam, overlay
from tinyvit.models import build_model


def test_rollout_of_identity_attention_is_flat():
    eye = torch.eye(5).expand(1, 2, 5, 5)
    heat = attention_rollout([eye, eye], grid=2)
    assert heat.shape == (1, 2, 2) and torch.all(heat == 0)


def test_rollout_follows_attention_to_one_patch():
    # every token attends only to patch 3 (token index 4), in every layer
    a = torch.zeros(1, 1, 5, 5)
    a[..., 4] = 1.0
    heat = attention_rollout([a, a], grid=2)
    assert heat[0].flatten().argmax() == 3 and heat.max() == 1


def test_rollout_matches_a_hand_computed_two_layer_product():
    torch.manual_seed(0)
    atts = [torch.rand(1, 2, 5, 5).softmax(-1) for _ in range(2)]
    mats = []
    for a in atts:
        m = a.mean(1)[0] + torch.eye(5)
        mats.append(m / m.sum(-1, keepdim=True))
    row = (mats[1] @ mats[0])[0, 1:]
    expect = (row - row.min()) / (row.max() - row.min())
    assert torch.allclose(attention_rollout(atts, 2)[0].flatten(), expect, atol=1e-6)


def test_cls_attention_picks_layer_and_head():
    a0 = torch.zeros(1, 2, 5, 5)
    a0[0, 1, 0, 2] = 1.0  # head 1 of layer 0: CLS → patch 1
    a0[0, 0, 0, 4] = 1.0  # head 0: CLS → patch 3
    assert cls_attention([a0], 2, layer=0, head=1)[0].flatten().argmax() == 1
    assert cls_attention([a0], 2, layer=0, head=0)[0].flatten().argmax() == 3


def test_grad_cam_works_for_both_kinds_and_leaves_no_gradients():
    for name in ("cnn", "tinyvit"):
        torch.manual_seed(0)
        model = build_model(name, num_classes=3, img_size=16, in_chans=1).eval()
        probs, cam = grad_cam(model, torch.randn(2, 1, 16, 16))
        assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
        assert cam.shape[0] == 2 and cam.min() >= 0 and cam.max() <= 1
        assert all(p.grad is None for p in model.parameters())


def test_overlay_blends_at_the_image_size():
    img = Image.new("RGB", (20, 20), (0, 0, 0))
    heat = torch.zeros(4, 4)
    heat[0, 0] = 1
    out = np.asarray(overlay(img, heat, "Greys", opacity=1.0))
    assert out.shape == (20, 20, 3)
    assert not np.array_equal(out[0, 0], out[19, 19])
