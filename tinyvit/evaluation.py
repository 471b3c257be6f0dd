"""A run's test-set report recomputed from its saved weights, with or without flip test-time
augmentation (TTA: the mean of the class probabilities of each image and of its mirror image).

    python -m tinyvit.evaluation RUN               # the test set, as train.py measured it
    python -m tinyvit.evaluation RUN --tta flip    # and with flip TTA, side by side

Flip TTA is offered only for datasets whose training augmentation mirrors images (clothing,
CIFAR, STL-10, shapes): a mirrored digit is another digit, or none. Nothing is written into the
run, so the read-only demo runs can be evaluated too.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .data import DatasetError, dataset_info, load_dataset
from .data.augment import FLIPPING
from .inference import LoadedRun, load_run
from .metrics import format_table, full_report
from .runs import RunError

TTA = {"none": "plain", "flip": "flip TTA"}
BATCH = 500


class EvaluationError(ValueError):
    """Why a run cannot be evaluated as asked, in one line."""


def check_tta(dataset: str, tta: str) -> None:
    if tta not in TTA:
        raise EvaluationError(f"unknown test-time augmentation {tta!r}; choose one of: {', '.join(TTA)}")
    if tta == "flip" and dataset_info(dataset).augment not in FLIPPING:
        raise EvaluationError(f"flip TTA is not offered for {dataset}: its training images are never mirrored, "
                              "and a mirror image may belong to another class")


def probabilities(loaded: LoadedRun, x_uint8: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Class probabilities for uint8 (N, C, H, W) images, BATCH at a time."""
    device = next(loaded.model.parameters()).device
    out = []
    for chunk in x_uint8.split(BATCH):
        x = loaded.preprocess.normalize(chunk.to(device))
        p = loaded.predict(x)
        if tta == "flip":
            p = (p + loaded.predict(x.flip(-1))) / 2
        out.append(p.cpu())
    return torch.cat(out)


def run_test_set(cfg: dict, data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's test images (uint8) and labels, loaded offline the way the run loaded them.

    generate_per_class is left out: it sizes only the generated training set, and generating a
    large one would cost more than the evaluation.
    """
    try:
        splits = load_dataset(cfg["dataset"], data_dir=data_dir or cfg.get("data_dir") or "data",
                              val_fraction=float(cfg.get("val_fraction", 0.1)), seed=int(cfg.get("seed", 0)),
                              download=False, img_size=cfg.get("img_size"), path=cfg.get("data_path"))
    except DatasetError as err:
        raise EvaluationError(f"cannot load the run's test set: {err}") from None
    return splits.test_x, splits.test_y


def evaluate(path: str | Path, ttas: tuple[str, ...] = ("none",), data_dir: str | Path | None = None,
             device: str = "cpu") -> dict[str, dict]:
    """{tta: test report as in test_metrics.json} for each of `ttas`."""
    loaded = load_run(path, device)
    for tta in ttas:
        check_tta(loaded.config["dataset"], tta)
    x, y = run_test_set(loaded.config, data_dir)
    if len(loaded.class_names) != int(loaded.config["num_classes"]) or int(y.max()) >= len(loaded.class_names):
        raise EvaluationError(f"the test set on disk has other classes than {loaded.name} was trained on")
    return {tta: full_report(y.numpy(), probabilities(loaded, x, tta).argmax(1).numpy(), loaded.class_names)
            for tta in ttas}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinyvit.evaluation", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="the run folder")
    p.add_argument("--tta", choices=list(TTA), default="none",
                   help="flip: also evaluate with flip test-time augmentation, beside the plain row (default: none)")
    p.add_argument("--data-dir", metavar="DIR", help="where the dataset is (default: the run's own data dir)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON instead of a table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(max(1, args.threads))
    ttas = ("none",) if args.tta == "none" else ("none", args.tta)
    try:
        reports = evaluate(args.run, ttas, args.data_dir)
    except (EvaluationError, RunError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    n = reports["none"]["num_samples"]
    print(format_table([(TTA[t], reports[t]) for t in ttas], title=f"{Path(args.run).name}: {n:,} test images"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
