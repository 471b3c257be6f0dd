"""The run store: one directory per run, written by train.py and read by the app.

    config.json        what was trained: dataset, model + hyperparameters, settings,
                       class names, image size, channels, normalisation
    status.json        state, pid (and its start time), epoch/batch progress, error message
                       (rewritten atomically)
    metrics.jsonl      one JSON object per finished epoch
    test_metrics.json  the final test-set report
    predictions.csv    one row per test image: index,label,pred,confidence
    samples.safetensors  a few test images (uint8) for galleries, with their labels
    model.safetensors  the latest complete epoch's weights (what predictions use)
    checkpoint.safetensors  weights + optimizer state + history, for --resume
    STOP               present = please stop after the current batch
    .train.lock        locked (flock) by the one process training the run; the OS
                       releases it when that process ends, however it ends

Every JSON file is read through tinyvit.runfiles, which checks it.
"""
from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runfiles
from .checkpoint import CHECKPOINT, WEIGHTS, atomic_write_text

ACTIVE = ("queued", "running")
READONLY_MARK = ".readonly"
LOCK_NAME = ".train.lock"
# A run the app created waits this long for its train.py to record its pid.
SPAWN_GRACE_SECONDS = 60.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunError(RuntimeError):
    """A run folder that is missing, not a run, or cannot be changed; user-facing."""


# Small trained runs shipped with the repository (read-only), so every page has
# something to show before the user trains anything.
DEMO_ROOT = Path(__file__).resolve().parent.parent / "demo_runs"


def default_root() -> Path:
    return Path(os.environ.get("TINYVIT_RUNS", "runs"))


def run_roots() -> tuple[Path, ...]:
    """Where runs are listed from: the user's runs folder, then the demo runs."""
    demo = os.environ.get("TINYVIT_DEMO_RUNS", str(DEMO_ROOT))
    return (default_root(),) + ((Path(demo),) if demo else ())


def check_run_name(name: str) -> str:
    """Run names become folder names: letters, digits, '.', '_', '-' only, so they never escape."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise RunError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' (at most 100)")
    return name


def _read_json(path: Path, default=None):
    value, problem = runfiles.read_json(path)
    return default if problem else value


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (finished, not yet reaped by the app that started it) is not running.
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def process_start(pid: int | None) -> str | None:
    """The boot and the start time of process `pid`: a pid reused by another process (after
    a restart, say) has a different one. None where /proc cannot tell (not Linux)."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]  # field 22, starttime
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f"{f.read().strip()}:{start}"
    except (OSError, ValueError, IndexError, TypeError):
        return None


def same_process(pid: int | None, start: str | None) -> bool:
    """Whether `pid` is still the process recorded with start time `start`."""
    if not pid_alive(pid):
        return False
    now = process_start(pid)
    return True if now is None else now == start


class Claim:
    """This process's exclusive lock on a run; released by release() or when the process ends."""

    def __init__(self, run: "Run", fd: int) -> None:
        self.run, self.fd = run, fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            _CLAIMS.pop(self.run.path.resolve(), None)


_CLAIMS: dict[Path, Claim] = {}


