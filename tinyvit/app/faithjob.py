"""The faithfulness measurement as a job started from the app, in its own process.

The same pattern as training (tinyvit.app.jobs): `python -m tinyvit.faithfulness` is detached
from the Streamlit server (its own session, a little below the app's priority), writes its
progress to a file in the run folder, and the page re-reads that file; so the job survives
reruns, page switches and refreshes, and a second tab sees the same job.
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from ..checkpoint import WEIGHTS, atomic_write_text
from ..faithfulness import DEFAULT_IMAGES, REPORT
from ..runs import Run, RunError, pid_alive
from .jobs import detached

PROGRESS = ".faithfulness-progress.json"
JOB = ".faithfulness-job.json"
LOG = "faithfulness.log"


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def status(run: Run) -> dict:
    """{"state": "none" | "running" | "finished" | "failed", "done", "total", "what", "error"}."""
    job = _read(run.file(JOB))
    if not job:
        return {"state": "none"}
    progress = _read(run.file(PROGRESS))
    if pid_alive(job.get("pid")):
        return {"state": "running", **progress}
    code = job.get("returncode")
    # No exit code: the app that started it has restarted since; the report tells.
    if code == 0 or (code is None and run.file(REPORT).is_file()):
        return {"state": "finished", **progress}
    return {"state": "failed", "error": _error(run)}


def _error(run: Run) -> str:
    """The job's one-line error (`error: …`), else the end of its log."""
    try:
        lines = run.file(LOG).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "the measurement ended without a message"
    errors = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
    return errors[-1] if errors else ("\n".join(lines[-5:]) or "the measurement ended without a message")


def start(run: Run, images: int = DEFAULT_IMAGES) -> None:
    """Start measuring `run`'s maps; returns at once. RunError if that cannot start."""
    if run.readonly:
        raise RunError(f"{run.name} is read-only: its faithfulness comes with it (`make demo-runs`)")
    if not run.file(WEIGHTS).is_file():
        raise RunError(f"{run.name} has no trained weights yet")
    if status(run)["state"] == "running":
        raise RunError(f"the maps of {run.name} are already being measured")
    run.file(PROGRESS).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tinyvit.faithfulness", str(run.path.resolve()), "--images", str(images),
           "--progress-file", str(run.file(PROGRESS).resolve()), "--quiet"]
    proc = detached(cmd, run.file(LOG), mode="wb")
    atomic_write_text(run.file(JOB), json.dumps({"pid": proc.pid, "images": images}))

    def reap() -> None:
        # The exit code tells finished from failed; waiting also keeps zombies away.
        code = proc.wait()
        atomic_write_text(run.file(JOB), json.dumps({"pid": proc.pid, "images": images, "returncode": code}))

    threading.Thread(target=reap, daemon=True).start()
