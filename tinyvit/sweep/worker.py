"""A sweep worker: asks the study for a trial, trains it as an ordinary train.py run, reports
each epoch's validation accuracy to the pruner, and tells the study how it ended.

The trainer is not changed for sweeps: the worker watches the run's metrics.jsonl, and a
pruned run is stopped as the app's Stop button does (SIGTERM: the trainer keeps its last
complete epoch's checkpoint and ends), then marked `pruned`.
"""
from __future__ import annotations

import fcntl
import os
import signal
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from ..app import jobs
from ..checkpoint import CHECKPOINT
from ..training.config import ConfigError
from ..training.runner import complete_config
from ..data import DatasetError
from ..models import ModelError
from ..runs import Run, RunError, create_run, default_root, pid_alive
from . import study as sweeps
from .searchspace import sample, to_config
from .storage import is_remote, sweep_dir

POLL_SECONDS = 0.25
STOP_CHECK_SECONDS = 1.0
HOST = socket.gethostname()
HISTORY_KEYS = ("epoch", "val_accuracy", "val_loss", "train_loss", "images_per_second", "epoch_seconds")


class Worker:
    def __init__(self, study: optuna.Study, storage: str | None, runs_root: Path | str | None = None,
                 max_jobs: int | None = None, log: Callable[[str], None] = print) -> None:
        self.study, self.storage = study, storage
        self.settings = sweeps.settings_of(study)
        self.root = Path(runs_root or default_root())
        self.max_jobs = max_jobs
        self.log = log
        self.name = study.study_name

    # -- the loop ----------------------------------------------------------------------
    def work(self, deadline: float | None = None) -> int:
        """Run trials until the budget is used, the time is up or a stop is requested;
        returns how many trials this worker took."""
        taken = 0
        with self._registered():
            while not sweeps.stop_requested(self.study):
                if deadline is not None and time.time() >= deadline:
                    self.log("time limit reached: no new trial")
                    break
                self.fail_orphans()
                trial = self._claim()
                if trial is None:
                    break
                taken += 1
                self.run_trial(trial)
        return taken

    def _claim(self) -> optuna.Trial | None:
        """The next trial, unless the budget is used. Counting and asking happen under one
        lock, so two workers never overshoot the budget or take the same trial."""
        with self._lock():
            trials = self.study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if not waiting and len(sweeps.counted(trials)) >= sweeps.budget(self.settings):
                return None
            with warnings.catch_warnings():
                # Optuna suggests optimize() with heartbeats; this worker records them itself.
                warnings.simplefilter("ignore")
                trial = self.study.ask()
            trial.set_user_attr("host", HOST)
            trial.set_user_attr("worker_pid", os.getpid())
            return trial

    @contextmanager
    def _lock(self):
        if is_remote(self.storage):
            # Several machines: a PostgreSQL advisory lock, held on its own connection.
            from sqlalchemy import text
            key = int.from_bytes(self.name.encode()[:8].ljust(8, b"\0"), "big") & 0x7FFFFFFFFFFFFFFF
            rdb = getattr(self.study._storage, "_backend", self.study._storage)  # Optuna wraps it in a cache
            with rdb.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        else:
            folder = sweep_dir(self.name, self.root)
            with open(folder / ".claim.lock", "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                yield

    @contextmanager
    def _registered(self):
        """A pid file per live worker, so the app can tell a sweep is being worked on."""
        folder = sweep_dir(self.name, self.root) / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        mark = folder / f"{HOST}-{os.getpid()}"
        mark.write_text(str(os.getpid()))
        try:
            yield
        finally:
            mark.unlink(missing_ok=True)

    def fail_orphans(self) -> None:
        """Mark failed the running trials whose worker died: on another machine by their
        stale heartbeat (PostgreSQL), on this one by its dead process (any storage). A
        training process left behind by the dead worker is stopped."""
        if is_remote(self.storage):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # marked experimental
                optuna.storages.fail_stale_trials(self.study)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = t.user_attrs
            if attrs.get("host") != HOST or pid_alive(attrs.get("worker_pid")):
                continue
            self._end_orphan_run(attrs.get("run_dir"))
            try:
                self.study.tell(t.number, state=TrialState.FAIL)
                self.log(f"trial {t.number}: its worker (pid {attrs.get('worker_pid')}) died; marked failed")
            except (RuntimeError, ValueError):
                pass  # another worker marked it first

    @staticmethod
    def _end_orphan_run(run_dir: str | None) -> None:
        if not run_dir or not Path(run_dir, "status.json").is_file():
            return
        run = Run(Path(run_dir))
        pid = run.status().get("pid")
        if run.status()["state"] in ("queued", "running") and pid_alive(pid):
            os.kill(int(pid), signal.SIGTERM)

    # -- one trial ---------------------------------------------------------------------
    def run_trial(self, trial: optuna.Trial) -> None:
        s = self.settings
        params = sample(trial, s["space"], s["model"])
        cfg = to_config(s, params)
        try:
            config = complete_config(cfg, {"sweep": self.name, "sweep_trial": trial.number})
        except (ConfigError, ModelError, DatasetError) as err:
            # An impossible combination: reported with its reason, never run.
            trial.set_user_attr("skipped", str(err))
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"trial {trial.number}: skipped, {err}")
            return
        try:
            run, resume = self._run_folder(trial, config)
        except RunError as err:
            trial.set_user_attr("error", str(err))
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: failed, {err}")
            return
        trial.set_user_attr("run", run.name)
        trial.set_user_attr("run_dir", str(run.path.resolve()))
        self.log(f"trial {trial.number}: {'continuing' if resume else 'training'} {run.path}  {params}")
        started = time.monotonic()
        proc = jobs.start_queued(run, resume=resume, jobs=self.max_jobs)
        pruned_at = self._watch(trial, run, proc)
        # The train.py process's own time, so the sweep's cost beyond it can be measured.
        trial.set_user_attr("process_seconds", round(time.monotonic() - started, 3))
        self._finish(trial, run, pruned_at)

    def _run_folder(self, trial: optuna.Trial, config: dict) -> tuple[Run, bool]:
        """A new queued run tagged with the sweep and trial, or the stopped run this trial
        continues (when its folder is on this machine)."""
        old = trial.user_attrs.get("run_dir")
        if old and trial.user_attrs.get("continues") is not None and Path(old, "config.json").is_file():
            run = Run(Path(old))
            resume = run.file(CHECKPOINT).is_file()
            run.write_status(state="queued", error=None, message="continued by its sweep", pid=None)
            run.file("STOP").unlink(missing_ok=True)
            return run, resume
        return create_run(self.root, f"{self.name}-t{trial.number:04d}", config), False

    def _watch(self, trial: optuna.Trial, run: Run, proc) -> int | None:
        """Report each new epoch until the process ends; returns the epoch it was pruned at."""
        reported, pruned_at, stopping = 0, None, False
        last_check = last_beat = 0.0
        multi = len(self.study.directions) > 1
        while True:
            ended = proc.poll() is not None
            rows = run.metrics()
            new = rows[reported:]
            for row in new:
                epoch = int(row["epoch"])
                if not multi:  # Optuna prunes single-objective studies only
                    trial.report(float(row["val_accuracy"]), step=epoch)
                reported += 1
                if (pruned_at is None and not multi and not stopping and not ended
                        and epoch < int(self.settings["epochs"]) and trial.should_prune()):
                    pruned_at = epoch
                    self._signal(proc, run)
            if new:  # kept in the study too, so every machine's app sees every trial's curve
                trial.set_user_attr("history", [{k: r.get(k) for k in HISTORY_KEYS} for r in rows])
            if ended:
                return pruned_at
            now = time.monotonic()
            if is_remote(self.storage) and now - last_beat >= self.study._storage.get_heartbeat_interval():
                self.study._storage.record_heartbeat(trial._trial_id)
                last_beat = now
            if not stopping and now - last_check >= STOP_CHECK_SECONDS:
                last_check = now
                if sweeps.stop_requested(self.study):
                    stopping = True
                    self._stop_run(run)
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _stop_run(run: Run) -> None:
        """As the app's Stop: a training run ends after its current batch, keeping its last
        complete epoch; one still waiting for a job slot is cancelled."""
        try:
            jobs.stop(run)
        except RunError:
            pass  # it ended meanwhile

    @staticmethod
    def _signal(proc, run: Run) -> None:
        """Stop a run as the app's Stop does; a run still waiting for a slot just ends."""
        run.request_stop()
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _finish(self, trial: optuna.Trial, run: Run, pruned_at: int | None) -> None:
        status, rows, cfg = run.status(), run.metrics(), run.config()
        state = status["state"]
        best = max((r["val_accuracy"] for r in rows), default=None)
        speed = sum(r["images_per_second"] for r in rows) / len(rows) if rows else None
        for key, value in (("best_val_accuracy", best), ("num_params", cfg.get("num_params")),
                           ("images_per_second", speed), ("epochs_done", len(rows))):
            if value is not None:
                trial.set_user_attr(key, value)
        if pruned_at is not None and state in ("stopped", "failed"):
            message = (f"pruned by the {self.settings['pruner']} pruner after epoch {pruned_at} "
                       f"(val acc {100 * rows[pruned_at - 1]['val_accuracy']:.1f}%)")
            run.write_status(state="pruned", message=message, error=None)
            trial.set_user_attr("pruned_at", pruned_at)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"trial {trial.number}: {message}")
        elif state == "finished" and best is not None:
            values = [best] + {"params": [cfg.get("num_params", 0)], "speed": [speed or 0.0]}.get(
                self.settings.get("second", "none"), [])
            self.study.tell(trial, values)
            self.log(f"trial {trial.number}: finished, best val acc {100 * best:.2f}%")
        elif state == "stopped":
            trial.set_user_attr("stopped", status.get("message") or "stopped")
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: stopped; `resume` carries it on from its checkpoint")
        else:
            error = status.get("error") or jobs.log_tail(run, 3) or f"the run ended in state {state}"
            trial.set_user_attr("error", error.splitlines()[-1][:300])
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: failed, {error.splitlines()[-1]}")
