"""One optimisation step: forward, loss, backward, optimizer step; on a multi-core CPU the
batch is split across threads.

Why split the batch instead of letting PyTorch spread each operation over the cores. A
TinyViT step is ~1,000 small operations (65-token matrices, 2M-element element-wise ops);
with 2 intra-op threads each pays an OpenMP fork/join, and when another process shares the
cores the team waits for its slowest thread. Measured on the 2-core development Xeon
(slides' CIFAR-10 table, batch 64, quiet machine): one thread 172 images/s, two intra-op
threads 283 (1.65x), two threads each running half the batch on one core 323 (1.88x). On the
same machine while two other trainings ran, two intra-op threads fell to 11-17 images/s
and the split step kept 55-71: its threads do not synchronise inside the step at all.
`python -m tinyvit.tools.bench` shows both ways side by side.

What is trained does not change: every chunk's loss is weighted by its share of the batch,
so the summed gradients are those of the batch mean; the gradients are summed in chunk
order, so the step is deterministic; each chunk's dropout masks come from its own generator,
seeded from the global one on the calling thread, so `torch.manual_seed` still makes an
epoch reproducible (the engine's resume relies on that).

Not split: models with batch statistics (BatchNorm would see smaller batches), DDP-wrapped
or compiled models, GPU and other devices, and batches too small to share.
"""
from __future__ import annotations

import ctypes
import sys
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.dropout import use_generator

# Below ~16 images a chunk the per-operation overhead dominates; one chunk per core above.
MIN_CHUNK = 16


def make_optimizer(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, as the slides. On CPU and CUDA the fused kernel: the same update in one pass over
    the parameters, 1.0 ms instead of 3.6 ms per step for TinyViT on one core here, and that
    step runs while the other split-batch thread waits."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks for reuse instead of unmapping or trimming them.

    A TinyViT step allocates dozens of 2-9 MB activations; by default glibc hands such blocks
    back to the kernel, and the next step page-faults them in again, zero-filled: 2,600-5,700
    page faults and 4-9 ms of system time per step on one core here, and slower element-wise
    ops on the fresh pages. With these two settings: ~650 faults, ~1 ms. Linux/glibc only;
    elsewhere nothing changes. The process keeps its peak memory, which a trainer reaches
    every step anyway."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return _MALLOC_TUNED
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        # Both together: setting either one alone turns off glibc's adaptive thresholds.
        _MALLOC_TUNED = bool(libc.mallopt(m_mmap_threshold, 64 << 20)
                             and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        _MALLOC_TUNED = False
    return _MALLOC_TUNED


def splittable(model: nn.Module, device: torch.device) -> bool:
    """Whether chunks of a batch may run concurrently through `model` with the same result."""
    if device.type != "cpu" or isinstance(model, nn.parallel.DistributedDataParallel):
        return False
    if hasattr(model, "_orig_mod"):  # torch.compile
        return False
    return not any(isinstance(m, _BatchNorm) for m in model.modules())


def plan(batch: int, threads: int) -> tuple[int, int]:
    """(chunks, intra-op threads per chunk) for a batch on `threads` cores."""
    chunks = max(1, min(threads, batch // MIN_CHUNK))
    return chunks, max(1, threads // chunks)


def cpu_bf16_supported() -> bool:
    """Whether this CPU does bf16 arithmetic natively (oneDNN's test: AVX512-BF16 or AMX).

    Why offer bf16 on a CPU at all: on the 2-core AMD EPYC development machine (avx512_bf16),
    a CNN training step under bf16 autocast with channels-last tensors ran at about twice the
    images/s of float32, while the ViTs gained nothing (0.9x to 1.1x: their matrices are
    small, and the float32 path has its own CPU speed-ups); `python -m tinyvit.tools.bench
    --only bf16` measures it side by side. Without native support the bf16 kernels are
    emulated and slower than float32, hence the check."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def autocast_forward(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool) -> torch.Tensor:
    """The model's forward, under bf16 autocast when `amp` (a GPU, or a CPU with --cpu-bf16)."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        return model(x)


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside torch.compile's and DistributedDataParallel's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


class TrainStep:
    """`step(x, y) -> (loss, logits)`, both detached; updates the model's parameters."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                 device: torch.device, amp: bool = False, threads: int | None = None,
                 split: bool | None = None, channels_last: bool = False) -> None:
        self.model, self.optimizer, self.criterion, self.device = model, optimizer, criterion, device
        self.amp, self.channels_last = amp, channels_last
        self.threads = int(threads or torch.get_num_threads())
        self.split = splittable(model, device) if split is None else split
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._pool: ThreadPoolExecutor | None = None
        if device.type == "cpu":
            keep_freed_memory()
        if hasattr(unwrapped(model), "fast_training"):
            unwrapped(model).fast_training()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return autocast_forward(self.model, x, self.device, self.amp)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chunks, intra = plan(len(y), self.threads) if self.split else (1, self.threads)
        if chunks == 1:
            return self._whole(x, y)
        return self._split(x, y, chunks, intra)

    def _whole(self, x, y):
        logits = self._forward(x)
        loss = self.criterion(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()

    def _chunk(self, x, y, weight: float, seed: int, intra: int):
        """One thread's part of the batch: its loss, logits and weighted gradients."""
        if torch.get_num_threads() != intra:  # a worker made for another plan
            torch.set_num_threads(intra)
        with use_generator(torch.Generator().manual_seed(seed)):
            logits = self._forward(x)
            loss = self.criterion(logits.float(), y)
            grads = torch.autograd.grad(loss * weight, self.params, allow_unused=True)
        return loss.detach() * weight, logits.detach(), grads

    def _split(self, x, y, chunks: int, intra: int):
        n = len(y)
        parts = list(zip(x.tensor_split(chunks), y.tensor_split(chunks)))
        seeds = torch.randint(0, 2 ** 62, (chunks,), dtype=torch.int64).tolist()
        restore = torch.get_num_threads()
        # Workers pick up the intra-op thread count when they first run an operation, and
        # MKL's count is process-wide: set it for the whole step, give it back afterwards.
        torch.set_num_threads(intra)
        try:
            pool = self._workers(chunks - 1)
            futures = [pool.submit(self._chunk, xc, yc, len(yc) / n, s, intra)
                       for (xc, yc), s in zip(parts[1:], seeds[1:])]
            results = [self._chunk(*parts[0], len(parts[0][1]) / n, seeds[0], intra)]
            results += [f.result() for f in futures]
            self.optimizer.zero_grad(set_to_none=True)
            for i, p in enumerate(self.params):
                grads = [r[2][i] for r in results if r[2][i] is not None]
                if grads:
                    total = grads[0]
                    for g in grads[1:]:  # in chunk order: the same sum every time
                        total = total + g
                    p.grad = total
            self.optimizer.step()
        finally:
            torch.set_num_threads(restore)
        return sum(r[0] for r in results), torch.cat([r[1] for r in results])

    def _workers(self, count: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pool._max_workers < count:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(count, thread_name_prefix="tinyvit-step")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
