"""Training curves between epochs: `steps.jsonl` in the run folder.

Every few batches the trainer appends one line: where training is, in epochs (the end of
epoch 1 is 1.0, as in metrics.jsonl), the mean loss and accuracy of the batches since the
previous line, and their exponential moving averages, debiased as TensorBoard and W&B
smooth a curve. metrics.jsonl keeps its one line per epoch; a run from before this file
simply has no steps, and the app then plots its per-epoch points alone.
"""
from __future__ import annotations

import json
import math
from typing import Any

import torch

from ..checkpoint import atomic_write_text
from ..runs import Run

STEPS = "steps.jsonl"
POINTS_PER_EPOCH = 20   # lines a long epoch gets; a short one gets one per batch
SMOOTHING = 0.6         # weight of the past in the moving average (TensorBoard's default)
FIELDS = ("epoch", "loss", "accuracy", "loss_smooth", "accuracy_smooth")


class StepLog:
    """Accumulates batches on their device and writes one line every `every` batches.

    Values stay tensors until a line is written, so a GPU is synchronised once per line,
    not once per batch."""

    def __init__(self, run: Run, steps_per_epoch: int, points: int = POINTS_PER_EPOCH,
                 smoothing: float = SMOOTHING) -> None:
        self.run, self.steps_per_epoch, self.smoothing = run, steps_per_epoch, smoothing
        self.every = max(1, round(steps_per_epoch / points))
        self._window: list = []  # (loss sum, correct, seen) per batch since the last line
        self._ema = [0.0, 0.0]
        self._lines = 0

    def add(self, epoch: int, batch: int, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        """After batch `batch` (1-based) of epoch `epoch` (0-based)."""
        self._window.append((loss_sum.detach(), correct.detach(), seen))
        if batch % self.every == 0 or batch == self.steps_per_epoch:
            self._write(epoch + batch / self.steps_per_epoch)

    def _write(self, at: float) -> None:
        seen = sum(n for _, _, n in self._window)
        loss = float(sum(s for s, _, _ in self._window)) / seen
        accuracy = float(sum(c for _, c, _ in self._window)) / seen
        self._window.clear()
        if not math.isfinite(loss):
            return  # the trainer reports the divergence; a NaN line would only break charts
        self._lines += 1
        debias = 1 - self.smoothing ** self._lines
        for i, value in enumerate((loss, accuracy)):
            self._ema[i] = self.smoothing * self._ema[i] + (1 - self.smoothing) * value
        line = {"epoch": round(at, 4), "loss": loss, "accuracy": accuracy,
                "loss_smooth": self._ema[0] / debias, "accuracy_smooth": self._ema[1] / debias}
        with self.run.file(STEPS).open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def _valid(line: Any) -> bool:
    return isinstance(line, dict) and all(
        isinstance(line.get(k), (int, float)) and not isinstance(line.get(k), bool)
        and math.isfinite(line[k]) for k in FIELDS)


def read_steps(run: Run) -> list[dict]:
    """The run's step lines in order; [] for a run without them. A line being written, or
    one that is not what the trainer writes, is skipped."""
    try:
        text = run.file(STEPS).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return []
    except (OSError, UnicodeDecodeError):
        return []
    steps = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if _valid(line):
            steps.append(line)
    return steps


def truncate(run: Run, epochs: int) -> None:
    """Keep the lines of the first `epochs` epochs: a resume replays what came after."""
    kept = [s for s in read_steps(run) if s["epoch"] <= epochs + 1e-9]
    if run.file(STEPS).exists():
        atomic_write_text(run.file(STEPS), "".join(json.dumps(s) + "\n" for s in kept))
