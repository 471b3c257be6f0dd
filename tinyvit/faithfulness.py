"""How faithful is each saliency map? Measured on a run's test images, written beside the run.

    python -m tinyvit.faithfulness RUN [--images N] [--methods gradcam,rollout,...]

For every method (and two baselines: a random map and a centre-bias map) on N test images:
- deletion AUC: the predicted class's probability as the most salient pixels are removed,
  an eighth at a time; a faithful map makes it fall fast (lower is better);
- insertion AUC: the same probability as pixels are revealed, most salient first, starting
  from an image with every pixel removed (higher is better);
- with object masks (the generated shapes): the pointing game (the map's peak lies on the
  object) and the relevance mass (the share of the map's total on the object);
- seconds per image to compute the map.
"Removed" means set to the training set's mean colour (0 after normalisation), the same for
every method. Maps are ranked at the input's pixel size: a ViT's token-grid map is upsampled
bilinearly first. Ties (a CAM's flat zero areas) are broken by a fixed random order.

faithfulness.json holds the summary; faithfulness.npz the per-image curves. The JSON is
stamped with the SHA-256 of the weights it measured, of the curves file and of its own
content, so an edited, swapped or stale file is reported as invalid, never shown.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import WEIGHTS, atomic_write, atomic_write_text
from .explain import METHODS, MethodError, explain_batch, methods_for, upsample
from .runs import RunError, open_run

REPORT = "faithfulness.json"
CURVES = "faithfulness.npz"
FORMAT = 1
STEPS = 8
DEFAULT_IMAGES = 200
BATCH = 50                      # images whose maps are computed together
FORWARD_BATCH = 1024            # perturbed images per forward pass
REMOVAL = "mean colour (0 after normalisation)"
BASELINES = {"random": "Random map (baseline)", "centre": "Centre-bias map (baseline)"}
METRICS = {  # key -> (title, higher is better)
    "deletion_auc": ("Deletion AUC ↓", False),
    "insertion_auc": ("Insertion AUC ↑", True),
    "pointing_game": ("Pointing game ↑", True),
    "relevance_mass": ("Relevance mass ↑", True),
    "seconds_per_image": ("Seconds per image ↓", False),
}


class FaithfulnessError(ValueError):
    """Bad input or an invalid faithfulness file; the message is user-facing."""


# -- the metrics, on plain tensors -------------------------------------------------------------
def _order(heat: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(B, P) pixel ranks, 0 = most salient; equal values in a fixed random order."""
    flat = heat.reshape(len(heat), -1).double()
    gen = torch.Generator().manual_seed(seed)
    jitter = torch.rand(flat.shape, generator=gen, dtype=torch.float64) * 1e-9
    order = torch.argsort(flat + jitter, dim=1, descending=True)
    return torch.argsort(order, dim=1)


