"""Where a model looks: saliency maps for TinyViT and the CNNs.

Attention methods (TinyViT only) are written here, because no library computes them for
this model: attention rollout, raw CLS attention and gradient-weighted attention (Chefer
et al.). The CAM family comes from pytorch-grad-cam; `CAM_TARGETS` says, per model, which
layer it reads and how that layer's output becomes a (B, C, h, w) feature map.

Every method returns a map per image with values in [0, 1]: 1 is where the method puts the
most weight for the target class. Attention maps come at the token grid (4x4 for 16-pixel
digits with 4-pixel patches), CAMs at the input's pixel size.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Method:
    key: str
    title: str
    vit_only: bool
    cheap: bool          # False: too slow to run on every rerun of a page (ScoreCAM)
    sentence: str        # one plain sentence for the page
    paper: str


METHODS: dict[str, Method] = {m.key: m for m in (
    Method("rollout", "Attention rollout", True, True,
           "How much each patch feeds the class token through all layers of attention, "
           "with the skip connections counted.",
           "Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers"),
    Method("cls", "CLS attention", True, True,
           "How strongly the class token attends to each patch in one layer (one head, or their mean).",
           "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words (the raw attention weights)"),
    Method("chefer", "Gradient-weighted attention", True, True,
           "Attention weighted by its gradient for the target class, accumulated over the layers: "
           "patches whose attention raises that class.",
           "Chefer, Gur & Wolf 2021, Generic Attention-model Explainability for Interpreting "
           "Bi-Modal and Encoder-Decoder Transformers"),
    Method("gradcam", "Grad-CAM", False, True,
           "Feature channels weighted by their mean gradient for the target class.",
           "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks"),
    Method("gradcam++", "Grad-CAM++", False, True,
           "Like Grad-CAM with higher-order gradient weights, so several instances of a class all show.",
           "Chattopadhay et al. 2018, Grad-CAM++"),
    Method("hirescam", "HiResCAM", False, True,
           "Gradient times activation at each position, summed over channels: no averaging of gradients.",
           "Draelos & Carin 2020, Use HiResCAM instead of Grad-CAM"),
    Method("xgradcam", "XGrad-CAM", False, True,
           "Grad-CAM with channel weights normalised by the activations (an axiom-based variant).",
           "Fu et al. 2020, Axiom-based Grad-CAM"),
    Method("layercam", "LayerCAM", False, True,
           "Positive gradients weight each position's activations separately.",
           "Jiang et al. 2021, LayerCAM"),
    Method("eigencam", "EigenCAM", False, True,
           "The first principal component of the features: where they vary most, whatever the class.",
           "Muhammad & Yeasin 2020, Eigen-CAM"),
    Method("scorecam", "ScoreCAM", False, False,
           "Each channel masks the image; channels whose masked image scores the target class highly weigh most.",
           "Wang et al. 2020, Score-CAM"),
)}
ATTENTION_METHODS = tuple(k for k, m in METHODS.items() if m.vit_only)
CAM_METHODS = tuple(k for k, m in METHODS.items() if not m.vit_only)


class MethodError(ValueError):
    """A method that cannot run on this model; the message says which and why."""


def methods_for(kind: str, model_name: str | None = None, cheap_only: bool = False) -> list[str]:
    """The methods a model can run: attention ones for ViTs, CAMs where a target layer is known."""
    keys = [k for k, m in METHODS.items()
            if (kind == "vit" or not m.vit_only) and (m.cheap or not cheap_only)
            and (m.vit_only or model_name is None or model_name in CAM_TARGETS)]
    return keys


def _unit(m: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] per map (a flat map becomes all zeros)."""
    flat = m.flatten(-2)
    lo, hi = flat.min(-1).values[..., None, None], flat.max(-1).values[..., None, None]
    return (m - lo) / (hi - lo).clamp_min(1e-12)


