import pytest
import torch

from tinyvit.models import MODELS, ModelError, build_model, count_parameters, default_patch_size
from slides_state import to_tinyvit_state
from tinyvit.models.slides import SlidesTinyViT
from tinyvit.models.vit import TinyViT
from tinyvit.explain import attention_weights


def test_slides_table_has_the_slides_parameter_count():
    assert count_parameters(TinyViT()) == 1_205_898
    assert count_parameters(SlidesTinyViT()) == 1_205_898


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_fused_and_explicit_attention_give_the_same_logits(norm):
    torch.manual_seed(0)
    model = TinyViT(norm=norm).eval()
    x = torch.randn(5, 3, 32, 32)
    logits, attentions = attention_weights(model, x)
    assert torch.allclose(model(x), logits, atol=1e-5)
    assert all(block.attn.fused_attn for block in model.blocks)  # given back after the catch
    assert len(attentions) == 6
    for a in attentions:
        assert a.shape == (5, 8, 65, 65)
        assert torch.allclose(a.sum(-1), torch.ones(5, 8, 65), atol=1e-5)


def test_post_norm_tinyvit_computes_the_slides_function():
    torch.manual_seed(1)
    slides = SlidesTinyViT().eval()
    ours = TinyViT(norm="post").eval()
    ours.load_state_dict(to_tinyvit_state(slides), strict=True)
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(slides(x), ours(x), atol=1e-5)


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    model = TinyViT()
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_trains_and_has_a_cam_target(name):
    from tinyvit.explain import CAM_TARGETS
    model = build_model(name, num_classes=7, img_size=16, in_chans=1)
    x = torch.randn(3, 1, 16, 16)
    out = model(x)
    assert out.shape == (3, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # The explanation code's table names a layer of every registered model, and its
    # reshape turns that layer's output into a (B, C, h, w) feature map.
    target = CAM_TARGETS[name]
    store = {}
    handle = target.layer(model).register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    model(x)
    handle.remove()
    reshape = target.reshape(model) or (lambda a: a)
    fmap = reshape(store["a"])
    assert fmap.dim() == 4 and fmap.shape[0] == 3 and fmap.shape[2] == fmap.shape[3] >= 2


def test_cnn_has_about_tinyvits_parameter_count():
    cnn = count_parameters(build_model("cnn", num_classes=10, img_size=32, in_chans=3))
    assert 0.8 < cnn / 1_205_898 < 1.2


def test_registry_adapts_patch_size_to_the_image():
    assert default_patch_size(32) == 4  # the slides' value
    assert default_patch_size(16) == 4  # at least 4: patch 2 on digits was 5x slower and worse
    assert default_patch_size(28) == 4
    assert default_patch_size(96) == 12
    assert build_model("tinyvit", num_classes=10, img_size=16, in_chans=1).grid == 4


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(patch_size=5), "must divide img_size"),
    (dict(num_heads=7), "must divide embed_dim"),
    (dict(norm="middle"), "norm must be one of"),
    (dict(colour=3), "has no hyperparameter colour"),
])
def test_impossible_hyperparameters_are_refused_clearly(kwargs, fragment):
    with pytest.raises(ModelError, match=fragment):
        build_model("tinyvit", num_classes=10, img_size=32, in_chans=3, **kwargs)


def test_unknown_model_names_the_choices():
    with pytest.raises(ModelError, match="choose one of: tinyvit, tinyvit-conv, cnn, resnet18"):
        build_model("vgg99")


def test_drop_path_drops_the_branch_for_whole_samples_in_training_only():
    from tinyvit.models.vit import DropPath
    dp = DropPath(0.5).train()
    torch.manual_seed(0)
    out = dp(torch.ones(1000, 5, 8))
    per_sample = out.flatten(1)
    assert bool(((per_sample == 0).all(1) | (per_sample == 2.0).all(1)).all())   # all or nothing, scaled
    assert 400 < int((per_sample[:, 0] == 0).sum()) < 600
    assert torch.equal(dp.eval()(torch.ones(4, 5, 8)), torch.ones(4, 5, 8))


def test_drop_path_rises_with_depth_and_leaves_the_slides_model_alone():
    model = build_model("tinyvit", num_classes=10, img_size=32, in_chans=3, drop_path=0.2)
    rates = [b.drop_path.p for b in model.blocks]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.2) < 1e-9 and rates == sorted(rates)
    assert count_parameters(model) == 1_205_898
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))


def test_conv_tokenizer_tokens_see_their_neighbours_and_patches_do_not():
    """One pixel on a token boundary reaches one patch token, but several conv tokens."""
    torch.manual_seed(0)
    reached = {}
    for name in ("tinyvit", "tinyvit-conv"):
        model = build_model(name, num_classes=10, img_size=28, in_chans=1, patch_size=4) if name == "tinyvit" \
            else build_model(name, num_classes=10, img_size=28, in_chans=1)
        assert model.grid == 7 and model.pos_embed.shape[1] == 50
        x = torch.rand(1, 1, 28, 28)
        y = x.clone()
        y[0, 0, 8, 8] += 5.0      # first pixel of token (2, 2); its left/top neighbours are tokens (1, *)
        with torch.no_grad():
            changed = (model.patch_embed(x) - model.patch_embed(y)).abs().sum(-1) > 1e-6
        reached[name] = int(changed.sum())
    assert reached["tinyvit"] == 1 and reached["tinyvit-conv"] > 1
    conv = build_model("tinyvit-conv", num_classes=10, img_size=96, in_chans=3)
    assert conv.grid == 6 and conv(torch.randn(2, 3, 96, 96)).shape == (2, 10)
