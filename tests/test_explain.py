"""Saliency maps: the attention methods on hand-made attention, the CAM family through the
explanation code's target table, and the colouring."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tinyvit.explain import (CAM_METHODS, CAM_TARGETS, METHODS, MethodError, attention_rollout, cam_map, cam_maps,
                             cls_attention, explain_batch,
                             gradient_weighted_attention, methods_for)
from tinyvit.app.heatmap import colour_bar, lut, overlay
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


def test_gradient_weighted_attention_keeps_only_attention_that_raises_the_class():
    a = torch.full((1, 2, 5, 5), 0.2)
    grads = torch.zeros(1, 2, 5, 5)
    grads[0, 0, 0, 2] = 1.0    # CLS → patch 1 raises the class
    grads[0, 1, 0, 4] = -1.0   # CLS → patch 3 lowers it: clamped away
    heat = gradient_weighted_attention([a], [grads], grid=2)
    assert heat[0].flatten().argmax() == 1 and heat[0].flatten()[3] == 0
    # No gradient anywhere: R stays the identity and the map is flat.
    assert torch.all(gradient_weighted_attention([a], [torch.zeros_like(a)], 2) == 0)


@pytest.mark.parametrize("name,hp", [("cnn", {"widths": [8, 16]}),
                                     ("tinyvit", {"embed_dim": 16, "num_heads": 2, "num_layers": 2, "mlp_dim": 16}),
                                     ("tinyvit", {"embed_dim": 16, "num_heads": 2, "num_layers": 2, "mlp_dim": 16,
                                                  "norm": "pre"}),
                                     ("tinyvit", {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "mlp_dim": 16})])
def test_every_method_maps_both_kinds_and_leaves_no_gradients(name, hp):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, img_size=16, in_chans=1, **hp).eval()
    kind = "vit" if name == "tinyvit" else "cnn"
    methods = methods_for(kind, name)
    assert ("rollout" in methods) == (kind == "vit") and "scorecam" in methods and "gradcam" in methods
    maps = explain_batch(model, torch.randn(2, 1, 16, 16), kind, methods)
    assert not maps.errors and list(maps.heat) == methods
    for m, heat in maps.heat.items():
        assert heat.shape[0] == 2 and heat.min() >= 0 and heat.max() <= 1, m
        assert maps.seconds[m] >= 0
    assert maps.probs.shape == (2, 3) and torch.equal(maps.target, maps.probs.argmax(1))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name,hp", [("cnn", {"widths": [8, 16]}),
                                     ("tinyvit", {"embed_dim": 16, "num_heads": 2, "num_layers": 2, "mlp_dim": 16})])
def test_cams_sharing_one_pass_equal_each_method_run_on_its_own(name, hp):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, img_size=16, in_chans=1, **hp).eval()
    x, target = torch.randn(3, 1, 16, 16), torch.tensor([0, 2, 1])
    together = cam_maps(model, x, list(CAM_METHODS), target)
    assert list(together) == list(CAM_METHODS)
    for m in CAM_METHODS:
        alone = cam_map(model, x, m, target)
        assert torch.allclose(together[m], alone, atol=1e-5), m
    # The methods differ from one another: a shared pass that handed one map to all would fail here.
    assert not torch.allclose(together["gradcam"], together["eigencam"], atol=1e-3)
    assert all(p.grad is None for p in model.parameters())


def test_cam_on_the_vit_reads_the_tokens_entering_the_last_block():
    model = build_model("tinyvit", num_classes=3, img_size=16, in_chans=1, embed_dim=16, num_heads=2,
                        num_layers=3, mlp_dim=16)
    assert CAM_TARGETS["tinyvit"].layer(model) is model.blocks[1].norm2
    pre = build_model("tinyvit", num_classes=3, img_size=16, in_chans=1, embed_dim=16, num_heads=2,
                      num_layers=3, mlp_dim=16, norm="pre")
    assert CAM_TARGETS["tinyvit"].layer(pre) is pre.blocks[2].norm1
    tokens = torch.randn(2, 1 + 16, 16)
    fmap = CAM_TARGETS["tinyvit"].reshape(model)(tokens)
    assert fmap.shape == (2, 16, 4, 4) and torch.equal(fmap[0, :, 0, 1], tokens[0, 2])


def test_target_class_is_the_chosen_one_or_a_clear_error():
    model = build_model("cnn", num_classes=3, img_size=16, in_chans=1, widths=[8, 16]).eval()
    x = torch.randn(1, 1, 16, 16)
    assert explain_batch(model, x, "cnn", ["gradcam"], target=2).target.tolist() == [2]
    with pytest.raises(MethodError, match="class 5 does not exist"):
        explain_batch(model, x, "cnn", ["gradcam"], target=5)


def test_a_model_without_a_cam_layer_says_which_method_and_why_and_the_others_run():
    model = build_model("tinyvit", num_classes=3, img_size=16, in_chans=1, embed_dim=16, num_heads=2,
                        num_layers=2, mlp_dim=16).eval()
    model.model_name = "mystery-vit"
    maps = explain_batch(model, torch.randn(1, 1, 16, 16), "vit", ["rollout", "chefer", "gradcam", "eigencam"])
    assert set(maps.heat) == {"rollout", "chefer"}
    assert "Grad-CAM needs a target layer" in maps.errors["gradcam"] and "mystery-vit" in maps.errors["gradcam"]
    assert "EigenCAM" in maps.errors["eigencam"]
    cnn = build_model("cnn", num_classes=3, img_size=16, in_chans=1, widths=[8, 16]).eval()
    maps = explain_batch(cnn, torch.randn(1, 1, 16, 16), "cnn", ["rollout", "gradcam"])
    assert "needs a transformer" in maps.errors["rollout"] and "gradcam" in maps.heat


def test_every_method_has_a_sentence_and_a_paper():
    for m in METHODS.values():
        assert m.title and m.sentence.endswith(".") and any(ch.isdigit() for ch in m.paper)


def test_overlay_blends_at_the_image_size():
    img = Image.new("RGB", (20, 20), (0, 0, 0))
    heat = torch.zeros(4, 4)
    heat[0, 0] = 1
    out = np.asarray(overlay(img, heat, "Greys", opacity=1.0))
    assert out.shape == (20, 20, 3)
    assert not np.array_equal(out[0, 0], out[19, 19])


def test_colour_bar_runs_from_the_lowest_to_the_highest_colour():
    bar = np.asarray(colour_bar("Jet", width=100, height=10))
    assert bar.shape == (10, 100, 3)
    assert np.array_equal(bar[5, 1], lut("Jet")[int(np.linspace(0, 255, 100)[1])])
    assert np.array_equal(bar[5, 98], lut("Jet")[int(np.linspace(0, 255, 100)[98])])
    assert bar[5, 1, 2] > bar[5, 1, 0] and bar[5, 98, 0] > bar[5, 98, 2]  # jet: blue = low, red = high


def test_the_explanation_core_imports_neither_plotly_nor_streamlit():
    code = ("import sys, tinyvit.explain, tinyvit.app.heatmap, tinyvit.faithfulness, tinyvit.app.analysis; "
            "print(sorted(m for m in ('plotly', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
