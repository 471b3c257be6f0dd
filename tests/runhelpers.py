"""Small run folders made in-process for the tests of resuming and run ownership."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tinyvit.training.config import TrainConfig, defaults_for
from tinyvit.training.runner import execute, prepare_new

ROOT = Path(__file__).resolve().parent.parent


def quiet(msg):
    pass


def stopped_run(root: Path, name="r", epochs=3, done=1, dataset="digits", **kw):
    """A small cnn run (10 images per class, 1 thread), stopped during epoch `done` + 1,
    so `done` epochs are complete."""
    cfg = TrainConfig(**{**defaults_for(dataset), "dataset": dataset, "model": "cnn", "epochs": epochs,
                         "subset": 10, "threads": 1, "model_hparams": {"widths": [8, 16]}, **kw})
    run, data, model, epochs = prepare_new(cfg, root, name, log=quiet)

    def stop_midway(epoch, batch, batches):
        if epoch == done and batch == 1:
            run.request_stop()
    result = execute(run, data, model, epochs, cfg, False, torch.device("cpu"), on_batch=stop_midway,
                     log=quiet)
    assert result.state == "stopped" and len(run.metrics()) == done
    return run


def raw_status(run) -> dict:
    """status.json as written, without Run.status()'s reading of dead owners."""
    return json.loads((run.path / "status.json").read_text())


def train_cmd(*args):
    return [sys.executable, str(ROOT / "train.py"), *args, "--quiet"]
