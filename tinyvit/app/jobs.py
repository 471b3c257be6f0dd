"""Start, stop, resume and delete training jobs from the app.

Training never runs inside the app: each job is its own `train.py` process, detached
from the Streamlit server (its own session), so it survives page switches, reruns and
browser refreshes. Everything the app shows is re-read from the run folder on disk,
which is why a second browser tab sees the same jobs. The queue itself (at most N
jobs at once) is enforced by train.py's file lock, not here, so two tabs launching at
the same moment cannot both take the last slot.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from . import owner as owners
from . import space
from ..checkpoint import CHECKPOINT, CheckpointError, atomic_write, verify
from ..training.config import ConfigError, TrainConfig, validate
from ..training.runner import complete_config, run_name
from ..data import DATASETS, DatasetError, dataset_info, load_dataset
from ..models import ModelError
from ..runfiles import read_status
from ..runs import (ACTIVE, Run, RunError, check_deletable, check_runs_root, create_run, default_root, delete_run,
                    list_runs, pid_alive, unique_run_name)

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO_ROOT / "train.py"
LOG_NAME = "train.log"
UPLOADS = ".uploads"
STOP_GRACE_SECONDS = 5.0
MAX_ZIP_BYTES = 500 * 2 ** 20
# Jobs run a little below the app's priority, so pages stay responsive while a job uses every core.
JOB_NICENESS = 5


def max_jobs() -> int:
    """Jobs that may train at once: $TINYVIT_MAX_JOBS, else 1 (two CPU jobs only slow each
    other; on a Space, one is its cap too)."""
    return space.space_limits()["max_jobs"] or 1


def apply_caps(cfg: TrainConfig) -> TrainConfig:
    """The Space's caps (tinyvit.app.space) applied on the server, whatever the form sent: a
    setting over a cap is refused; the dataset's default epochs and "all cores" become
    the cap. Off a Space (and without TINYVIT_MAX_EPOCHS/TINYVIT_THREADS) nothing changes."""
    limits = space.space_limits()
    where = "this Space" if space.on_space() else "this server"
    if limits["max_epochs"]:
        epochs = cfg.epochs or dataset_info(cfg.dataset).default_epochs
        if epochs > limits["max_epochs"]:
            if cfg.epochs:
                raise ConfigError(f"{where} trains at most {limits['max_epochs']} epochs per run "
                                  f"(asked for {epochs})")
            epochs = limits["max_epochs"]
        cfg = replace(cfg, epochs=int(epochs))
    if limits["threads"]:
        if cfg.threads and cfg.threads > limits["threads"]:
            raise ConfigError(f"{where} trains on at most {limits['threads']} CPU thread(s) "
                              f"(asked for {cfg.threads})")
        cfg = replace(cfg, threads=int(cfg.threads or limits["threads"]))
    return cfg


def active_runs(root: Path | str | None = None) -> list[Run]:
    """Runs queued or training in the runs folder, oldest first (the queue's order)."""
    runs = [r for r in list_runs(Path(root or default_root())) if r.status()["state"] in ACTIVE]
    return runs[::-1]


def launch(cfg: TrainConfig, root: Path | str | None = None, jobs: int | None = None,
           owner: str | None = None) -> Run:
    """Create a queued run for `cfg` with its whole config.json and start train.py on it. The
    dataset is loaded and the model built here once, so an impossible setting (heads that do
    not divide the width, a patch that does not divide the image, a missing dataset) is
    refused before any run folder exists. `owner`: the launching browser's token on a Space
    (see tinyvit.app.owner); its hash is kept in the run.

    Raises ConfigError / ModelError / DatasetError / RunError with a user-facing message."""
    validate(cfg)
    cfg = apply_caps(cfg)
    if cfg.dataset == "imagefolder" and not cfg.data_path:
        raise ConfigError("the image-folder dataset needs a .zip of class folders: upload one first")
    root = check_runs_root(root or default_root())
    run = _create(root, cfg, complete_config(cfg))
    if owner is not None:
        owners.record_owner(run, owner)
    _spawn(run, ["--max-jobs", str(_slots(jobs))])
    return run


def _slots(jobs: int | None) -> int:
    """Job slots asked for, never more than the Space's cap."""
    cap = space.space_limits()["max_jobs"] if space.on_space() else None
    return min(jobs or max_jobs(), cap or jobs or max_jobs())


def _create(root: Path, cfg: TrainConfig, config: dict, attempts: int = 20) -> Run:
    """A new run folder named after dataset, model and time. Two tabs launching in the same
    second pick the same name; mkdir lets only one have it and the other takes the next."""
    base = run_name(cfg)
    for _ in range(attempts):
        name = unique_run_name(root, base)
        try:
            return create_run(root, name, config)
        except RunError:
            if not (root / name).exists():
                raise  # not a name clash
    raise RunError(f"could not find a free run name in {root}: too many launches at once")


RESUMABLE = ("stopped", "failed", "diverged", "pruned")


def can_resume(run: Run) -> bool:
    """Whether Resume applies: a run of yours that ended early. One stopped before its first
    epoch ended (no checkpoint yet) restarts from epoch 1."""
    intact = run.file(CHECKPOINT).is_file() or not run.has_weights()  # weights come after it
    return run.status()["state"] in RESUMABLE and not run.readonly and intact


def resume(run: Run, jobs: int | None = None) -> None:
    """Continue a stopped, failed or diverged run from its last complete epoch (or epoch 1)."""
    state = run.status()["state"]
    if state in ACTIVE:
        raise RunError(f"{run.name} is already {state}")
    if run.readonly:
        raise RunError(f"{run.name} is read-only (a demo run or a run loaded from the Hub) and cannot be trained further")
    if state not in RESUMABLE:
        raise RunError(f"{run.name} is {state}: there is nothing to resume")
    if run.owned():
        raise RunError(f"{run.name} is already being trained by another process")
    if run.file(CHECKPOINT).is_file():
        try:  # refused here, not in a process that would fail after loading the data
            verify(run.file(CHECKPOINT))
        except CheckpointError as err:
            raise RunError(f"{run.name} cannot be resumed: {err}") from None
    # Queued before the process starts, so a second click (or tab) sees the job at once.
    run.write_status(state="queued", error=None, message="resuming", pid=None)
    _spawn(run, ["--resume", "--max-jobs", str(_slots(jobs))])


def start_queued(run: Run, resume: bool = False, jobs: int | None = None) -> subprocess.Popen:
    """Start train.py on a run folder made elsewhere (a sweep's trial) through the same job
    queue and slot limit as the app's launches; returns the process, to watch and wait on."""
    return _spawn(run, (["--resume"] if resume else []) + ["--max-jobs", str(jobs or max_jobs())])


def detached(cmd: list[str], log_path: Path, mode: str = "ab") -> subprocess.Popen:
    """Start `cmd` in its own session (it outlives the app's reruns and the server's requests),
    its output into `log_path`, a little below the app's priority."""
    with open(log_path, mode) as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        os.setpriority(os.PRIO_PROCESS, proc.pid, JOB_NICENESS)
    except (OSError, AttributeError):
        pass  # not permitted or not POSIX: the job runs at normal priority
    return proc


def _spawn(run: Run, args: list[str]) -> subprocess.Popen:
    # train.py takes every setting (threads included) from the run's config.json.
    proc = detached([sys.executable, str(TRAIN_SCRIPT), "--run-dir", str(run.path.resolve()), *args, "--quiet"],
                    run.file(LOG_NAME))
    # The pid (with its start time) is recorded before train.py writes its own, so a process
    # that dies while importing shows as failed instead of queued forever.
    run.write_status(pid=proc.pid)
    # Reap the child when it ends: a zombie would otherwise linger in the app's process table.
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc


def stop(run: Run, grace: float = STOP_GRACE_SECONDS) -> str:
    """Ask a job to stop; returns what was done, for the UI.

    A training job gets a STOP file (it ends after the current batch, keeping the last
    complete epoch's checkpoint) and SIGTERM if it has not ended after `grace` seconds.
    A queued job has trained nothing yet, so its process is ended straight away."""
    st = run.status()
    state = st["state"]
    if state not in ACTIVE:
        raise RunError(f"{run.name} is not training (state {state})")
    pid = run.owner_pid()
    if state == "queued":
        _terminate(pid)
        _wait_dead(pid, grace)
        # Only if it really never started: one that just took a slot stops itself.
        if run.path.is_dir() and _raw_state(run) == "queued":
            run.write_status(state="stopped", pid=None, message="cancelled before training started",
                             finished_at=time.time())
        return "cancelled"
    run.request_stop()
    threading.Thread(target=_escalate, args=(run, pid, grace), daemon=True).start()
    return "stopping"


def _raw_state(run: Run) -> str | None:
    """status.json's own state, without Run.status()'s dead-pid reading."""
    st = read_status(run.file("status.json"))[0]
    return st["state"] if st else None


def _terminate(pid) -> None:
    """SIGTERM `pid`, which the caller took from Run.owner_pid (checked to be the run's own)."""
    if pid and pid_alive(pid):
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pass


def _wait_dead(pid, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while pid and pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    return not pid_alive(pid)


def _escalate(run: Run, pid, grace: float) -> None:
    """SIGTERM a job that ignored its STOP file; the trainer treats it as a stop too."""
    if not _wait_dead(pid, grace) and run.owner_pid() == pid:
        _terminate(pid)


def delete(run: Run, root: Path | str | None = None) -> None:
    """Delete a run folder inside the runs folder `root`; a queued job is cancelled first, a
    training one must be stopped."""
    check_deletable(run, root)
    if run.status()["state"] == "queued" and not run.readonly:
        pid = run.owner_pid()
        _terminate(pid)
        _wait_dead(pid, STOP_GRACE_SECONDS)
    delete_run(run, root)


def log_tail(run: Run, lines: int = 15) -> str:
    """The end of train.py's output, for a run that failed without a clear message."""
    try:
        text = run.file(LOG_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def log_error(run: Run) -> str | None:
    """train.py's last `error: …` line in the run's log, without the prefix."""
    errors = [line[len("error:"):].strip() for line in log_tail(run, 50).splitlines() if line.startswith("error:")]
    return errors[-1] if errors else None


def check_zip_dataset(data: bytes, filename: str, img_size: int | None = None) -> dict:
    """Check an uploaded dataset .zip the way train.py will load it, before anything is kept.

    Returns a summary (class names and split sizes). Raises ConfigError for an empty,
    oversized or non-.zip upload and DatasetError for a malformed zip, one with fewer than
    two classes, or members whose paths would escape the folder."""
    if not data:
        raise ConfigError(f"{filename} is empty")
    if len(data) > MAX_ZIP_BYTES:
        raise ConfigError(f"{filename} is larger than {MAX_ZIP_BYTES // 2 ** 20} MB")
    if not filename.lower().endswith(".zip"):
        raise ConfigError(f"{filename} is not a .zip file")
    with tempfile.TemporaryDirectory(prefix="tinyvit-upload-") as tmp:
        path = Path(tmp) / _safe_zip_name(filename, data)
        path.write_bytes(data)
        try:
            splits = load_dataset("imagefolder", path=path, img_size=img_size)
        except DatasetError as err:
            # The message names the stored copy (stem plus hash); the user knows their own name.
            message = str(err).replace(str(path), filename).replace(path.name, filename)
            raise DatasetError(message if filename in message else f"{filename}: {message}") from None
    return {"class_names": list(splits.class_names), "img_size": splits.img_size,
            "in_chans": splits.in_chans, "train": len(splits.train_y), "val": len(splits.val_y),
            "test": len(splits.test_y)}


def _safe_zip_name(filename: str, data: bytes) -> str:
    """The upload's stem (made safe) plus a content hash: two different zips with the same
    name never overwrite each other, and a re-upload is not stored twice."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(filename).stem).strip("-.")[:60] or "dataset"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}.zip"


def save_upload(data: bytes, filename: str, root: Path | str | None = None) -> Path:
    """Keep an uploaded dataset zip under RUNS/.uploads/ (atomically) and return its path.

    Call check_zip_dataset first: only a zip that loads is kept."""
    if not data:
        raise ConfigError(f"{filename} is empty")
    folder = Path(root or default_root()) / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _safe_zip_name(filename, data)
    if not path.is_file():
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path.resolve()


__all__ = ["DATASETS", "ModelError", "active_runs", "apply_caps", "can_resume", "check_zip_dataset",
           "delete", "launch", "log_error", "log_tail", "max_jobs", "resume", "save_upload", "start_queued", "stop"]
