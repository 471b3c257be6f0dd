"""From settings to a finished run folder: what train.py (and so the app) calls.

Bad input is found before any folder is made: a new run appears only once its data
loaded and its model was built, so a mistake never leaves a half-written run behind.
"""
from __future__ import annotations

import json
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from . import distributed as dist
from ..checkpoint import CHECKPOINT, CheckpointError
from .config import ConfigError, TrainConfig, validate
from ..data import DatasetError, dataset_info, load_dataset
from .loop import Diverged, Result, Trainer, pick_device, set_threads
from .step import cpu_bf16_supported
from ..models import ModelError, build_model, count_parameters, model_kind, resolve_hparams
from ..runfiles import read_status
from ..runs import (Run, RunError, check_run_name, check_runs_root, create_run, default_root, list_runs, open_run,
                    unique_run_name)

FORMAT_VERSION = 1
# What config.json learns from the loaded data and the built model, beyond the settings.
DATA_FACTS = ("class_names", "num_classes", "img_size", "in_chans", "mean", "std", "sizes", "model_hparams",
              "num_params")
USER_ERRORS = (ConfigError, DatasetError, ModelError, RunError, CheckpointError)


def resolve_epochs(cfg: TrainConfig) -> int:
    return int(cfg.epochs or dataset_info(cfg.dataset).default_epochs)


def load_data(cfg: TrainConfig, log: Callable[[str], None] = print):
    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, subset=cfg.subset,
                        val_fraction=cfg.val_fraction, seed=cfg.seed, img_size=cfg.img_size,
                        path=cfg.data_path, generate_per_class=cfg.generate_per_class, progress=log)


def run_config(cfg: TrainConfig, data, hparams: dict, num_params: int) -> dict:
    """config.json: everything needed to rebuild the model and preprocess an image for it."""
    return {
        "format_version": FORMAT_VERSION,
        **cfg.to_dict(),
        "epochs": resolve_epochs(cfg),
        "model_hparams": hparams,
        "model_kind": model_kind(cfg.model),
        "num_params": num_params,
        "dataset_title": dataset_info(cfg.dataset).title,
        "class_names": list(data.class_names),
        "num_classes": data.num_classes,
        "img_size": data.img_size,
        "in_chans": data.in_chans,
        "mean": list(data.mean),
        "std": list(data.std),
        "augment_policy": data.augment if cfg.augment else "none",
        "sizes": {"train": len(data.train_y), "val": len(data.val_y), "test": len(data.test_y)},
        "host": socket.gethostname(),
        "torch": torch.__version__,
    }


def run_name(cfg: TrainConfig) -> str:
    """A new run's folder name before any -2, -3 that makes it unique: DATASET-MODEL-TIME."""
    return f"{cfg.dataset}-{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"


def build_for(cfg: TrainConfig, data):
    hparams = resolve_hparams(cfg.model, data.img_size, **cfg.model_hparams)
    torch.manual_seed(cfg.seed)  # same seed, same initial weights
    model = build_model(cfg.model, num_classes=data.num_classes, img_size=data.img_size,
                        in_chans=data.in_chans, **hparams)
    return model, hparams


def _plan(cfg: TrainConfig, log: Callable[[str], None]):
    validate(cfg)
    data = load_data(cfg, log)
    model, hparams = build_for(cfg, data)
    return run_config(cfg, data, hparams, count_parameters(model)), data, model


def complete_config(cfg: TrainConfig, tags: dict | None = None,
                    log: Callable[[str], None] = lambda message: None) -> dict:
    """The whole config.json of a run of `cfg`, for a launcher to create the run folder with
    (the app, a sweep's worker); train.py then only reads it. The dataset is loaded and the
    model built once here, for what the file records of them (DATA_FACTS). `tags`, such as a
    sweep's name and trial number, are kept alongside."""
    return {**_plan(cfg, log)[0], **(tags or {})}


def prepare_new(cfg: TrainConfig, root: Path | str | None = None, name: str | None = None,
                log: Callable[[str], None] = print):
    """Validate, load data, build the model, then create the run folder (rank 0 only) and
    claim it for this process. The runs folder is checked before the data loads."""
    validate(cfg)
    dataset_info(cfg.dataset)
    epochs = resolve_epochs(cfg)
    root = Path(root or default_root())
    if dist.is_main():
        check_runs_root(root)
        if name is not None:
            check_run_name(name)
    config, data, model = _plan(cfg, log)
    run = None
    if dist.is_main():
        run = create_run(root, name or unique_run_name(root, run_name(cfg)), config)
        run.claim()
    name = dist.broadcast_object(run.name if run else None)
    if run is None:
        run = Run(root / name)
    return run, data, model, epochs


def open_existing(run_dir: Path | str, resume: bool) -> tuple[Run, dict]:
    """A run folder made earlier: --resume, or a queued run that the app or a sweep created.
    Returns the run and its config.json, read here once and never written again.

    The run is claimed first (an OS lock held until this process ends), so a second process
    on the same run is refused before it loads anything."""
    run = open_run(run_dir)
    if dist.is_main():
        run.claim()
    try:
        status = read_status(run.file("status.json"))[0] or {}
        state = status.get("state", "damaged")
        if resume and not run.file(CHECKPOINT).is_file() and run.has_weights():
            # weights are saved after the checkpoint
            raise RunError(f"{run.name} has trained weights but its checkpoint is missing: it cannot be resumed")
        if not resume and state != "queued":
            raise RunError(f"{run.name} already ran (state {state}); use --resume to continue it")
        config = run.config()
        missing = [k for k in DATA_FACTS if k not in config]
        if missing:
            raise RunError(f"{run.name}'s config.json lacks {', '.join(missing)} (it was queued by an older "
                           "version of TinyViT Lab): launch it again")
    except BaseException:
        run.release()
        raise
    return run, config


