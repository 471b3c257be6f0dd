"""Sweep workers as processes: started detached (like training jobs, so they outlive the app's
script runs and page switches), and found again through their pid files."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from ..app.jobs import JOB_NICENESS, REPO_ROOT
from ..runs import default_root, pid_alive
from .storage import sweep_dir

STORAGE_ENV = "TINYVIT_SWEEP_STORAGE"  # a PostgreSQL URL reaches workers here, not on their command line


def worker_command(name: str, runs_root: Path | str | None = None, max_jobs: int | None = None,
                   until: float | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "tinyvit.sweep", "run", name, "--workers", "1",
           "--runs-root", str(Path(runs_root or default_root()).resolve())]
    if max_jobs:
        cmd += ["--max-jobs", str(max_jobs)]
    if until:
        cmd += ["--until", f"{until:.0f}"]
    return cmd


def spawn_worker(name: str, runs_root: Path | str | None = None, storage: str | None = None,
                 max_jobs: int | None = None, until: float | None = None, detach: bool = True) -> subprocess.Popen:
    """Start one worker process; its output goes to the sweep folder's workers.log."""
    env = dict(os.environ)
    if storage:
        env[STORAGE_ENV] = storage
    else:
        env.pop(STORAGE_ENV, None)
    folder = sweep_dir(name, runs_root)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "workers.log", "ab") as log:
        proc = subprocess.Popen(worker_command(name, runs_root, max_jobs, until), cwd=REPO_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=detach)
    try:
        os.setpriority(os.PRIO_PROCESS, proc.pid, JOB_NICENESS)
    except (OSError, AttributeError):
        pass
    if detach:  # reaped in the background; the app never waits on it
        threading.Thread(target=proc.wait, daemon=True).start()
    return proc


def live_workers(name: str, runs_root: Path | str | None = None) -> list[int]:
    """Pids of this machine's workers on the sweep that are still alive."""
    folder = sweep_dir(name, runs_root) / "workers"
    pids = []
    for mark in folder.glob(f"{socket.gethostname()}-*") if folder.is_dir() else []:
        try:
            pid = int(mark.read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(pid):
            pids.append(pid)
        else:
            mark.unlink(missing_ok=True)  # a worker that was killed cannot remove its own file
    return pids
