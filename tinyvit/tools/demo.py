"""The demo runs shipped in demo_runs/: small trained runs, so that every page of the app has
predictions, attention maps, metrics and comparisons to show before anything is trained.

    python -m tinyvit.tools.demo              # (make demo-runs) retrain all of them: a few CPU-hours
    python -m tinyvit.tools.demo --only demo-shapes-cnn
    python -m tinyvit.tools.demo --adopt demo-fmnist-cnn ~/runs/fmnist-cnn   # ship a run trained already
    python -m tinyvit.tools.demo --faithfulness-only   # measure the shipped runs' maps, no training

Each run is trained by train.py in its own process, in a temporary folder; then what viewing
does not need (the optimizer checkpoint for --resume) is dropped, the run is marked read-only
and only then does it replace the old demo run. The Fashion-MNIST pair are the real models
(the slides' 1.2M-parameter TinyViT and the registry's CNN) on the full real dataset, and the
shapes TinyViT is the same TinyViT on 10,000 generated images per class; the digits demos and
the shapes CNN are smaller models on toy data, about a MB each.

A run trained beforehand with exactly a demo's settings (say, in the background with train.py
--resume across reboots) can be shipped with --adopt: its recorded settings are checked
against the demo's, and its floor, maps, stripping and swap are those of a fresh build.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import faithfulness
from ..checkpoint import WEIGHTS, atomic_write_text
from ..data import dataset_info
from ..models import resolve_hparams
from ..runs import DEMO_ROOT, READONLY_MARK, Run, RunError, open_run
from ..training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
# What the app reads from a finished run (tinyvit.inference.load_run needs config.json and
# model.safetensors; the pages read the rest). checkpoint.safetensors is left out.
KEEP = ("config.json", "status.json", "metrics.jsonl", "test_metrics.json", "predictions.csv",
        "samples.safetensors", WEIGHTS, faithfulness.REPORT, faithfulness.CURVES)
# Pre-norm, as the shipped demos were trained (new runs default to post-norm since; see the
# README's "Pre-norm or post-norm"): a retrain must give the runs the README describes.
SMALL_VIT = ("--model", "tinyvit", "--embed-dim", "64", "--num-heads", "4", "--num-layers", "4",
             "--mlp-dim", "128", "--norm", "pre")
SMALL_CNN = ("--model", "cnn", "--widths", "32", "64", "128")


@dataclass(frozen=True)
class Demo:
    name: str
    args: tuple[str, ...]
    # Test accuracy below which the run is not shipped (a training regression, not bad luck):
    # a little under what these settings measured (the README's demo table).
    min_accuracy: float = 0.9
    # Threads it trains with (None: --threads); part of what a run is, as the thread count
    # splits each batch. The Fashion-MNIST pair take two, or an hour each doubles.
    threads: int | None = None


# Epochs are given, not left to the dataset defaults, so the demos stay what they were measured as.
# Shapes: with the default 600 training images per class a small TinyViT plateaued near 60% test
# accuracy (54-65% over several recipes, underfitting) while the CNN was at 100% within 15
# epochs, convolution's locality being worth a lot with few images. The shapes TinyViT is
# therefore the slides' 1.2M-parameter shape on 10,000 generated images per class, without
# crop/flip (fresh generated images need no augmentation, and it learned faster without).
# Fashion-MNIST first: the app opens on the first demo pair. Both use a cosine schedule with one
# warmup epoch at a higher peak rate than the slides' constant 3e-4 (see the README's recipe
# study); the TinyViT is the slides' CIFAR-10 shape on 28x28 images (patch 4: 49 tokens), without
# dropout: with it, 20 epochs gave 90.67% test, its training accuracy no higher than validation's
# (underfitting, not overfitting).
FMNIST = ("--dataset", "fashion-mnist", "--weight-decay", "0.05", "--label-smoothing", "0.1",
          "--schedule", "cosine", "--warmup-epochs", "1")
# The slides' CIFAR-10 TinyViT (about 1.2M parameters) with the plus recipe's model settings.
SLIDES_VIT = ("--model", "tinyvit", "--embed-dim", "128", "--patch-size", "4", "--num-heads", "8",
              "--num-layers", "6", "--mlp-dim", "512", "--dropout", "0.0", "--norm", "post",
              "--batch-size", "64", "--lr", "5e-4")
DEMOS = (
    Demo("demo-fmnist-tinyvit", (*FMNIST, *SLIDES_VIT, "--epochs", "30"),
         min_accuracy=0.91, threads=2),
    Demo("demo-fmnist-cnn", (*FMNIST, "--model", "cnn", "--epochs", "15", "--batch-size", "128", "--lr", "1e-3",
                             "--random-erasing", "0.25"), min_accuracy=0.93, threads=2),
    Demo("demo-digits-tinyvit", ("--dataset", "digits", *SMALL_VIT, "--epochs", "40"), min_accuracy=0.95),
    Demo("demo-digits-cnn", ("--dataset", "digits", *SMALL_CNN, "--epochs", "40"), min_accuracy=0.95),
    Demo("demo-shapes-tinyvit", ("--dataset", "shapes", "--generate-per-class", "10000", *SLIDES_VIT,
                                 "--no-augment", "--weight-decay", "0.05", "--label-smoothing", "0.1",
                                 "--schedule", "cosine", "--warmup-epochs", "1", "--epochs", "14"),
         min_accuracy=0.95, threads=2),
    Demo("demo-shapes-cnn", ("--dataset", "shapes", *SMALL_CNN, "--epochs", "15"), min_accuracy=0.95),
)


class DemoError(RuntimeError):
    """A demo run that could not be made; the old one is kept."""


def demo_root() -> Path:
    return Path(os.environ.get("TINYVIT_DEMO_RUNS") or DEMO_ROOT)


def train_command(demo: Demo, runs_root: Path, threads: int) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *demo.args, "--seed", "0",
            "--threads", str(demo.threads or threads), "--runs-root", str(runs_root), "--name", demo.name,
            "--quiet"]


def planned_settings(demo: Demo, threads: int) -> dict:
    """The settings train.py resolves from the command that trains `demo` (dataset defaults
    and registry hyperparameters filled in), as config.json records them."""
    sys.path.insert(0, str(REPO))
    import train  # the script's own resolution, so this can never drift from what it trains
    cfg = train.config_from_args(train.parser().parse_args(train_command(demo, Path("staging"), threads)[2:]))
    settings = cfg.to_dict()
    info = dataset_info(cfg.dataset)
    settings["img_size"] = cfg.img_size or info.img_size
    settings["epochs"] = cfg.epochs or info.default_epochs
    settings["model_hparams"] = resolve_hparams(cfg.model, settings["img_size"], **cfg.model_hparams)
    return settings


def recorded_settings(config: dict) -> dict:
    """A run's config.json as TrainConfig fields. A setting added to TrainConfig (or a
    hyperparameter added to the registry) after the run was trained is absent there: it
    trained with the default."""
    settings = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(TrainConfig)}
    settings.update({k: v for k, v in config.items() if k in settings})
    settings["model_hparams"] = resolve_hparams(config["model"], config["img_size"], **config["model_hparams"])
    return settings


def settings_mismatch(demo: Demo, config: dict, threads: int) -> list[str]:
    """'name: recorded != planned' for each setting where a run differs from `demo`."""
    planned, recorded = planned_settings(demo, threads), recorded_settings(config)
    return [f"{k}: {recorded[k]!r} != {planned[k]!r}" for k in planned if recorded.get(k) != planned[k]]


def strip_run(path: Path) -> None:
    """Keep what the app shows, drop the rest; mark the run read-only."""
    run = open_run(path)
    for entry in path.iterdir():
        if entry.name not in KEEP:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    cfg = run.config()
    cfg.pop("host", None)  # the machine that made the demos is nobody's business
    run.write_config(cfg)
    status = json.loads(run.file("status.json").read_text(encoding="utf-8"))
    status.pop("pid", None)
    status.pop("pid_start", None)
    atomic_write_text(run.file("status.json"), json.dumps({**status, "demo": True}, indent=2))
    run.file(READONLY_MARK).write_text("built-in demo run, made by `make demo-runs`\n", encoding="utf-8")


def make_demo(demo: Demo, out: Path, threads: int) -> Path:
    """Train one demo run and swap it in for the old one only once it is complete."""
    out.mkdir(parents=True, exist_ok=True)
    # Trained outside the repository, so a half-made run (and its optimizer checkpoint) can
    # never be picked up by git or a Docker build while training takes its minutes.
    with tempfile.TemporaryDirectory(prefix="tinyvit-demo-") as staging:
        cmd = train_command(demo, Path(staging), threads)
        print("$ python train.py " + " ".join(cmd[2:]), flush=True)
        done = subprocess.run(cmd, cwd=REPO)
        built = Path(staging) / demo.name
        if done.returncode != 0 or Run(built).status().get("state") != "finished":
            raise DemoError(f"training {demo.name} failed (exit code {done.returncode}); "
                            f"the old demo run is kept")
        return finish(demo, built, out)


def adopt(demo: Demo, source: Path, out: Path, threads: int) -> Path:
    """Ship a finished run trained elsewhere with exactly `demo`'s settings; `source` is
    copied, never changed."""
    try:
        run = open_run(source)
        config = run.config()
    except RunError as err:
        raise DemoError(f"cannot adopt {source}: {err}") from None
    if run.status().get("state") != "finished":
        raise DemoError(f"cannot adopt {source}: it has not finished training (--resume it first)")
    wrong = settings_mismatch(demo, config, threads)
    if wrong:
        raise DemoError(f"cannot adopt {source} as {demo.name}: it was trained with other settings "
                        f"({'; '.join(wrong)})")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinyvit-demo-") as staging:
        built = Path(staging) / demo.name
        shutil.copytree(source, built, ignore=shutil.ignore_patterns(READONLY_MARK, ".lock*"))
        return finish(demo, built, out)


def finish(demo: Demo, built: Path, out: Path) -> Path:
    """Floor, maps, stripping and swap for a finished run in a staging folder."""
    accuracy = (open_run(built).test_metrics() or {}).get("accuracy", 0.0)
    if accuracy < demo.min_accuracy:
        raise DemoError(f"{demo.name} reached only {accuracy:.1%} test accuracy (at least "
                        f"{demo.min_accuracy:.0%} expected); the old demo run is kept")
    # Measured before the run is marked read-only: afterwards nothing may write into it.
    faithfulness.compute(built)
    strip_run(built)
    return swap_in(built, out / demo.name)


def measure_shipped(target: Path, images: int = faithfulness.DEFAULT_IMAGES) -> Path:
    """faithfulness.json for a shipped demo run without retraining it: measured on a writable
    copy (same weights, so the stamp holds), then the two files are copied in atomically."""
    with tempfile.TemporaryDirectory(prefix="tinyvit-demo-faith-") as staging:
        copy = Path(staging) / target.name
        shutil.copytree(target, copy)
        (copy / READONLY_MARK).unlink(missing_ok=True)
        faithfulness.compute(copy, images)
        for name in (faithfulness.CURVES, faithfulness.REPORT):
            tmp = target / f".{name}.incoming"
            shutil.copyfile(copy / name, tmp)
            os.replace(tmp, target / name)
    return target


def swap_in(built: Path, target: Path) -> Path:
    """Copy the finished run beside `target`, then rename it into place."""
    incoming = target.parent / f".incoming-{target.name}"
    shutil.rmtree(incoming, ignore_errors=True)
    shutil.copytree(built, incoming)
    try:
        if target.exists():
            shutil.rmtree(target)  # a read-only run to the app, not to the tool that made it
        os.replace(incoming, target)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return target


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def summary(paths: list[Path]) -> str:
    lines = [f"{'run':<22}{'test accuracy':>15}{'size':>10}"]
    for path in paths:
        test = open_run(path).test_metrics() or {}
        acc = f"{100 * test['accuracy']:.2f}%" if "accuracy" in test else "-"
        lines.append(f"{path.name:<22}{acc:>15}{folder_bytes(path) / 2 ** 20:>8.2f}MB")
    total = sum(folder_bytes(p) for p in paths) / 2 ** 20
    lines.append(f"{'total':<37}{total:>8.2f}MB")
    return "\n".join(lines)


def arg_parser() -> argparse.ArgumentParser:
    names = [d.name for d in DEMOS]
    p = argparse.ArgumentParser(prog="python -m tinyvit.tools.demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=f"only these: {', '.join(names)}")
    p.add_argument("--out", type=Path, default=demo_root(), help="where the demo runs go")
    p.add_argument("--adopt", nargs=2, action="append", metavar=("NAME", "RUN_DIR"), default=[],
                   help="ship the finished run in RUN_DIR as demo NAME instead of training it "
                        "(its settings must be the demo's); repeat for more")
    p.add_argument("--faithfulness-only", action="store_true",
                   help="measure the maps of the demo runs already in --out (no training)")
    p.add_argument("--images", type=int, default=faithfulness.DEFAULT_IMAGES,
                   help="test images for --faithfulness-only")
    # One thread, as the shipped demos were trained: the thread count splits each batch, so it
    # is part of what a run is (and one thread is cheapest on a shared machine).
    p.add_argument("--threads", type=int, default=1, help="CPU threads per training run")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser()
    args = parser.parse_args(argv)
    adopted = dict(args.adopt)
    unknown = sorted(set(adopted) - {d.name for d in DEMOS})
    if unknown:
        parser.error(f"--adopt: no demo named {', '.join(unknown)}; the demos: {', '.join(d.name for d in DEMOS)}")
    only = set(args.only or ()) | set(adopted) if (args.only or adopted) else None
    start = time.time()
    made = []
    for demo in DEMOS:
        if only is not None and demo.name not in only:
            continue
        try:
            if args.faithfulness_only:
                print(f"measuring the maps of {demo.name}", flush=True)
                made.append(measure_shipped(args.out / demo.name, args.images))
            elif demo.name in adopted:
                print(f"adopting {adopted[demo.name]} as {demo.name}", flush=True)
                made.append(adopt(demo, Path(adopted[demo.name]).expanduser(), args.out, args.threads))
            else:
                made.append(make_demo(demo, args.out, args.threads))
        except (DemoError, faithfulness.FaithfulnessError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(f"\n{summary(made)}\n\nmade {len(made)} demo run(s) in {args.out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    # SIGTERM as an exception: subprocess.run then kills the training and the staging folder goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