def load_existing(run: Run, config: dict, cfg: TrainConfig, resume: bool,
                  log: Callable[[str], None] = print):
    """The data and model of a run opened by open_existing, with `cfg` its settings (where it
    runs may differ from config.json's). Returns (data, model, epochs). A queued run's data
    must still be what its launcher recorded; a run stopped before its first epoch ended has
    no checkpoint, and resuming it starts again from epoch 1."""
    try:
        try:
            planned, data, model = _plan(cfg, log)
            changed = [k for k in DATA_FACTS if json.loads(json.dumps(planned[k])) != config[k]]
            if changed and not resume:
                raise DatasetError(f"the data of {run.name} changed since it was queued ({', '.join(changed)} "
                                   "differ): launch it again")
        except USER_ERRORS as err:
            if dist.is_main():
                run.write_status(state="failed", error=str(err), pid=None, finished_at=time.time())
            raise
    except BaseException:
        run.release()
        raise
    return data, model, int(config["epochs"])


def prepare_existing(run_dir: Path | str, resume: bool, log: Callable[[str], None] = print):
    """open_existing and load_existing with the run's own settings, for a process whose device
    and threads are set already; returns (run, data, model, epochs) as prepare_new does."""
    run, config = open_existing(run_dir, resume)
    data, model, epochs = load_existing(run, config, TrainConfig.from_dict(config), resume, log)
    return run, data, model, epochs


def wait_for_slot(run: Run, max_jobs: int, poll: float = 1.0) -> None:
    """Block while `max_jobs` other runs in the same folder are training, then claim a slot.

    The check and the claim happen under one file lock, so two launches at the same moment
    (two browser tabs) cannot both take the last slot."""
    import fcntl

    lock_path = run.path.parent / ".jobs.lock"
    announced = False
    while True:
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            busy = [r for r in list_runs(run.path.parent)
                    if r.name != run.name and r.status()["state"] == "running"]
            if len(busy) < max_jobs:
                run.write_status(state="running", pid=os.getpid(), message="starting")
                return
            if not announced:
                run.write_status(state="queued", pid=os.getpid(),
                                 message=f"waiting: {len(busy)} of {max_jobs} job slots busy")
                announced = True
        time.sleep(poll)


def execute(run: Run, data, model, epochs: int, cfg: TrainConfig, resume: bool,
            device: torch.device, on_batch=None, log: Callable[[str], None] = print) -> Result:
    """Train and keep status.json truthful whatever happens; then give up the run's claim."""
    try:
        return _execute(run, data, model, epochs, cfg, resume, device, on_batch, log)
    finally:
        run.release()


def _execute(run: Run, data, model, epochs: int, cfg: TrainConfig, resume: bool,
             device: torch.device, on_batch, log: Callable[[str], None]) -> Result:
    main = dist.is_main()
    trainer = Trainer(cfg, data, model, run, device, epochs, on_batch=on_batch, log=log)
    try:
        if resume and run.file(CHECKPOINT).is_file():
            trainer.resume()
        elif resume and main:
            # Stopped before its first epoch ended (or before its first checkpoint was
            # written): start again, dropping any line the checkpoint does not back.
            log("no checkpoint yet: training starts again from epoch 1")
            run.write_metrics([])
    except USER_ERRORS as err:
        # A damaged checkpoint: the run is failed, and says why where the app reads it.
        if main:
            run.write_status(state="failed", error=str(err), pid=None, finished_at=time.time())
        raise
    if main:
        trainer.stop.install()
        run.file("STOP").unlink(missing_ok=True)
        run.write_status(state="running", pid=os.getpid(), error=None, message=None,
                         epoch=trainer.start_epoch, epochs=epochs, batch=0,
                         batches=trainer.steps_per_epoch, started_at=time.time(),
                         device=str(device), threads=torch.get_num_threads(),
                         world_size=dist.world())
    else:
        trainer.stop.install()
    try:
        result = trainer.fit()
    except Diverged as err:
        result = Result("diverged", len(trainer.history), str(err))
    except KeyboardInterrupt:
        result = Result("stopped", len(trainer.history), "interrupted; --resume continues from the last epoch")
    except USER_ERRORS as err:
        result = Result("failed", len(trainer.history), str(err))
    except Exception as err:  # the run must still say how it ended
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        result = Result("failed", len(trainer.history), last)
        if main:
            run.write_status(state="failed", error=last, pid=None, finished_at=time.time())
        raise
    if main:
        run.write_status(state=result.state, pid=None, epoch=result.epoch, finished_at=time.time(),
                         error=result.message if result.state in ("failed", "diverged") else None,
                         message=result.message or None)
        run.file("STOP").unlink(missing_ok=True)
    return result


def setup_device(cfg: TrainConfig) -> torch.device:
    set_threads(cfg.threads)
    device = dist.local_device(pick_device(cfg.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {device} was asked for, but this machine has "
                          f"{torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for, but Apple's MPS is not available here")
    if device.type == "cpu" and cfg.cpu_bf16 and not cpu_bf16_supported():
        raise ConfigError("--cpu-bf16 needs a CPU with native bf16 arithmetic (AVX512-BF16 or AMX), "
                          "and this one has none: train without it")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dist.init(device)
    return device
