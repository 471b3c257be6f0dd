#!/usr/bin/env python
"""Train TinyViT or a CNN and write a run folder that the app reads.

Examples:
  python train.py --dataset digits --model tinyvit            # offline, ~1.5 min on 2 CPU cores
  python train.py --preset seed-cifar10-tinyvit                # the slides' CIFAR-10 TinyViT row
  python train.py --resume --run-dir runs/digits-tinyvit-...   # continue a stopped run
  torchrun --nproc_per_node=2 train.py --dataset digits        # data-parallel over 2 processes
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from tinyvit.training.config import PRESETS, TrainConfig, apply_preset, defaults_for, validate
from tinyvit.metrics import format_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3

# The model hyperparameters that have flags of their own (their types are in parser()).
MODEL_FLAGS = ("embed_dim", "patch_size", "num_heads", "num_layers", "mlp_dim", "dropout", "norm", "widths",
               "drop_path", "conv_stages")


def whole_number(text: str) -> int:
    """An int flag's value. Its range is checked by config.validate, whose one-line errors
    name the flag (`--epochs must be positive`), as for the float flags."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    from tinyvit.data import DATASETS
    from tinyvit.models import MODELS

    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train TinyViT or a CNN on an image dataset and save the run "
                    "(metrics, checkpoints, test report) for the TinyViT Lab app.",
        epilog="Datasets: " + ", ".join(DATASETS) + ".  Models: " + ", ".join(MODELS)
               + ".  Presets (the slides' rows): " + ", ".join(PRESETS) + ".",
        # Defaults are written into each help text (no ArgumentDefaultsHelpFormatter: it adds
        # "(default: None)" after the flags whose default is worked out later).
    )
    S = argparse.SUPPRESS
    what = p.add_argument_group("what to train")
    what.add_argument("--preset", choices=list(PRESETS), metavar="NAME", default=S,
                      help="one of the slides' setups, e.g. seed-cifar10-tinyvit; other flags override it")
    what.add_argument("--dataset", metavar="NAME", default=S, help="dataset (default: digits)")
    what.add_argument("--model", metavar="NAME", default=S, help="model (default: tinyvit)")
    what.add_argument("--data-dir", metavar="DIR", default=S,
                      help="where datasets are (or are downloaded to) (default: data)")
    what.add_argument("--data-path", metavar="PATH", default=S,
                      help="imagefolder: a folder of class sub-folders, or a .zip of one")
    what.add_argument("--img-size", type=whole_number, metavar="N", default=S,
                      help="resize images to N×N (default: the dataset's size)")
    what.add_argument("--subset", type=whole_number, metavar="N", default=S,
                      help="use N training images per class, for quick runs")
    what.add_argument("--generate-per-class", type=whole_number, metavar="N", default=S,
                      help="shapes: generate N training images per class (600), to see how much data a model needs")
    what.add_argument("--val-fraction", type=float, metavar="F", default=S,
                      help="share of the training set held out for validation (default: 0.1)")

    mh = p.add_argument_group("model hyperparameters (registry defaults when left out)")
    mh.add_argument("--embed-dim", type=int, metavar="N", default=S, help="TinyViT embedding size (128)")
    mh.add_argument("--patch-size", type=int, metavar="N", default=S,
                    help="TinyViT patch side (default: smallest of at least 4 giving at most an 8×8 grid: 4 for 16-32 px, 12 for 96 px)")
    mh.add_argument("--num-heads", type=int, metavar="N", default=S, help="attention heads (8)")
    mh.add_argument("--num-layers", type=int, metavar="N", default=S, help="encoder layers (6)")
    mh.add_argument("--mlp-dim", type=int, metavar="N", default=S, help="MLP hidden size (512)")
    mh.add_argument("--dropout", type=float, metavar="P", default=S, help="dropout (0.1)")
    mh.add_argument("--norm", choices=["pre", "post"], default=S,
                    help="LayerNorm placement: post (the slides, and the default: it trained better on digits, see the README) or pre")
    mh.add_argument("--drop-path", type=float, metavar="P", default=S,
                    help="TinyViT stochastic depth: the last block's drop rate, rising from 0 (0)")
    mh.add_argument("--conv-stages", type=int, metavar="N", default=S,
                    help="tinyvit-conv: conv + max-pool stages of the tokenizer (default: fewest giving at most an 8×8 grid)")
    mh.add_argument("--widths", type=int, nargs="+", metavar="N", default=S,
                    help="CNN channel widths per stage (64 128 256)")

    tr = p.add_argument_group("training (the slides' setup by default)")
    tr.add_argument("--epochs", type=whole_number, metavar="N", default=S,
                    help="epochs (default: 100 for CIFAR/STL as the slides; shorter for small datasets)")
    tr.add_argument("--batch-size", type=whole_number, metavar="N", default=S, help="batch size (64, the slides; 32 for the small offline datasets)")
    tr.add_argument("--lr", type=float, metavar="LR", default=S, help="AdamW learning rate (3e-4, the slides; 1e-3 for the small offline datasets)")
    tr.add_argument("--weight-decay", type=float, metavar="WD", default=S, help="AdamW weight decay (0.05)")
    tr.add_argument("--label-smoothing", type=float, metavar="S", default=S, help="label smoothing (0.1)")
    tr.add_argument("--schedule", choices=["constant", "cosine"], default=S,
                    help="learning-rate schedule (constant as the slides; cosine for the small offline datasets)")
    tr.add_argument("--warmup-epochs", type=float, metavar="E", default=S, help="linear warmup epochs (0; 2 for the small offline datasets)")
    tr.add_argument("--no-augment", dest="augment", action="store_false", default=S,
                    help="turn the dataset's augmentation off")
    tr.add_argument("--random-erasing", type=float, metavar="P", default=S,
                    help="erase a random rectangle in this share of the training images (0)")
    tr.add_argument("--seed", type=int, metavar="N", default=S, help="random seed (0)")

    rt = p.add_argument_group("where it runs")
    rt.add_argument("--device", metavar="DEV", default=S, help="auto, cpu, cuda, cuda:N or mps (auto)")
    rt.add_argument("--threads", type=whole_number, metavar="N", default=S,
                    help="CPU threads (default: all cores)")
    rt.add_argument("--no-amp", dest="amp", action="store_false", default=S,
                    help="no bf16 autocast on GPU")
    rt.add_argument("--cpu-bf16", action="store_true", default=S,
                    help="bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX): faster "
                         "training, above all for CNNs")
    rt.add_argument("--compile", action="store_true", default=S, help="torch.compile the model (GPU)")

    rs = p.add_argument_group("the run folder")
    rs.add_argument("--runs-root", metavar="DIR", default=None,
                    help="where run folders go (default: $TINYVIT_RUNS or runs)")
    rs.add_argument("--name", metavar="NAME", help="run folder name (default: DATASET-MODEL-TIME)")
    rs.add_argument("--run-dir", metavar="DIR",
                    help="the run folder: with --resume, continue it; else start the run queued there, "
                         "or create it if it does not exist yet")
    rs.add_argument("--resume", action="store_true",
                    help="continue the run in --run-dir from its last complete epoch (from epoch 1 if "
                         "it stopped before its first epoch ended), with the settings it was started with")
    rs.add_argument("--max-jobs", type=whole_number, metavar="N", default=None,
                    help="wait until fewer than N runs in the same runs folder are training")
    rs.add_argument("--quiet", action="store_true", help="no progress bar, epoch lines only")

    hub = p.add_argument_group("Hugging Face Hub")
    hub.add_argument("--push-to-hub", metavar="USER/REPO", default=None,
                     help="after a finished run, upload it (weights, config, metrics, model card) to "
                          "this Hub model repo; needs HF_TOKEN or `hf auth login`")
    hub.add_argument("--hub-private", action="store_true", help="create the Hub repo as private")
    return p