def perturbation_curves(model: torch.nn.Module, x: torch.Tensor, heat: torch.Tensor, target: torch.Tensor,
                        steps: int = STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(deletion, insertion): (B, steps + 1) probabilities of `target` with k/steps of the pixels
    removed (most salient first) / revealed (most salient first), k = 0..steps."""
    b, _, h, w = x.shape
    rank = _order(upsample(heat, (h, w)))
    # The ends do not depend on the map: the whole image and the fully removed one.
    counts = [round(k * h * w / steps) for k in range(1, steps)]
    top = torch.stack([rank < n for n in counts], 1).reshape(b, steps - 1, 1, h, w)
    images = torch.cat([x[:, None] * (~top), x[:, None] * top, x[:, None], torch.zeros_like(x[:, None])], 1)
    p = _target_probs(model, images.reshape(-1, *x.shape[1:]), target.repeat_interleave(2 * steps))
    p = p.reshape(b, 2 * steps)
    full, empty = p[:, -2:-1], p[:, -1:]
    deletion = torch.cat([full, p[:, :steps - 1], empty], 1)
    insertion = torch.cat([empty, p[:, steps - 1:2 * steps - 2], full], 1)
    return deletion, insertion


def _target_probs(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), FORWARD_BATCH):
            probs = model(images[i:i + FORWARD_BATCH]).float().softmax(1)
            out.append(probs.gather(1, target[i:i + FORWARD_BATCH, None])[:, 0])
    return torch.cat(out)


def auc(curves: torch.Tensor | np.ndarray) -> np.ndarray:
    """Area under each curve sampled evenly on [0, 1] (trapezoids)."""
    c = np.asarray(curves, dtype=np.float64)
    return (c[..., 1:] + c[..., :-1]).sum(-1) / (2 * (c.shape[-1] - 1))


def pointing_game(heat: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per image: does the map's peak (at the mask's size) lie on the object?"""
    rank = _order(upsample(heat, tuple(masks.shape[-2:])))
    peak = rank.argmin(1)
    return masks.reshape(len(masks), -1).gather(1, peak[:, None])[:, 0].numpy()


def relevance_mass(heat: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per image: the share of the map's total that falls on the object (a flat zero map
    counts as uniform)."""
    h = upsample(heat, tuple(masks.shape[-2:])).clamp_min(0).reshape(len(masks), -1).double()
    m = masks.reshape(len(masks), -1).double()
    total = h.sum(1)
    inside = (h * m).sum(1)
    uniform = m.mean(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), uniform).numpy()


def random_maps(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand((n, size, size), generator=torch.Generator().manual_seed(seed))


def centre_map(size: int) -> torch.Tensor:
    """A Gaussian bump on the image centre (sigma a quarter of the side): the 'objects are
    usually in the middle' guess."""
    c = (torch.arange(size) + 0.5 - size / 2) / (size / 4)
    return torch.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / 2)


# -- a run's test set ---------------------------------------------------------------------------
@dataclass
class TestSet:
    x: torch.Tensor             # normalised (N, C, H, W)
    y: torch.Tensor
    masks: torch.Tensor | None  # bool (N, H, W)
    indices: np.ndarray         # positions in the full test set


def test_images(cfg: dict, n: int, seed: int = 0) -> TestSet:
    """n test images of the run's dataset (a fixed random choice), normalised the run's way."""
    from .data import DatasetError, load_dataset
    from .inference import preprocess_for
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise FaithfulnessError(f"--images must be a whole number of at least 1, not {n!r}")
    try:
        splits = load_dataset(cfg["dataset"], data_dir=cfg.get("data_dir") or "data", subset=cfg.get("subset"),
                              val_fraction=cfg.get("val_fraction", 0.1), seed=int(cfg.get("seed", 0)),
                              img_size=cfg.get("img_size"), path=cfg.get("data_path"))
    except DatasetError as err:
        raise FaithfulnessError(f"cannot load the run's test set: {err}") from None
    total = len(splits.test_y)
    if n > total:
        raise FaithfulnessError(f"--images {n} is more than the {total} images of the test set")
    idx = np.sort(np.random.default_rng(seed).permutation(total)[:n])
    t = torch.from_numpy(idx)
    x = preprocess_for(cfg).normalize(splits.test_x[t])
    masks = None if splits.test_masks is None else splits.test_masks[t]
    return TestSet(x, splits.test_y[t], masks, idx)


# -- the evaluation -------------------------------------------------------------------------------
Progress = Callable[[int, int, str], None]


