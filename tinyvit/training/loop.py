"""The training loop: one epoch after another over an in-memory uint8 dataset.

Reproducibility: every epoch reseeds torch from (seed, epoch), and the model and
optimizer state are checkpointed at the end of each epoch. So resuming from a
checkpoint replays exactly what an uninterrupted run would have done next.
"""
from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributed as dist
from ..checkpoint import CHECKPOINT, WEIGHTS, load_training_state, save_training_state, save_weights
from .config import TrainConfig, lr_at
from ..data import Splits, augment_batch, normalize
from ..data.augment import random_erase
from ..metrics import classification_metrics, full_report
from ..models import model_kind
from ..runs import Run
from ..samples import save_samples
from .steps import StepLog, truncate
from ..timeline import FILE as TIMELINE, Recorder
from .step import TrainStep, autocast_forward, has_conv, make_optimizer

EVAL_BATCH = 256


class Diverged(RuntimeError):
    pass


@dataclass
class Result:
    state: str
    epoch: int
    message: str = ""
    test: dict | None = None


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2 ** 63 - 1)


class StopFlag:
    """Set by SIGTERM/SIGINT or by a STOP file in the run folder; checked after each batch."""

    def __init__(self, run: Run | None) -> None:
        self.run = run
        self.signalled = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame) -> None:
        if self.signalled:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.signalled = True

    def __bool__(self) -> bool:
        return self.signalled or (self.run is not None and self.run.stop_requested())