def given_settings(args: argparse.Namespace) -> list[str]:
    """The training settings given on the command line, as flags (settings default to
    SUPPRESS, so only those given are in args)."""
    flags = {"augment": "--no-augment", "amp": "--no-amp"}
    keys = set(TrainConfig.__dataclass_fields__) | set(MODEL_FLAGS) | {"preset"}
    return sorted(flags.get(k, "--" + k.replace("_", "-")) for k in vars(args) if k in keys)


WHERE_FLAGS = ("--device", "--threads")


def where_flags(args: argparse.Namespace) -> dict:
    """--device and --threads as given: where a run trains, which a resume may change."""
    return {k: v for k, v in vars(args).items() if k in ("device", "threads")}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The dataset's defaults, then the preset, then the flags given on the command line."""
    flags = vars(args)
    preset = apply_preset(args.preset) if getattr(args, "preset", None) else {}
    if "model" in flags and flags["model"] != preset.get("model", flags["model"]):
        # The preset's hyperparameters belong to its own model (a TinyViT's heads mean nothing to a CNN).
        preset = {k: v for k, v in preset.items() if k != "model_hparams"}
    dataset = flags.get("dataset", preset.get("dataset", TrainConfig.dataset))
    model = flags.get("model", preset.get("model", TrainConfig.model))
    values = {**defaults_for(dataset, model), **preset}
    hparams = dict(values.get("model_hparams", {}))
    for key in MODEL_FLAGS:
        if key in flags:
            hparams[key] = flags[key]
    for key in TrainConfig.__dataclass_fields__:
        if key in flags and key != "model_hparams":
            values[key] = flags[key]
    values["model_hparams"] = hparams
    return TrainConfig(**values)