@dataclass(frozen=True)
class Run:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        return self.file("config.json").is_file()

    @property
    def readonly(self) -> bool:
        return self.file(READONLY_MARK).exists()

    # -- who trains it ------------------------------------------------------------
    def claim(self) -> Claim:
        """Take the run for this process, or raise RunError if another process has it.

        An OS lock, not a state in status.json: checking and taking are one step, so two
        resumes a moment apart cannot both train, and a crash cannot leave the run taken."""
        try:
            fd = os.open(self.file(LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise RunError(f"cannot lock {self.name} for training ({err.strerror})") from None
        # owned() holds a shared lock for an instant; a real owner holds it for the whole run.
        for _ in range(20):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                claim = _CLAIMS[self.path.resolve()] = Claim(self, fd)
                return claim
            except BlockingIOError:
                time.sleep(0.05)
        os.close(fd)
        pid = (_read_json(self.file("status.json"), {}) or {}).get("pid")
        raise RunError(f"{self.name} is already being trained by another process"
                       + (f" (pid {pid})" if pid else "") + ": wait for it to end or stop it first")

    def release(self) -> None:
        """Give up this process's claim on the run, if it holds one."""
        claim = _CLAIMS.get(self.path.resolve())
        if claim:
            claim.release()

    def owned(self) -> bool:
        """Whether some process (this one included) holds the run's training lock."""
        try:
            fd = os.open(self.file(LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        cfg, problems = runfiles.read_config(self.file("config.json"))
        if cfg is None:
            if not self.file("config.json").exists():
                raise RunError(f"{self.path} is not a TinyViT Lab run (it has no config.json)")
            raise RunError(f"{self.name} is damaged: " + "; ".join(problems))
        return cfg

    def status(self) -> dict[str, Any]:
        """status.json as it is true now: an active state whose process is gone (or whose pid
        now belongs to another process) is 'failed', and so is a missing or damaged file."""
        st, problems = runfiles.read_status(self.file("status.json"))
        if st is None:
            if self.owned():
                return {"state": "running"}
            return {"state": "failed", "error": "; ".join(problems)}
        if st["state"] in ACTIVE and not self.owned() and not self._waiting(st):
            ended = "never started" if st["state"] == "queued" and not st.get("pid") else "ended unexpectedly"
            st = {**st, "state": "failed", "error": st.get("error") or f"the training process {ended}"}
        return st

    @staticmethod
    def _waiting(st: dict[str, Any]) -> bool:
        """A queued run not yet claimed: its train.py is still starting (same process as
        recorded), or the app made it a moment ago and has not recorded the pid yet."""
        if st["state"] != "queued":
            return False
        if st.get("pid"):
            return same_process(st["pid"], st.get("pid_start"))
        return time.time() - (st.get("updated_at") or 0) < SPAWN_GRACE_SECONDS

    def owner_pid(self) -> int | None:
        """The pid that may be signalled to stop this run: recorded, still that process, and
        (once training) holding the run's lock. None otherwise: never signal a stranger."""
        st, _ = runfiles.read_status(self.file("status.json"))
        if not st or st["state"] not in ACTIVE or not same_process(st.get("pid"), st.get("pid_start")):
            return None
        if st["state"] == "running" and not self.owned():
            return None
        return st["pid"]

    def metrics(self) -> list[dict[str, Any]]:
        return runfiles.read_metrics(self.file("metrics.jsonl"))[0]

    def test_metrics(self) -> dict[str, Any] | None:
        return runfiles.read_test_metrics(self.file("test_metrics.json"))[0]

    def problems(self) -> list[str]:
        """What is wrong with the run's files, in words; [] for a healthy run."""
        found = runfiles.read_config(self.file("config.json"))[1]
        found += runfiles.read_status(self.file("status.json"))[1]
        found += runfiles.read_metrics(self.file("metrics.jsonl"))[1]
        found += runfiles.read_test_metrics(self.file("test_metrics.json"))[1]
        return found

    def predictions(self) -> list[dict[str, Any]]:
        """predictions.csv: one row per test image (index, label, pred, confidence); [] before
        the run finished or when the file is damaged."""
        try:
            with self.file("predictions.csv").open(encoding="utf-8", newline="") as f:
                return [{"index": int(r["index"]), "label": int(r["label"]), "pred": int(r["pred"]),
                         "confidence": float(r["confidence"])} for r in csv.DictReader(f)]
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            return []

    def has_weights(self) -> bool:
        return self.file(WEIGHTS).is_file()

    # -- writing (train.py only) ----------------------------------------------
    def write_config(self, cfg: dict[str, Any]) -> None:
        atomic_write_text(self.file("config.json"), json.dumps(cfg, indent=2))

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Update status.json; a pid is recorded with its start time, so a later reader can
        tell it from another process that reuses the number."""
        if "pid" in fields and "pid_start" not in fields:
            fields["pid_start"] = process_start(fields["pid"]) if fields["pid"] else None
        st = runfiles.read_status(self.file("status.json"))[0] or {}
        st.update(fields, updated_at=time.time())
        atomic_write_text(self.file("status.json"), json.dumps(st, indent=2))
        return st

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.file("metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.file("metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_test_metrics(self, report: dict[str, Any]) -> None:
        atomic_write_text(self.file("test_metrics.json"), json.dumps(report, indent=2))

    def write_predictions(self, labels, preds, confidences) -> None:
        lines = ["index,label,pred,confidence"]
        lines += [f"{i},{int(y)},{int(p)},{float(c):.6f}"
                  for i, (y, p, c) in enumerate(zip(labels, preds, confidences))]
        atomic_write_text(self.file("predictions.csv"), "\n".join(lines) + "\n")

    def request_stop(self) -> None:
        self.file("STOP").touch()

    def stop_requested(self) -> bool:
        return self.file("STOP").exists()


def create_run(root: Path | str, name: str, config: dict[str, Any]) -> Run:
    """Make a new run folder with its config, in state 'queued'. Never reuses a folder."""
    root = check_runs_root(root)
    run = Run(root / check_run_name(name))
    try:
        run.path.mkdir()
    except FileExistsError:
        raise RunError(f"a run named {name!r} already exists in {root}") from None
    except OSError as err:
        raise RunError(f"cannot create the run folder {run.path} ({err.strerror})") from None
    # status.json first: a run is listed once config.json exists, and must have a state then.
    run.write_status(state="queued", created_at=time.time())
    run.write_config(config)
    return run


def check_runs_root(root: Path | str) -> Path:
    """The runs folder, created if needed; RunError (one line) if runs cannot be written there.

    train.py calls this before loading any data, and the app before launching a job."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise RunError(f"the runs folder {root} is a file, not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunError(f"the runs folder {root} is not writable ({err.strerror or err})") from None
    return root


def open_run(path: Path | str) -> Run:
    run = Run(Path(path))
    if not run.path.is_dir():
        raise RunError(f"no run at {run.path}")
    if not run.exists:
        raise RunError(f"{run.path} is not a TinyViT Lab run (it has no config.json)")
    return run


def list_runs(*roots: Path | str) -> list[Run]:
    """Runs under the given roots (default: the runs folder, then the demo runs): each
    root's runs newest first, one root after the other, so the user's own runs come first."""
    def created(run: Run) -> float:
        st = runfiles.read_status(run.file("status.json"))[0] or {}
        return st.get("created_at") or 0.0

    found: list[Run] = []
    for root in roots or run_roots():
        root = Path(root)
        if not root.is_dir():
            continue
        runs = [Run(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]
        found += sorted(runs, key=created, reverse=True)
    return found


def delete_run(run: Run, root: Path | str | None = None) -> None:
    """Delete a run's folder; only a run folder directly inside the runs folder `root`, and
    refused for demo (read-only) runs and while it trains."""
    check_deletable(run, root)
    if run.status()["state"] == "running":
        raise RunError(f"{run.name} is still training: stop it first")
    try:
        shutil.rmtree(run.path)
    except OSError as err:
        raise RunError(f"could not delete all of {run.name} ({err.strerror or err})") from None


def check_deletable(run: Run, root: Path | str | None = None) -> None:
    """RunError unless `run` is one of the user's run folders: not read-only, not a link,
    directly inside the runs folder `root`."""
    if run.readonly:
        raise RunError(f"{run.name} is read-only (a demo run or a run loaded from the Hub) and cannot be deleted")
    root = Path(root or default_root()).resolve()
    if run.path.is_symlink():
        raise RunError(f"{run.name} is a symbolic link to a folder elsewhere: refused "
                       "(delete the link itself outside the app)")
    if run.path.resolve().parent != root:
        raise RunError(f"{run.path} is not inside the runs folder {root}: refused")
    if not run.path.is_dir() or not run.file("config.json").is_file():
        raise RunError(f"{run.path} is not a TinyViT Lab run (it has no config.json): refused")


def unique_run_name(root: Path | str, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever does not exist yet."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-.") or "run"
    base = base[:90]
    name, i = base, 2
    while (Path(root) / name).exists():
        name, i = f"{base}-{i}", i + 1
    return check_run_name(name)


def checkpoint_path(run: Run) -> Path:
    return run.file(CHECKPOINT)
