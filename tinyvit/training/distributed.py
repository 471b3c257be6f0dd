"""DistributedDataParallel glue. Without torchrun every function is a no-op for one process.

Under `torchrun --nproc_per_node=N train.py ...` each process trains on its own shard of
every epoch with its share of each batch (gloo on CPU, nccl on GPU); only rank 0 writes the run.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as td
import torch.nn as nn


def launched() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return td.is_available() and td.is_initialized()


def init(device: torch.device) -> None:
    if launched() and not active():
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")


def rank() -> int:
    """This process's rank; under torchrun known from its environment before `init`, so a
    run is claimed by rank 0 alone while the config is still being read."""
    if active():
        return td.get_rank()
    return int(os.environ["RANK"]) if launched() else 0


def world() -> int:
    return td.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on GPUs, each process takes the GPU of its local rank."""
    if launched() and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard_size(n: int) -> int:
    # Equal shards: every process must run the same number of steps or the gradient
    # all-reduce would wait forever; the few left-over images change shard every epoch.
    return n // world()


def process_batch(batch_size: int) -> int:
    """Each process's share of the batch: `--batch-size` stays the batch of one optimizer step
    (DDP averages the processes' gradients), so a run's config.json says what was trained and
    the learning-rate schedule sees the same number of steps as on one process."""
    return max(1, batch_size // world())


def my_shard(order: torch.Tensor) -> torch.Tensor:
    size = shard_size(len(order))
    return order[rank() * size:(rank() + 1) * size]


def sum_tensor(t: torch.Tensor) -> torch.Tensor:
    if active():
        t = t.clone()
        td.all_reduce(t)
    return t


def any_true(flag: bool) -> bool:
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    td.all_reduce(t)
    return bool(t.item() > 0)


def broadcast_object(obj):
    if not active():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    if active():
        td.destroy_process_group()