# -- attention ---------------------------------------------------------------------------
def attention_rollout(attentions: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Abnar & Zuidema (2020): average heads, add the residual identity, renormalise rows,
    multiply through the layers; the CLS row over the patches, as a (B, grid, grid) map in [0, 1]."""
    joint = None
    for a in attentions:
        a = a.float().mean(1)
        a = a + torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        joint = a if joint is None else a @ joint
    cls = joint[:, 0, 1:]
    return _unit(cls.reshape(-1, grid, grid))


def cls_attention(attentions: list[torch.Tensor], grid: int, layer: int = -1, head: int | None = None) -> torch.Tensor:
    """Raw attention of the CLS token to each patch in one layer; one head, or their mean."""
    a = attentions[layer].float()
    a = a.mean(1) if head is None else a[:, head]
    return _unit(a[:, 0, 1:].reshape(-1, grid, grid))


def gradient_weighted_attention(attentions: list[torch.Tensor], grads: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Chefer et al. (2021), eq. 5-6: R = I; per layer R += mean_heads((grad * A)+) @ R.
    The CLS row over the patches, as a (B, grid, grid) map in [0, 1]."""
    n = attentions[0].shape[-1]
    r = torch.eye(n, device=attentions[0].device).expand(attentions[0].shape[0], n, n).clone()
    for a, g in zip(attentions, grads):
        cam = (g.float() * a.float()).clamp_min(0).mean(1)
        r = r + cam @ r
    return _unit(r[:, 0, 1:].reshape(-1, grid, grid))


def _pick(logits: torch.Tensor, target) -> torch.Tensor:
    """The class explained per image: `target` (one class, or one per image), or each image's
    predicted class."""
    if target is None:
        return logits.argmax(1)
    if isinstance(target, torch.Tensor):
        # clone: a tensor made under inference_mode cannot enter autograd.
        return target.to(logits.device).long().reshape(-1).expand(len(logits)).clone()
    if not 0 <= target < logits.shape[1]:
        raise MethodError(f"class {target} does not exist: the model has {logits.shape[1]} classes")
    return torch.full((len(logits),), int(target), device=logits.device)


def attention_weights(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits, one (B, heads, tokens, tokens) attention map per layer) from the model's own
    forward, as vit-explain catches them: each block's explicit softmax is made to run
    (`fused_attn` off) and a forward hook on its `attn_drop` keeps what goes in, inside the
    autograd graph where gradients are wanted. The model must be in eval mode: in training
    the last block may compute the CLS row alone (TinyViT.fast_training)."""
    attns = [block.attn for block in getattr(model, "blocks", ())]
    if not attns:
        raise MethodError("attention maps need a transformer; this model has no attention layers")
    caught: list[torch.Tensor] = []
    fused = [a.fused_attn for a in attns]
    hooks = [a.attn_drop.register_forward_hook(lambda module, inputs, output: caught.append(inputs[0]))
             for a in attns]
    try:
        for a in attns:
            a.fused_attn = False
        logits = model(x)
    finally:
        for a, was in zip(attns, fused):
            a.fused_attn = was
        for hook in hooks:
            hook.remove()
    return logits, caught


def attention_maps(model: nn.Module, x: torch.Tensor, target=None,
                   layer: int = -1, head: int | None = None, gradients: bool = True) -> tuple[torch.Tensor, dict]:
    """(probabilities (B, K), {method: (B, grid, grid) map}) from one forward (and one backward
    for the gradient-weighted map), the attention weights caught by `attention_weights`."""
    with torch.enable_grad():
        logits, attentions = attention_weights(model, x.detach())
        maps = {"rollout": attention_rollout([a.detach() for a in attentions], model.grid),
                "cls": cls_attention([a.detach() for a in attentions], model.grid, layer, head)}
        if gradients:
            idx = _pick(logits, target)
            score = logits.gather(1, idx[:, None]).sum()
            # autograd.grad, not backward: nothing lands in the parameters' .grad.
            grads = torch.autograd.grad(score, attentions)
            maps["chefer"] = gradient_weighted_attention([a.detach() for a in attentions], grads, model.grid)
    return logits.detach().float().softmax(1), maps


# -- CAM targets -------------------------------------------------------------------------
def _tokens_to_map(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """ViT tokens (B, 1 + g*g, D) or (B, g*g, D) -> a (B, D, g, g) feature map, CLS dropped."""
    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        g = model.grid
        if tokens.shape[1] == g * g + 1:
            tokens = tokens[:, 1:]
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, g, g)
    return reshape


def _vit_layer(model: nn.Module) -> nn.Module:
    # The tokens that enter the last block: after it, patch tokens no longer reach the CLS token.
    # A post-norm block's output is its norm2's; a pre-norm block's input is read by the next
    # block's norm1 (the hook must see a tensor, and a block returns (tokens, weights)).
    if len(model.blocks) == 1:
        return model.patch_embed
    last = model.blocks[-1]
    return last.norm1 if last.norm_first else model.blocks[-2].norm2


@dataclass(frozen=True)
class CamTarget:
    layer: Callable[[nn.Module], nn.Module]
    reshape: Callable[[nn.Module], Callable | None]
    why: str


# Model name -> the layer CAMs read and how its output becomes (B, C, h, w).
CAM_TARGETS: dict[str, CamTarget] = {
    "tinyvit": CamTarget(_vit_layer, _tokens_to_map, "the tokens entering the last encoder block"),
    "tinyvit-conv": CamTarget(_vit_layer, _tokens_to_map, "the tokens entering the last encoder block"),
    "cnn": CamTarget(lambda m: m.features, lambda m: None, "the last convolution stage (no pooling after it)"),
    "resnet18": CamTarget(lambda m: m.net.layer4, lambda m: None, "ResNet's layer4"),
}


def _cam_class(method: str):
    import pytorch_grad_cam as pgc  # a few seconds to import: only when a CAM is asked for
    return {"gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "hirescam": pgc.HiResCAM,
            "xgradcam": pgc.XGradCAM, "layercam": pgc.LayerCAM, "eigencam": pgc.EigenCAM,
            "scorecam": pgc.ScoreCAM}[method]


def _cam_target(model: nn.Module, method: str) -> CamTarget:
    name = getattr(model, "model_name", None)
    if name not in CAM_TARGETS:
        raise MethodError(f"{METHODS[method].title} needs a target layer, and none is known for "
                          f"model {name!r} (known: {', '.join(CAM_TARGETS)})")
    return CAM_TARGETS[name]


def cam_maps(model: nn.Module, x: torch.Tensor, methods: list[str], target=None,
             batch_size: int = 128) -> dict[str, torch.Tensor]:
    """pytorch-grad-cam maps for each image: {method: (B, H, W) in [0, 1] at the input's size}.

    The methods read the same activations and gradients of the same layer, so they share one
    forward and one backward: each CAM object would otherwise run its own pass, and those passes
    were most of the time of a page of maps. ScoreCAM runs alone, as its masked forwards would
    add to the shared activations."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    if not methods:
        return {}
    spec = _cam_target(model, methods[0])
    if isinstance(target, torch.Tensor):
        idx = target.reshape(-1).expand(len(x)).clone()
    else:
        with torch.no_grad():
            idx = _pick(model(x), target)
    targets = [ClassifierOutputTarget(int(i)) for i in idx]
    layer, reshape = spec.layer(model), spec.reshape(model)
    was_training = model.training
    heat = {}
    # A gradient method leads: its pass fills the gradients the others read.
    shared = sorted((m for m in methods if m != "scorecam"), key=lambda m: m == "eigencam")
    groups = ([shared] if shared else []) + ([["scorecam"]] if "scorecam" in methods else [])
    with torch.enable_grad():
        for group in groups:
            cams = [_cam_class(m)(model, target_layers=[layer], reshape_transform=reshape) for m in group]
            lead = cams[0]
            lead.batch_size = batch_size  # ScoreCAM's masked images per forward
            for cam in cams[1:]:
                cam.activations_and_grads.release()
                cam.activations_and_grads = lead.activations_and_grads
            try:
                # ScoreCAM draws a tqdm bar per image on stderr; ours is the one that counts.
                with contextlib.redirect_stderr(io.StringIO()):
                    heat[group[0]] = lead(input_tensor=x.detach(), targets=targets)
                    for m, cam in zip(group[1:], cams[1:]):
                        heat[m] = cam.aggregate_multi_layers(cam.compute_cam_per_layer(x, targets, False))
            finally:
                lead.activations_and_grads.release()
                model.zero_grad(set_to_none=True)
                model.train(was_training)
    return {m: torch.from_numpy(heat[m]).float().clamp(0, 1) for m in methods}


def cam_map(model: nn.Module, x: torch.Tensor, method: str, target=None,
            batch_size: int = 128) -> torch.Tensor:
    """One pytorch-grad-cam method's map for each image: (B, H, W) in [0, 1]."""
    return cam_maps(model, x, [method], target, batch_size)[method]


# -- all at once -------------------------------------------------------------------------
@dataclass
class Maps:
    probs: torch.Tensor                 # (B, K)
    target: torch.Tensor                # (B,) the class each map explains
    heat: dict[str, torch.Tensor]       # method -> (B, h, w) in [0, 1]
    errors: dict[str, str]              # method -> why it could not run
    seconds: dict[str, float]           # method -> wall time for the batch


def explain_batch(model: nn.Module, x: torch.Tensor, kind: str, methods: list[str] | None = None,
                  target: int | None = None, layer: int = -1, head: int | None = None,
                  clock: Callable[[], float] | None = None) -> Maps:
    """Every requested method on a normalised batch; a method that cannot run gets a message
    in `errors` and the others still run."""
    import time
    clock = clock or time.perf_counter
    methods = list(methods or methods_for(kind, getattr(model, "model_name", None)))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise MethodError(f"unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    x = x.detach().clone() if x.is_inference() else x
    with torch.no_grad():
        logits = model(x)
    probs = logits.float().softmax(1)
    tgt = _pick(logits, target)
    heat, errors, seconds = {}, {}, {}
    wanted_attention = [m for m in methods if m in ATTENTION_METHODS]
    if wanted_attention:
        if kind != "vit":
            for m in wanted_attention:
                errors[m] = f"{METHODS[m].title} needs a transformer's attention; this model is a CNN"
        else:
            t0 = clock()
            _, maps = attention_maps(model, x, tgt, layer, head, gradients="chefer" in methods)
            per = (clock() - t0) / len(wanted_attention)
            for m in wanted_attention:
                heat[m], seconds[m] = maps[m], per
    wanted_cams = [m for m in methods if m in CAM_METHODS]
    for group in ([m for m in wanted_cams if m != "scorecam"], [m for m in wanted_cams if m == "scorecam"]):
        if not group:
            continue
        t0 = clock()
        try:
            heat.update(cam_maps(model, x, group, tgt))
        except MethodError as err:
            errors.update({m: str(err).replace(METHODS[group[0]].title, METHODS[m].title) for m in group})
            continue
        per = (clock() - t0) / len(group)
        seconds.update({m: per for m in group})
    ordered = {m: heat[m] for m in methods if m in heat}
    return Maps(probs, tgt, ordered, errors, seconds)


def upsample(heat: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """A (h, w) or (B, h, w) map resized bilinearly to `size`."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    batch = heat.dim() == 3
    h = heat[:, None] if batch else heat[None, None]
    if tuple(h.shape[-2:]) != size:
        h = F.interpolate(h.float(), size=size, mode="bilinear", align_corners=False)
    return h[:, 0] if batch else h[0, 0]


def uint8_to_pil(x: torch.Tensor):
    """(C, H, W) uint8 tensor → PIL image (gray or RGB)."""
    from PIL import Image
    arr = x.detach().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
