"""A sweep is an Optuna study plus ordinary run folders. The study holds the sweep's settings
(user attribute "settings"), so every worker, on any machine, samples the same space with the
same budget; each trial records which run folder it trained, on which host.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..runs import RunError, check_run_name
from .searchspace import SpaceError, grid_size, grid_space, load_space
from .storage import SweepError, mask_url, open_storage, write_pointer

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
# Second objective beside best validation accuracy, for a Pareto front.
SECOND = {"none": None, "params": "minimize", "speed": "maximize"}
SETTINGS = "settings"
STOP = "stop_requested"
CONTINUED = "continued"     # numbers of stopped trials a later trial carries on


def create(name: str, dataset: str, model: str, space: str = "default", trials: int = 20,
           epochs: int = 10, timeout: float | None = None, sampler: str = "tpe", pruner: str = "median",
           second: str = "none", storage: str | None = None, runs_root: Path | str | None = None,
           **fixed: Any) -> optuna.Study:
    """Create the study; raises SweepError or SpaceError with a one-line message."""
    try:
        check_run_name(name)
    except RunError:
        raise SweepError(f"invalid sweep name {name!r}: use letters, digits, '.', '_' and '-'") from None
    if len(name) > 80:
        raise SweepError(f"sweep name {name!r} is too long (at most 80 characters)")
    for flag, value in (("trials", trials), ("epochs", epochs)):
        if not isinstance(value, int) or value <= 0:
            raise SweepError(f"--{flag} must be at least 1, got {value}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise SweepError(f"--timeout must be a positive number of seconds, got {timeout}")
    if sampler not in SAMPLERS:
        raise SweepError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise SweepError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if second not in SECOND:
        raise SweepError(f"--second-objective must be one of {', '.join(SECOND)}, got {second!r}")
    from ..data import dataset_info
    try:
        dataset_info(dataset)
    except Exception as err:
        raise SweepError(str(err)) from None
    spec = load_space(space, model)
    if not storage and _journal_exists(name, runs_root):
        raise SweepError(f"a sweep named {name!r} already exists in {_where(storage, runs_root)}")
    settings = dict(name=name, dataset=dataset, model=model, space=spec, trials=trials, epochs=epochs,
                    timeout=timeout, sampler=sampler, pruner=pruner, second=second, created_at=time.time(),
                    **{k: v for k, v in fixed.items() if v is not None})
    st = open_storage(storage, name, runs_root)
    directions = ["maximize"] + ([SECOND[second]] if SECOND[second] else [])
    try:
        study = optuna.create_study(study_name=name, storage=st, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise SweepError(f"a sweep named {name!r} already exists in {_where(storage, runs_root)}") from None
    study.set_user_attr(SETTINGS, settings)
    write_pointer(name, storage, runs_root)
    return study


def _journal_exists(name: str, runs_root) -> bool:
    from .storage import JOURNAL, sweep_dir
    path = sweep_dir(name, runs_root) / JOURNAL
    return path.is_file() and path.stat().st_size > 0


def _where(storage: str | None, runs_root) -> str:
    from .storage import sweeps_root
    return mask_url(storage) if storage else str(sweeps_root(runs_root))


def load(name: str, storage: str | None = None, runs_root: Path | str | None = None) -> optuna.Study:
    """The sweep's study with its sampler and pruner; SweepError if it does not exist."""
    st = open_storage(storage, name, runs_root)
    try:
        plain = optuna.load_study(study_name=name, storage=st)
    except KeyError:
        raise SweepError(f"no sweep named {name!r} in {_where(storage, runs_root)}") from None
    s = settings_of(plain)
    return optuna.load_study(study_name=name, storage=st, sampler=make_sampler(s), pruner=make_pruner(s))


def settings_of(study: optuna.Study) -> dict[str, Any]:
    s = study.user_attrs.get(SETTINGS)
    if not isinstance(s, dict):
        raise SweepError(f"study {study.study_name!r} was not made by tinyvit.sweep (no settings)")
    return s


def make_sampler(s: dict[str, Any]) -> optuna.samplers.BaseSampler:
    if s["sampler"] == "random":
        return optuna.samplers.RandomSampler()
    if s["sampler"] == "grid":
        return optuna.samplers.GridSampler(grid_space(s["space"], s["model"]))
    return optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, s["trials"] // 3)))


def make_pruner(s: dict[str, Any]) -> optuna.pruners.BasePruner:
    if s["pruner"] == "median":
        # Two finished trials give a median to compare with; the first epoch is judged too,
        # since a sweep's epochs are few.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if s["pruner"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(s["epochs"]), reduction_factor=3)
    return optuna.pruners.NopPruner()


def budget(s: dict[str, Any]) -> int:
    """Trials the sweep runs: --trials, or the grid's size when that is smaller."""
    if s["sampler"] == "grid":
        try:
            return min(int(s["trials"]), grid_size(s["space"], s["model"]))
        except SpaceError:
            return int(s["trials"])
    return int(s["trials"])


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Trials that use the budget: a trial stopped by the user does not, as a later trial
    carries its run on."""
    return [t for t in trials if not t.user_attrs.get("stopped")]


def request_stop(study: optuna.Study) -> int:
    """Ask every worker to stop; returns how many trials are running now."""
    study.set_user_attr(STOP, True)
    return sum(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False))


def stop_requested(study: optuna.Study) -> bool:
    return bool(study.user_attrs.get(STOP))


def resume(study: optuna.Study) -> int:
    """Clear the stop request and queue a continuation of every trial that was stopped;
    returns how many were queued. A continuation carries the stopped trial's parameters and
    run folder, so its run goes on from its last checkpoint."""
    done = set(study.user_attrs.get(CONTINUED, []))
    queued = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get("stopped") and t.number not in done:
            study.enqueue_trial(t.params, user_attrs={"continues": t.number, "run_dir": t.user_attrs.get("run_dir"),
                                                      "run": t.user_attrs.get("run"),
                                                      "host": t.user_attrs.get("host")})
            queued.append(t.number)
    study.set_user_attr(CONTINUED, sorted(done | set(queued)))
    study.set_user_attr(STOP, False)
    return len(queued)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The finished trial with the best validation accuracy (the first objective)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise SweepError(f"sweep {study.study_name!r} has no finished trial yet")
    return max(done, key=lambda t: t.values[0])