def evaluate(model: torch.nn.Module, kind: str, data: TestSet, methods: list[str],
             progress: Progress | None = None) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """(summary per method, per-image arrays, {method: why skipped}); baselines included."""
    progress = progress or (lambda done, total, what: None)
    if any(m not in BASELINES and not METHODS[m].vit_only for m in methods):
        import pytorch_grad_cam  # noqa: F401  (its seconds of import are no method's seconds per image)
    n, size = len(data.y), data.x.shape[-1]
    with torch.no_grad():
        target = torch.cat([model(data.x[i:i + BATCH]).argmax(1) for i in range(0, n, BATCH)])
    names = [*methods, *BASELINES]
    per: dict[str, dict[str, list]] = {m: {"deletion": [], "insertion": [], "points": [], "mass": []} for m in names}
    seconds = {m: 0.0 for m in names}
    skipped: dict[str, str] = {}
    for i in range(0, n, BATCH):
        x, tgt = data.x[i:i + BATCH], target[i:i + BATCH]
        # All methods of a batch in one call: the CAMs then share their forward and backward.
        wanted = [m for m in methods if m not in skipped]
        maps = explain_batch(model, x, kind, wanted, target=tgt) if wanted else None
        if maps is not None:
            skipped.update(maps.errors)
        for m in names:
            if m in skipped:
                continue
            if m in BASELINES:
                heat = random_maps(len(x), size, seed=i) if m == "random" else centre_map(size).expand(len(x), -1, -1)
            else:
                heat, seconds[m] = maps.heat[m], seconds[m] + maps.seconds[m]
            dele, ins = perturbation_curves(model, x, heat, tgt)
            per[m]["deletion"].append(dele.numpy())
            per[m]["insertion"].append(ins.numpy())
            if data.masks is not None:
                masks = data.masks[i:i + BATCH]
                per[m]["points"].append(pointing_game(heat, masks))
                per[m]["mass"].append(relevance_mass(heat, masks))
        done = min(i + BATCH, n)
        progress(done, n, f"{done}/{n} images, {len(names) - len(skipped)} maps each")
    for m in skipped:
        per.pop(m, None)
    summary, arrays = {}, {"indices": data.indices, "target": target.numpy()}
    for m, cols in per.items():
        dele, ins = np.concatenate(cols["deletion"]), np.concatenate(cols["insertion"])
        row = {"title": _title(m), "deletion_auc": float(auc(dele).mean()), "insertion_auc": float(auc(ins).mean()),
               "seconds_per_image": None if m in BASELINES else seconds[m] / n}
        arrays[f"{m}/deletion"], arrays[f"{m}/insertion"] = dele.astype(np.float16), ins.astype(np.float16)
        if cols["points"]:
            points, mass = np.concatenate(cols["points"]), np.concatenate(cols["mass"])
            row["pointing_game"], row["relevance_mass"] = float(points.mean()), float(mass.mean())
            arrays[f"{m}/pointing"], arrays[f"{m}/mass"] = points.astype(bool), mass.astype(np.float16)
        summary[m] = row
    return summary, arrays, skipped


def _title(m: str) -> str:
    return BASELINES.get(m) or METHODS[m].title


# -- files and stamps -------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digest(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_report(run_dir: Path, doc: dict, arrays: dict[str, np.ndarray]) -> dict:
    """Write the curves, then the stamped summary (each atomically); returns the summary."""
    blob = _npz_bytes(arrays)
    doc = {**doc, "curves_file": CURVES, "curves_sha256": hashlib.sha256(blob).hexdigest()}
    doc["digest"] = _digest(doc)
    atomic_write(run_dir / CURVES, lambda tmp: tmp.write_bytes(blob))
    atomic_write_text(run_dir / REPORT, json.dumps(doc, indent=2))
    return doc


