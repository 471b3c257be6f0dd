"""Running on a Hugging Face Space: smaller limits and a word about the disk.

A Space sets SPACE_ID (and SPACE_AUTHOR_NAME, SPACE_HOST). The free CPU hardware has
2 vCPUs, no GPU and a disk that is wiped whenever the Space restarts or goes to sleep, and
one visitor's long training run slows the app for everybody. So on a Space, training is
capped (epochs, CPU threads, one job at a time) and the app says that finished runs
should be pushed to the Hub to be kept. The owner of a Space with better hardware raises
the caps with the Space variables TINYVIT_MAX_EPOCHS, TINYVIT_THREADS and TINYVIT_MAX_JOBS.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..runs import default_root

# Free CPU Space: 2 vCPUs. 30 epochs of digits or shapes take a few minutes there; the
# slides' 100 CIFAR epochs would take hours, so long runs belong on a GPU, then the Hub.
SPACE_DEFAULTS = {"max_epochs": 30, "threads": 2, "max_jobs": 1}
ENV_OVERRIDES = {"max_epochs": "TINYVIT_MAX_EPOCHS", "threads": "TINYVIT_THREADS", "max_jobs": "TINYVIT_MAX_JOBS"}
# Spaces with persistent storage mount it here.
PERSISTENT_MOUNT = Path("/data")


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID", "").strip())


def _positive_env(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def space_limits() -> dict[str, int | None]:
    """{"max_epochs", "threads", "max_jobs"}: caps for training on a Space; None = no cap
    (always None off a Space unless the TINYVIT_* variable sets one)."""
    limits: dict[str, int | None] = dict(SPACE_DEFAULTS) if on_space() else dict.fromkeys(SPACE_DEFAULTS)
    for key, env in ENV_OVERRIDES.items():
        value = _positive_env(env)
        if value is not None:
            limits[key] = value
    return limits


def cap(key: str, value: int | None) -> int | None:
    """`value` limited by space_limits()[key]; an unset value takes the cap itself."""
    limit = space_limits()[key]
    if limit is None:
        return value
    return limit if value is None else min(int(value), limit)


def persistent_runs() -> bool:
    """True when the runs folder is on a Space's persistent storage (/data)."""
    try:
        return PERSISTENT_MOUNT.is_dir() and default_root().resolve().is_relative_to(PERSISTENT_MOUNT)
    except OSError:
        return False


def space_author() -> str | None:
    return os.environ.get("SPACE_AUTHOR_NAME", "").strip() or None


def suggested_repo_id(run_name: str) -> str:
    """A Hub repo id to offer for pushing a run: the Space owner's namespace, the run's name."""
    author = space_author()
    return f"{author}/{run_name}" if author else ""


def space_notice(token_set: bool | None = None) -> str | None:
    """What the app should say on a Space (markdown), or None elsewhere."""
    if not on_space():
        return None
    limits = space_limits()
    caps = (f"Training here is limited to {limits['max_epochs']} epochs, {limits['threads']} CPU "
            f"thread(s) and {limits['max_jobs']} job(s) at a time.")
    if persistent_runs():
        disk = "Runs are kept on this Space's persistent storage."
    else:
        disk = ("**This Space's disk is not persistent**: runs trained here are lost when the Space "
                "restarts or goes to sleep. Push a finished run to the Hugging Face Hub to keep it, "
                "and load it back by its repo id.")
    if token_set is None:
        from ..hub import hub_token
        token_set = hub_token() is not None
    if not token_set:
        disk += " To push, add an `HF_TOKEN` secret (a token with write access) in the Space's settings."
    return f"{disk} {caps}"
