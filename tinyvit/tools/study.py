"""The recipe and data-scaling studies behind the README's tables: rows of ordinary train.py runs.

    python -m tinyvit.tools.study recipes --dataset fashion-mnist --epochs 30 --runs-root ~/study
    python -m tinyvit.tools.study scaling --sizes 300 1000 3000 10000 --runs-root ~/study
    python -m tinyvit.tools.study table --runs-root ~/study

Each row is one run folder named after it, trained by train.py in its own process, one row at a
time (two trainings on a 2-core machine only slow each other down). Run the same command again
after a stop or a reboot: finished rows are skipped, a stopped row continues with --resume.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..models import model_kind
from ..models.vit import SLIDES_ENCODER
from ..training.config import recipe_settings

REPO = Path(__file__).resolve().parents[2]

# The slides' TinyViT shape for every ViT-family row.
SLIDES_VIT = tuple(flag for k in ("embed_dim", "num_heads", "num_layers", "mlp_dim")
                   for flag in (f"--{k.replace('_', '-')}", str(SLIDES_ENCODER[k])))
RECIPE_ROWS = (("tinyvit", "slides"), ("tinyvit", "plus"), ("tinyvit-conv", "plus"),
               ("cnn", "slides"), ("cnn", "plus"))


def as_flags(settings: dict) -> tuple[str, ...]:
    """train.py flags for TrainConfig fields and model hyperparameters."""
    flags: list[str] = []
    for key, value in {**settings, **settings.get("model_hparams", {})}.items():
        if key == "model_hparams":
            continue
        if key == "augment":
            flags += [] if value else ["--no-augment"]
            continue
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return tuple(flags)


@dataclass(frozen=True)
class Row:
    name: str
    args: tuple[str, ...]


def recipe_args(model: str, recipe: str) -> tuple[str, ...]:
    vit = model_kind(model) == "vit"
    return ("--model", model, *(SLIDES_VIT if vit else ()), *as_flags(recipe_settings(recipe, vit)))


def recipe_rows(dataset: str, epochs: int, subset: int | None = None) -> list[Row]:
    """One row per (model, recipe); `subset` keeps that many training images per class (a
    cheaper study, the rows named after it)."""
    sized = ("--subset", str(subset)) if subset else ()
    tag = f"-{subset}" if subset else ""
    return [Row(f"{dataset}{tag}-{model}-{recipe}", ("--dataset", dataset, *sized, "--epochs", str(epochs),
                                                      *recipe_args(model, recipe)))
            for model, recipe in RECIPE_ROWS]


def scaling_rows(sizes: list[int], images_seen: int) -> list[Row]:
    """Shapes at each size, every row trained on the same number of images (so the same CPU
    budget for a model): small sets get more epochs, never fewer than 2."""
    rows = []
    for per_class in sizes:
        train_images = per_class * 6 * 0.9          # 6 classes, 10% held out for validation
        epochs = max(2, round(images_seen / train_images))
        for model in ("tinyvit", "cnn"):
            rows.append(Row(f"shapes-{per_class}-{model}",
                            ("--dataset", "shapes", "--generate-per-class", str(per_class), "--epochs",
                             str(epochs), *recipe_args(model, "plus"))))
    return rows


def state_of(run: Path) -> str | None:
    try:
        return json.loads((run / "status.json").read_text()).get("state")
    except (OSError, ValueError):
        return None


def train_row(row: Row, root: Path, threads: int) -> int:
    run = root / row.name
    state = state_of(run)
    if state == "finished":
        print(f"{row.name}: finished already", flush=True)
        return 0
    common = ("--runs-root", str(root), "--threads", str(threads), "--quiet")
    if state is not None and (run / "checkpoint.safetensors").is_file():
        cmd = (sys.executable, str(REPO / "train.py"), "--resume", "--run-dir", str(run), "--quiet")
    else:
        cmd = (sys.executable, str(REPO / "train.py"), *row.args, *common, "--name", row.name)
    print(f"{row.name}: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd, cwd=REPO)


def summary(run: Path) -> dict | None:
    """Test accuracy, parameters and training minutes of a finished row, from its run folder."""
    try:
        config = json.loads((run / "config.json").read_text())
        test = json.loads((run / "test_metrics.json").read_text())
        epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    return {"row": run.name, "dataset": config.get("dataset"), "model": config.get("model"),
            "train_images": config.get("sizes", {}).get("train"), "epochs": len(epochs),
            "params": config.get("num_params"), "test_accuracy": test.get("accuracy"),
            "minutes": sum(float(e.get("epoch_seconds", 0)) for e in epochs) / 60}


def table(root: Path) -> str:
    rows = [s for run in sorted(p for p in root.iterdir() if (p / "config.json").is_file())
            if (s := summary(run))]
    lines = ["| row | model | train images | epochs | parameters | test accuracy | minutes |",
             "|---|---|---|---|---|---|---|"]
    for s in rows:
        acc = "-" if s["test_accuracy"] is None else f"{100 * s['test_accuracy']:.2f}%"
        lines.append(f"| {s['row']} | {s['model']} | {s['train_images']:,} | {s['epochs']} | "
                     f"{s['params']:,} | {acc} | {s['minutes']:.1f} |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tinyvit.tools.study", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recipes", help="the slides' recipe against the improved one, ViT family and CNN")
    r.add_argument("--dataset", default="fashion-mnist")
    r.add_argument("--epochs", type=int, default=30, help="epochs for every row")
    r.add_argument("--subset", type=int, default=None,
                   help="training images per class (default: all; validation shrinks with it, the test set stays whole)")
    s = sub.add_parser("scaling", help="TinyViT against the CNN as the generated shapes data grows")
    s.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000, 10000],
                   help="generated training images per class")
    s.add_argument("--images-seen", type=int, default=300_000,
                   help="training images every row sees in all (epochs follow from it)")
    sub.add_parser("table", help="print the markdown table of the finished rows")
    for q in (r, s, sub.choices["table"]):
        q.add_argument("--runs-root", type=Path, required=True, help="where the rows' run folders go")
    for q in (r, s):
        q.add_argument("--threads", type=int, default=2, help="CPU threads for each row")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = args.runs_root.expanduser()
    if args.command == "table":
        if not root.is_dir():
            print(f"error: {root} is not a folder", file=sys.stderr)
            return 2
        print(table(root))
        return 0
    if args.command == "recipes":
        rows = recipe_rows(args.dataset, args.epochs, args.subset)
    else:
        rows = scaling_rows(args.sizes, args.images_seen)
    root.mkdir(parents=True, exist_ok=True)
    failed = [row.name for row in rows if train_row(row, root, args.threads) != 0]
    print(table(root))
    if failed:
        print(f"error: rows that did not finish: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