def load_report(run_dir: Path | str, with_curves: bool = False) -> dict | None:
    """The run's faithfulness summary (and its curves under "curves" when asked), None when it
    has none; FaithfulnessError when the file is edited, incomplete or made for other weights."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise FaithfulnessError(f"{REPORT} is not readable JSON: recompute it") from None
    if not isinstance(doc, dict) or doc.get("digest") != _digest(doc):
        raise FaithfulnessError(f"{REPORT} does not match its own checksum (it was edited): recompute it")
    if doc.get("format") != FORMAT:
        raise FaithfulnessError(f"{REPORT} has format {doc.get('format')!r}, not {FORMAT}: recompute it")
    weights = run_dir / WEIGHTS
    if not weights.is_file() or sha256_file(weights) != doc.get("weights_sha256"):
        raise FaithfulnessError(f"{REPORT} was measured on other weights than the run's {WEIGHTS} "
                                "(the run was retrained or the file copied from another run): recompute it")
    curves = run_dir / CURVES
    if not curves.is_file() or sha256_file(curves) != doc.get("curves_sha256"):
        raise FaithfulnessError(f"{CURVES} is missing or does not match {REPORT}: recompute it")
    if with_curves:
        with np.load(curves, allow_pickle=False) as z:
            doc["curves"] = {k: z[k] for k in z.files}
    return doc


def mean_curves(doc: dict) -> dict[str, dict[str, list[float]]]:
    """Method -> {"deletion": mean curve, "insertion": mean curve} from a report loaded with curves."""
    out: dict[str, dict[str, list[float]]] = {}
    for key, arr in doc.get("curves", {}).items():
        if "/" in key and key.split("/")[1] in ("deletion", "insertion"):
            m, which = key.split("/")
            out.setdefault(m, {})[which] = arr.astype(np.float64).mean(0).tolist()
    return out


def compute(run_dir: Path | str, images: int = DEFAULT_IMAGES, methods: list[str] | None = None,
            progress: Progress | None = None, allow_readonly: bool = False) -> dict:
    """Measure a run's maps and write faithfulness.json + .npz into its folder."""
    from .inference import load_run
    run = open_run(run_dir)
    if run.readonly and not allow_readonly:
        raise FaithfulnessError(f"{run.name} is read-only (a demo run or one loaded from the Hub): its "
                                "faithfulness is computed when it is built (`make demo-runs`)")
    loaded = load_run(run.path)
    kind, model_name = loaded.kind, loaded.config.get("model")
    available = methods_for(kind, model_name)
    if methods:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise FaithfulnessError(f"unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    chosen = list(methods or available)
    data = test_images(loaded.config, images)
    weights_sha = sha256_file(run.file(WEIGHTS))
    t0 = time.time()
    summary, arrays, skipped = evaluate(loaded.model, kind, data, chosen, progress)
    for m in chosen:
        if m not in available and m not in skipped:
            skipped[m] = f"{METHODS[m].title} cannot run on this model"
    if sha256_file(run.file(WEIGHTS)) != weights_sha:
        raise FaithfulnessError(f"{run.name}'s weights changed while its maps were measured (it is still "
                                "training?): nothing was written; try again when it has finished")
    doc = {
        "format": FORMAT, "run": run.name, "model": model_name, "kind": kind,
        "dataset": loaded.config.get("dataset"), "images": len(data.y), "steps": STEPS, "removal": REMOVAL,
        "target": "the predicted class", "has_masks": data.masks is not None,
        "accuracy": float((torch.from_numpy(arrays["target"]) == data.y).float().mean()),
        "methods": summary, "skipped": skipped, "seconds": round(time.time() - t0, 1),
        "weights_sha256": weights_sha, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return write_report(run.path, doc, arrays)


def format_table(doc: dict) -> str:
    cols = [k for k in METRICS if any(row.get(k) is not None for row in doc["methods"].values())]
    lines = [f"{'method':<32}" + "".join(f"{METRICS[c][0]:>22}" for c in cols)]
    for row in doc["methods"].values():
        cells = "".join(f"{'-' if row.get(c) is None else format(row[c], '.3f' if c != 'seconds_per_image' else '.4f'):>22}"
                        for c in cols)
        lines.append(f"{row['title']:<32}{cells}")
    for m, why in doc.get("skipped", {}).items():
        lines.append(f"skipped {m}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinyvit.faithfulness", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="the run folder")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="test images to measure on")
    p.add_argument("--methods", type=lambda s: [m.strip() for m in s.split(",") if m.strip()], default=None,
                   help=f"comma-separated, from: {', '.join(METHODS)} (default: all the model can run)")
    p.add_argument("--progress-file", type=Path, help="also write progress as JSON here (for the app)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from tqdm import tqdm
    bar = None if args.quiet else tqdm(total=1, unit="img", desc="faithfulness", dynamic_ncols=True)

    def progress(done: int, total: int, what: str) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(what, refresh=False)
            bar.refresh()
        if args.progress_file:
            atomic_write_text(args.progress_file, json.dumps({"done": done, "total": total, "what": what}))

    from .data import DatasetError
    try:
        doc = compute(args.run, args.images, args.methods, progress)
    except (FaithfulnessError, RunError, MethodError, DatasetError) as err:
        if bar is not None:
            bar.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    if bar is not None:
        bar.close()
    print(format_table(doc))
    print(f"wrote {Path(args.run) / REPORT} and {CURVES} ({doc['images']} images, {doc['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