class Progress:
    """A tqdm bar on a terminal; status.json gets batch progress at most twice a second."""

    def __init__(self, run, quiet: bool) -> None:
        self.run = run
        self.bar = None
        self.quiet = quiet or not sys.stderr.isatty()
        self.last_write = 0.0
        self.epoch_start = time.time()
        self.epoch = -1

    def __call__(self, epoch: int, batch: int, batches: int) -> None:
        now = time.time()
        if epoch != self.epoch:
            self.epoch, self.epoch_start = epoch, now
            if not self.quiet:
                from tqdm import tqdm
                if self.bar:
                    self.bar.close()
                self.bar = tqdm(total=batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False)
        if self.bar:
            self.bar.update(1)
        if now - self.last_write > 0.5 or batch == batches:
            self.last_write = now
            per_batch = (now - self.epoch_start) / batch
            self.run.write_status(epoch=epoch, batch=batch, batches=batches,
                                  epoch_eta_seconds=per_batch * (batches - batch))

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def print_table(run, result) -> None:
    rows = []
    hist = run.metrics()
    if hist:
        last = hist[-1]
        rows.append((f"validation (epoch {last['epoch']})", {k[4:]: v for k, v in last.items() if k.startswith("val_")}))
    if result.test:
        rows.append(("test", result.test))
    cfg = run.config()
    if rows:
        print()
        print(format_table(rows, f"{cfg.get('dataset_title', cfg['dataset'])} · {cfg['model']} · "
                                 f"{cfg.get('num_params', 0):,} parameters (values in %)"))


def push_to_hub(run, repo_id: str, private: bool) -> int:
    from tinyvit.hub import HubError, push_run
    try:
        print(f"pushed to the Hugging Face Hub: {push_run(run.path, repo_id, private=private)}")
    except HubError as err:
        print(f"error: the run finished but the push failed: {err}\n  push it later with: "
              f"python -m tinyvit.hub push {run.path} {repo_id}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from tinyvit.training import distributed as dist
    from tinyvit.training.runner import (USER_ERRORS, execute, load_existing, open_existing, prepare_new,
                                         setup_device, wait_for_slot)

    def log(msg: str) -> None:
        if dist.is_main():
            print(msg, file=sys.stderr if msg.startswith("warning") else sys.stdout, flush=True)

    if args.resume and not args.run_dir:
        print("error: --resume needs --run-dir RUN_FOLDER", file=sys.stderr)
        return EXIT_USAGE
    if args.push_to_hub:
        # Checked before training: a typo in the repo id or a missing token must not cost a run.
        from tinyvit.hub import HubError, check_push_ready
        try:
            args.push_to_hub, _ = check_push_ready(args.push_to_hub)
        except HubError as err:
            print(f"error: --push-to-hub: {err}", file=sys.stderr)
            return EXIT_USAGE
    main_process = True
    # --run-dir naming a folder that does not exist yet makes a new run there.
    existing = bool(args.run_dir) and (args.resume or Path(args.run_dir).exists())
    try:
        if existing:
            # config.json, read once: the run's own settings, threads included (a resumed run
            # must train as it began). Only where it runs may be changed on purpose (a run
            # started on a GPU resumed on a CPU).
            run, config = open_existing(args.run_dir, args.resume)
            cfg = TrainConfig.from_dict({**config, **where_flags(args)})
            ignored = [f for f in given_settings(args) if f not in WHERE_FLAGS]
            if ignored:
                log(f"warning: {'--resume' if args.resume else '--run-dir'} takes every setting from "
                    f"the run but --device and --threads; ignoring {', '.join(ignored)}")
        else:
            cfg = config_from_args(args)
        validate(cfg)  # before the device is touched: a bad --device is bad input, not a crash
        device = setup_device(cfg)
        main_process = dist.is_main()
        if existing:
            log(f"run folder: {run.path}")
            # A queued job holds no data while it waits for its slot.
            if args.max_jobs and main_process:
                wait_for_slot(run, args.max_jobs)
            data, model, epochs = load_existing(run, config, cfg, args.resume, log)
        else:
            target = Path(args.run_dir) if args.run_dir else None
            run, data, model, epochs = prepare_new(cfg, target.parent if target else args.runs_root,
                                                   target.name if target else args.name, log)
            log(f"run folder: {run.path}")
            if args.max_jobs and main_process:
                wait_for_slot(run, args.max_jobs)
        progress = Progress(run, args.quiet) if dist.is_main() else None
        result = execute(run, data, model, epochs, cfg, args.resume, device, on_batch=progress, log=log)
        if progress:
            progress.close()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        # A bug or a broken machine, not bad input: the traceback is for the log (the app shows
        # train.log's end), the last line says what happened; execute() marked the run failed.
        traceback.print_exc()
        print(f"error: failed: {traceback.format_exception_only(type(err), err)[-1].strip()}",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        dist.finish()
    if not main_process:
        return EXIT_OK
    if result.state == "finished":
        print_table(run, result)
        print(f"\nfinished: {run.path}")
        return push_to_hub(run, args.push_to_hub, args.hub_private) if args.push_to_hub else EXIT_OK
    if result.state == "stopped":
        print(f"stopped: {result.message}\n  resume with: python train.py --resume --run-dir {run.path}")
        return EXIT_OK
    print(f"error: {result.state}: {result.message}", file=sys.stderr)
    return EXIT_DIVERGED if result.state == "diverged" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
