"""Checkpoints as safetensors: weights, optimizer state and a JSON header, written atomically.

Nothing here unpickles: a checkpoint is tensors plus JSON metadata, and it carries a
SHA-256 of its tensors and of that metadata (epoch, history, optimizer settings), so a
truncated or tampered file is refused with a clear message.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; user-facing."""


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename over `path`: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# Files from before the digest covered the JSON header say nothing in "covers"; they are
# accepted only as plain weights (the shipped demo runs), never to resume training from.
COVERS = "tensors+json"


def _digest(tensors: dict[str, torch.Tensor], meta_json: str | None = None) -> str:
    h = hashlib.sha256()
    if meta_json is not None:
        h.update(b"json:" + meta_json.encode() + b"\n")
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_json = json.dumps(meta)
    header = {"json": meta_json, "sha256": _digest(tensors, meta_json), "covers": COVERS}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def _load(path: Path, legacy_ok: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or not safetensors): {err}") from None
    meta_json = header.get("json", "{}")
    if header.get("covers") == COVERS:
        expected = _digest(tensors, meta_json)
    elif legacy_ok:
        expected = _digest(tensors)
    else:
        raise CheckpointError(f"checkpoint {path} has no checksum over its header (an older format): "
                              f"it cannot be verified, so training cannot resume from it")
    if header.get("sha256") != expected:
        raise CheckpointError(f"checkpoint {path} failed its checksum: it was modified or damaged")
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError:
        raise CheckpointError(f"checkpoint {path} has a damaged header") from None
    return tensors, meta


def verify(path: Path) -> None:
    """Raise CheckpointError unless `path` reads and passes its checksum (nothing is loaded
    into a model: a resume offered on a damaged file would only fail in the new process)."""
    _load(path)


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # torch.compile wraps the module; keys must stay those of the plain model.
    model = getattr(model, "_orig_mod", model)
    return dict(model.state_dict())


def save_weights(path: Path, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
    _save(path, _model_state(model), meta or {})


def load_weights(path: Path, model: nn.Module) -> dict[str, Any]:
    tensors, meta = _load(path, legacy_ok=True)
    _load_into(model, tensors, path)
    return meta


def _load_into(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    model = getattr(model, "_orig_mod", model)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"weights in {path} do not match the model: {first}") from None


def save_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        meta: dict[str, Any]) -> None:
    """Model and AdamW state in one file, so the pair can never be out of step."""
    tensors = {f"model.{k}": v for k, v in _model_state(model).items()}
    opt = optimizer.state_dict()
    for idx, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
    groups = [{k: v for k, v in g.items()} for g in opt["param_groups"]]
    _save(path, tensors, {**meta, "param_groups": groups})


def load_training_state(path: Path, model: nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    tensors, meta = _load(path)
    model_t = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_into(model, model_t, path)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    # JSON has no tuples: betas come back as the tuple AdamW was made with.
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta.pop("param_groups", [])]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"optimizer state in {path} does not match the model: {err}") from None
    return meta