class Trainer:
    def __init__(self, cfg: TrainConfig, data: Splits, model: nn.Module, run: Run | None,
                 device: torch.device, epochs: int,
                 on_batch: Callable[[int, int, int], None] | None = None,
                 log: Callable[[str], None] = print, timeline: bool = True) -> None:
        self.cfg, self.data, self.run, self.device, self.epochs = cfg, data, run, device, epochs
        self.log = log
        self.on_batch = on_batch
        self.timeline = timeline  # per-epoch probe maps and confusion matrix (tinyvit.timeline)
        self.val_preds: torch.Tensor | None = None
        self.model = model.to(device)
        self.amp = (cfg.amp and device.type == "cuda") or (cfg.cpu_bf16 and device.type == "cpu")
        # oneDNN's bf16 convolutions run fastest on channels-last tensors (see cpu_bf16_supported).
        channels_last = self.amp and device.type == "cpu" and has_conv(self.model)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model.parameters(), cfg.lr, cfg.weight_decay, device)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.history: list[dict] = []
        self.start_epoch = 0
        self.stop = StopFlag(run)
        self.train_model = dist.wrap(self.model, device)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        # On a multi-core CPU the step splits each batch across threads (see train_step).
        self.step = TrainStep(self.train_model, self.optimizer, self.criterion, device, self.amp,
                              channels_last=channels_last)
        # The whole dataset moves to the device once; batches are sliced from it there.
        self.train_x = data.train_x.to(device)
        self.train_y = data.train_y.to(device)
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
        self.policy = data.augment if cfg.augment else "none"
        self.erase_p = cfg.random_erasing if cfg.augment else 0.0
        n = len(self.train_y)
        self.shard = dist.shard_size(n)
        self.batch = dist.process_batch(cfg.batch_size)
        self.steps_per_epoch = max(1, math.ceil(self.shard / self.batch))
        # Curves between epochs (steps.jsonl), from rank 0's batches under DDP.
        self.step_log = StepLog(run, self.steps_per_epoch) if run is not None and dist.is_main() else None

    # -- state ---------------------------------------------------------------
    def resume(self) -> None:
        meta = load_training_state(self.run.file(CHECKPOINT), self.model, self.optimizer)
        self.start_epoch = int(meta["epoch"])
        self.history = list(meta.get("history", []))
        # Lines written after the checkpoint (a crash between the two) are dropped, so the
        # history matches the weights exactly.
        if dist.is_main():
            self.run.write_metrics(self.history)
            truncate(self.run, self.start_epoch)

    def save(self, epoch: int) -> None:
        if not dist.is_main():
            return
        meta = {"epoch": epoch, "history": self.history}
        save_training_state(self.run.file(CHECKPOINT), self.model, self.optimizer, meta)
        save_weights(self.run.file(WEIGHTS), self.model, {"epoch": epoch})

    # -- one epoch -------------------------------------------------------------
    def _batches(self, epoch: int):
        g = torch.Generator(device="cpu")
        g.manual_seed(epoch_seed(self.cfg.seed, epoch))
        order = torch.randperm(len(self.train_y), generator=g)
        order = dist.my_shard(order)
        bs = self.batch
        for i in range(0, len(order), bs):
            yield order[i:i + bs].to(self.device)

    def train_epoch(self, epoch: int) -> dict | None:
        """Train one epoch; None if a stop was requested before it finished."""
        # Under DDP every process draws its own dropout masks and augmentations (rank 0 the
        # single-process ones); the batch order above stays common to all.
        torch.manual_seed(epoch_seed(self.cfg.seed, epoch) + dist.rank())
        self.train_model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for b, idx in enumerate(self._batches(epoch)):
            step = epoch * self.steps_per_epoch + b
            lr = lr_at(self.cfg, step, self.steps_per_epoch, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            x = normalize(random_erase(augment_batch(self.train_x[idx], self.policy), self.erase_p),
                          self.mean, self.std)
            y = self.train_y[idx]
            loss, logits = self.step(x, y)
            batch_loss, batch_correct = loss.detach() * len(y), (logits.argmax(1) == y).sum()
            loss_sum += batch_loss
            correct += batch_correct
            seen += len(y)
            if self.step_log is not None:
                self.step_log.add(epoch, b + 1, batch_loss, batch_correct, len(y))
            # Collective checks: under DDP one process leaving alone would hang the others.
            if b % 10 == 0 and dist.any_true(not math.isfinite(loss.item())):
                raise Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, batch {b + 1}: "
                               f"try a lower --lr (now {self.cfg.lr:g})")
            if self.on_batch:
                self.on_batch(epoch, b + 1, self.steps_per_epoch)
            if dist.any_true(bool(self.stop)):
                return None
        totals = dist.sum_tensor(torch.stack([loss_sum, correct.float(),
                                              torch.tensor(float(seen), device=self.device)]))
        train_loss = float(totals[0] / totals[2])
        if not math.isfinite(train_loss):
            raise Diverged(f"loss became {train_loss} in epoch {epoch + 1}: try a lower --lr "
                           f"(now {self.cfg.lr:g})")
        return {"train_loss": train_loss, "train_accuracy": float(totals[1] / totals[2]), "lr": lr,
                "images": int(totals[2])}

    @torch.inference_mode()
    def predict_split(self, x_uint8: torch.Tensor):
        """(labels predicted, confidence, mean loss helper logits) over a uint8 split."""
        self.model.eval()
        preds, confs, logits_all = [], [], []
        for i in range(0, len(x_uint8), EVAL_BATCH):
            x = normalize(x_uint8[i:i + EVAL_BATCH].to(self.device), self.mean, self.std)
            logits = autocast_forward(self.model, x, self.device, self.amp).float()
            prob = logits.softmax(1)
            c, p = prob.max(1)
            preds.append(p.cpu())
            confs.append(c.cpu())
            logits_all.append(logits.cpu())
        return torch.cat(preds), torch.cat(confs), torch.cat(logits_all)

    def evaluate(self, x, y) -> dict:
        preds, _, logits = self.predict_split(x)
        self.val_preds = preds
        loss = float(F.cross_entropy(logits, y.cpu(), label_smoothing=self.cfg.label_smoothing))
        return {"loss": loss, **classification_metrics(y.numpy(), preds.numpy(), self.data.num_classes)}

    # -- the run ---------------------------------------------------------------
    def fit(self) -> Result:
        if self.start_epoch >= self.epochs:
            return Result("finished", self.start_epoch, "already trained to the last epoch")
        self.log(f"training {self.cfg.model} on {self.data.name}: {len(self.data.train_y)} train / "
                 f"{len(self.data.val_y)} val / {len(self.data.test_y)} test images, "
                 f"epochs {self.start_epoch + 1}..{self.epochs}, device {self.device}")
        recorder = self._timeline_recorder()
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.perf_counter()
            train = self.train_epoch(epoch)
            if train is None:
                return Result("stopped", epoch,
                              f"stopped during epoch {epoch + 1}; --resume continues from epoch {epoch + 1}")
            seconds = time.perf_counter() - t0
            val = self.evaluate(self.data.val_x, self.data.val_y)
            row = {"epoch": epoch + 1, "train_loss": train["train_loss"],
                   "train_accuracy": train["train_accuracy"], "val_loss": val["loss"],
                   **{f"val_{k}": v for k, v in val.items() if k != "loss"},
                   "lr": train["lr"], "epoch_seconds": seconds,
                   "images_per_second": train["images"] / seconds}
            self.history.append(row)
            if dist.is_main():
                self.run.append_metrics(row)
            if recorder:
                recorder.record(epoch + 1, self.model, self.val_preds, self.data.val_y)
            self.save(epoch + 1)
            self.log(f"epoch {epoch + 1}/{self.epochs}  train loss {row['train_loss']:.4f}  "
                     f"acc {100 * row['train_accuracy']:.2f}%  val loss {row['val_loss']:.4f}  "
                     f"acc {100 * row['val_accuracy']:.2f}%  {row['images_per_second']:.0f} img/s")
            if dist.any_true(bool(self.stop)) and epoch + 1 < self.epochs:
                return Result("stopped", epoch + 1,
                              f"stopped after epoch {epoch + 1}; --resume continues from there")
        return Result("finished", self.epochs, test=self.test())

    def _timeline_recorder(self) -> Recorder | None:
        if not (self.timeline and self.run is not None and dist.is_main()):
            return None
        return Recorder(self.run.file(TIMELINE), self.run.config(), model_kind(self.cfg.model), self.data.val_x,
                        self.data.val_y, self.mean, self.std, self.data.num_classes, self.start_epoch)

    def test(self) -> dict:
        preds, confs, _ = self.predict_split(self.data.test_x)
        y = self.data.test_y.numpy()
        report = full_report(y, preds.numpy(), self.data.class_names)
        if dist.is_main():
            self.run.write_predictions(y, preds.numpy(), confs.numpy())
            save_samples(self.run.file("samples.safetensors"), self.data, preds, confs)
            self.run.write_test_metrics(report)
        return report


def set_threads(threads: int | None) -> int:
    """Use every core this process may run on unless told otherwise; under torchrun, this
    process's share of them (N processes on one machine each taking every core would fight)."""
    if not threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()
