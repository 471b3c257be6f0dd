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
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .checkpoint import CHECKPOINT, atomic_write
from .config import ConfigError, TrainConfig, validate
from .data import DATASETS, DatasetError, dataset_info, load_dataset
from .models import ModelError, build_model
from .runs import ACTIVE, Run, RunError, create_run, default_root, delete_run, list_runs, pid_alive, \
    unique_run_name

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPO_ROOT / "train.py"
LOG_NAME = "train.log"
UPLOADS = ".uploads"
STOP_GRACE_SECONDS = 5.0
MAX_ZIP_BYTES = 500 * 2 ** 20
# Jobs run a little below the app's priority, so pages stay responsive while a job uses every core.
JOB_NICENESS = 5


def max_jobs() -> int:
    """Jobs that may train at once: $TINYVIT_MAX_JOBS, else 1 (two CPU jobs only slow each other)."""
    try:
        return max(1, int(os.environ.get("TINYVIT_MAX_JOBS", "1")))
    except ValueError:
        return 1


def active_runs(root: Path | str | None = None) -> list[Run]:
    """Runs queued or training in the runs folder, oldest first (the queue's order)."""
    runs = [r for r in list_runs(Path(root or default_root())) if r.status()["state"] in ACTIVE]
    return runs[::-1]


def check_model(cfg: TrainConfig) -> None:
    """Build the model once on the dataset's shape, so an impossible setting (heads that do
    not divide the width, a patch that does not divide the image) is refused before any
    run folder exists, instead of surfacing later as a failed run."""
    info = dataset_info(cfg.dataset)
    size = cfg.img_size or info.img_size
    build_model(cfg.model, num_classes=max(2, info.num_classes), img_size=size,
                in_chans=info.in_chans, **cfg.model_hparams)


def launch(cfg: TrainConfig, root: Path | str | None = None, jobs: int | None = None) -> Run:
    """Create a queued run for `cfg` and start train.py on it; returns at once.

    Raises ConfigError / ModelError / DatasetError / RunError with a user-facing message."""
    validate(cfg)
    if cfg.dataset == "imagefolder" and not cfg.data_path:
        raise ConfigError("the image-folder dataset needs a .zip of class folders: upload one first")
    check_model(cfg)
    root = Path(root or default_root())
    run = _create(root, cfg)
    _spawn(run, ["--max-jobs", str(jobs or max_jobs())])
    return run


def _create(root: Path, cfg: TrainConfig, attempts: int = 20) -> Run:
    """A new run folder named after dataset, model and time. Two tabs launching in the same
    second pick the same name; mkdir lets only one have it and the other takes the next."""
    base = f"{cfg.dataset}-{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    for _ in range(attempts):
        name = unique_run_name(root, base)
        try:
            return create_run(root, name, cfg.to_dict())
        except RunError:
            if not (root / name).exists():
                raise  # not a name clash
    raise RunError(f"could not find a free run name in {root}: too many launches at once")


def resume(run: Run, jobs: int | None = None) -> None:
    """Continue a stopped, failed or diverged run from its last complete epoch."""
    state = run.status()["state"]
    if state in ACTIVE:
        raise RunError(f"{run.name} is already {state}")
    if run.readonly:
        raise RunError(f"{run.name} is read-only (a demo run or a run loaded from the Hub) and cannot be trained further")
    if not run.file(CHECKPOINT).is_file():
        raise RunError(f"{run.name} has no checkpoint to resume from (it stopped before its first epoch ended)")
    # Queued before the process starts, so a second click (or tab) sees the job at once.
    run.write_status(state="queued", error=None, message="resuming", pid=None)
    _spawn(run, ["--resume", "--max-jobs", str(jobs or max_jobs())])


def start_queued(run: Run, resume: bool = False, jobs: int | None = None) -> subprocess.Popen:
    """Start train.py on a run folder made elsewhere (a sweep's trial) through the same job
    queue and slot limit as the app's launches; returns the process, to watch and wait on."""
    return _spawn(run, (["--resume"] if resume else []) + ["--max-jobs", str(jobs or max_jobs())])


def _spawn(run: Run, args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--run-dir", str(run.path.resolve()), *args, "--quiet"]
    # train.py sets its thread count from the command line, before it reads the run's config.
    threads = run.config().get("threads")
    if threads:
        cmd += ["--threads", str(int(threads))]
    with open(run.file(LOG_NAME), "ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        os.setpriority(os.PRIO_PROCESS, proc.pid, JOB_NICENESS)
    except (OSError, AttributeError):
        pass  # not permitted or not POSIX: the job runs at normal priority
    # The pid is recorded before train.py writes its own, so a process that dies while
    # importing shows as failed (dead pid) instead of queued forever.
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
    state, pid = st["state"], st.get("pid")
    if state not in ACTIVE:
        raise RunError(f"{run.name} is not training (state {state})")
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
    try:
        return json.loads(run.file("status.json").read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError):
        return None


def _terminate(pid) -> None:
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
    if not _wait_dead(pid, grace) and run.status().get("pid") == pid:
        _terminate(pid)


def delete(run: Run) -> None:
    """Delete a run folder; a queued job is cancelled first, a training one must be stopped."""
    st = run.status()
    if st["state"] == "queued" and not run.readonly:
        _terminate(st.get("pid"))
        _wait_dead(st.get("pid"), STOP_GRACE_SECONDS)
    delete_run(run)


def log_tail(run: Run, lines: int = 15) -> str:
    """The end of train.py's output, for a run that failed without a clear message."""
    try:
        text = run.file(LOG_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


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
            raise DatasetError(f"{filename}: {err}") from None
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


__all__ = ["DATASETS", "ModelError", "active_runs", "check_model", "check_zip_dataset", "delete", "launch",
           "log_tail", "max_jobs", "resume", "save_upload", "start_queued", "stop"]
