"""`python -m tinyvit.sweep create|run|status|stop|resume|best`: hyperparameter sweeps with Optuna."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .searchspace import NAMED_SPACES, SpaceError
from .storage import SweepError, mask_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """examples:
  python -m tinyvit.sweep create digits-vit --dataset digits --model tinyvit --trials 12 --epochs 5
  python -m tinyvit.sweep run digits-vit --workers 2
  python -m tinyvit.sweep status digits-vit
  python -m tinyvit.sweep best digits-vit

several machines: give every command the same PostgreSQL URL (or set TINYVIT_SWEEP_STORAGE):
  python -m tinyvit.sweep create big --storage postgresql://lab@db-host:5432/sweeps ...
  python -m tinyvit.sweep run big --storage postgresql://lab@db-host:5432/sweeps --workers 2
Put the password in ~/.pgpass or PGPASSWORD; it is never printed or written to the runs folder."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def _positive_int():
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
        return value
    return parse


def _positive_float():
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tinyvit.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Hyperparameter sweeps of TinyViT or the CNN with Optuna. Every trial is an "
                           "ordinary train.py run folder (tagged with the sweep and trial number), so the "
                           "app's Metrics, Predict and Compare pages open any trial.", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def common(sp):
        sp.add_argument("name", help="the sweep's name (letters, digits, '.', '_', '-')")
        sp.add_argument("--storage", metavar="URL", default=os.environ.get("TINYVIT_SWEEP_STORAGE"),
                        help="postgresql://USER@HOST:PORT/DB for workers on several machines "
                             "(default: $TINYVIT_SWEEP_STORAGE, else a journal file in RUNS/.sweeps/NAME/)")
        sp.add_argument("--runs-root", metavar="DIR", default=None,
                        help="where this machine's trial run folders go (default: $TINYVIT_RUNS or runs)")

    c = sub.add_parser("create", help="create a sweep (nothing trains yet)",
                       description="Create a sweep: its dataset and model, search space, budget, sampler and pruner.")
    common(c)
    c.add_argument("--dataset", default="digits", help="dataset, as train.py --dataset (default: digits)")
    c.add_argument("--model", default="tinyvit", choices=["tinyvit", "cnn"], help="model (default: tinyvit)")
    c.add_argument("--space", default="default", metavar="NAME|FILE",
                   help="search space: a YAML/JSON file, or a named one: default (the model's), "
                        + ", ".join(NAMED_SPACES) + " (default: default)")
    c.add_argument("--trials", type=_positive_int(), default=20, metavar="N",
                   help="trials to run in all (default: 20)")
    c.add_argument("--epochs", type=_positive_int(), default=10, metavar="N",
                   help="epochs per trial (default: 10)")
    c.add_argument("--timeout", type=_positive_float(), default=None, metavar="SECONDS",
                   help="wall-clock limit of each `run`: no new trial starts after it (default: none)")
    c.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe",
                   help="tpe (default), random, or grid (float ranges: their ends and middle)")
    c.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median",
                   help="stop unpromising trials early (default: median)")
    c.add_argument("--second-objective", dest="second", choices=["none", "params", "speed"], default="none",
                   help="also minimise parameters or maximise images/s, for a Pareto front "
                        "(Optuna prunes single-objective sweeps only, so this turns pruning off)")
    c.add_argument("--subset", type=_positive_int(), default=None, metavar="N",
                   help="training images per class in every trial (default: all)")
    c.add_argument("--img-size", type=_positive_int(), default=None, metavar="N",
                   help="resize images (default: the dataset's size)")
    c.add_argument("--threads", type=_positive_int(), default=None, metavar="N",
                   help="CPU threads per trial (default: all cores)")
    c.add_argument("--device", default=None, help="device per trial, as train.py --device (default: auto)")
    c.add_argument("--seed", type=int, default=None, help="training seed of every trial (default: 0)")

    r = sub.add_parser("run", help="start N worker processes here, until the budget is used",
                       description="Start workers on this machine. On several machines, run the same "
                                   "command (same --storage) on each: they share the study's trials.")
    common(r)
    r.add_argument("--workers", type=_positive_int(), default=1, metavar="N",
                   help="worker processes to start (default: 1)")
    r.add_argument("--max-jobs", type=_positive_int(), default=None, metavar="N",
                   help="trainings at once in the runs folder, shared with the app's jobs "
                        "(default: $TINYVIT_MAX_JOBS or 1)")
    r.add_argument("--until", type=float, default=None, help=argparse.SUPPRESS)

    s = sub.add_parser("status", help="a table of the sweep's trials")
    common(s)
    s.add_argument("--json", action="store_true", help="print the rows as JSON")

    st = sub.add_parser("stop", help="stop the sweep: running trials end after their current batch")
    common(st)

    rs = sub.add_parser("resume", help="carry a stopped sweep on (stopped trials continue from their checkpoints)")
    common(rs)
    rs.add_argument("--workers", type=_positive_int(), default=1, metavar="N",
                    help="worker processes to start here (default: 1)")
    rs.add_argument("--max-jobs", type=_positive_int(), default=None, metavar="N",
                    help="trainings at once in the runs folder (default: $TINYVIT_MAX_JOBS or 1)")

    b = sub.add_parser("best", help="the best trial's run folder")
    common(b)
    b.add_argument("--push-to-hub", metavar="USER/REPO", default=None,
                   help="upload the best trial's run to this Hugging Face Hub model repo")
    b.add_argument("--hub-private", action="store_true", help="create the Hub repo as private")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad flag already reported in one line
        return int(exit_.code or 0)
    from ..runs import RunError
    try:
        return COMMANDS[args.command](args)
    except (SweepError, SpaceError, RunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: `python -m tinyvit.sweep resume NAME` carries the sweep on", file=sys.stderr)
        return EXIT_FAILED


def cmd_create(a) -> int:
    from . import study
    study.create(a.name, a.dataset, a.model, space=a.space, trials=a.trials, epochs=a.epochs, timeout=a.timeout,
                 sampler=a.sampler, pruner=a.pruner, second=a.second, storage=a.storage, runs_root=a.runs_root,
                 subset=a.subset, img_size=a.img_size, threads=a.threads, device=a.device, seed=a.seed)
    where = mask_url(a.storage) if a.storage else "a journal file in the sweep's folder"
    print(f"created sweep {a.name!r} ({a.trials} trials of {a.epochs} epochs, {a.sampler} sampler, "
          f"{a.pruner} pruner) in {where}\n  start it with: python -m tinyvit.sweep run {a.name}"
          + (" --storage URL" if a.storage else ""))
    return EXIT_OK


def _load(a):
    from . import study
    from .storage import write_pointer
    s = study.load(a.name, a.storage, a.runs_root)
    write_pointer(a.name, a.storage, a.runs_root)  # so this machine's app lists it too
    return s


def cmd_run(a) -> int:
    from . import study as sweeps
    s = _load(a)
    settings = sweeps.settings_of(s)
    until = a.until or (time.time() + settings["timeout"] if settings.get("timeout") else None)
    if a.workers == 1:
        from .worker import Worker
        w = Worker(s, a.storage, a.runs_root, a.max_jobs, log=lambda m: print(f"[{os.getpid()}] {m}", flush=True))
        w.work(until)
    else:
        from .processes import spawn_worker
        procs = [spawn_worker(a.name, a.runs_root, a.storage, a.max_jobs, until, detach=False)
                 for _ in range(a.workers)]
        print(f"started {a.workers} workers (their output: RUNS/.sweeps/{a.name}/workers.log); waiting…",
              flush=True)
        for p in procs:
            p.wait()
    return _summary(_load(a))


def _summary(s) -> int:
    from .table import format_table, trial_rows
    print(format_table(trial_rows(s)))
    return EXIT_OK


def cmd_status(a) -> int:
    from .table import format_table, trial_rows
    rows = trial_rows(_load(a))
    print(json.dumps(rows, indent=1) if a.json else format_table(rows))
    return EXIT_OK


def cmd_stop(a) -> int:
    from . import study as sweeps
    n = sweeps.request_stop(_load(a))
    print(f"stop requested: {n} running trial(s) end after their current batch, keeping their last "
          f"complete epoch; `python -m tinyvit.sweep resume {a.name}` carries the sweep on")
    return EXIT_OK


def cmd_resume(a) -> int:
    from . import study as sweeps
    n = sweeps.resume(_load(a))
    print(f"resuming {a.name!r}: {n} stopped trial(s) continue from their checkpoints", flush=True)
    a.until = None
    return cmd_run(a)


def cmd_best(a) -> int:
    from . import study as sweeps
    from .table import local_run
    s = _load(a)
    t = sweeps.best_trial(s)
    run = local_run(t)
    print(f"best trial: {t.number}  val accuracy {100 * t.values[0]:.2f}%  params {json.dumps(t.params)}")
    print(f"run: {run.path if run else t.user_attrs.get('run_dir')}"
          + ("" if run else f" (on {t.user_attrs.get('host')}, not on this machine)"))
    if a.push_to_hub:
        if run is None:
            raise SweepError("the best trial's run folder is not on this machine: push it from its host")
        from ..hub import HubError, push_run
        try:
            print(f"pushed to the Hugging Face Hub: {push_run(run.path, a.push_to_hub, private=a.hub_private)}")
        except HubError as err:
            print(f"error: --push-to-hub: {err}", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_OK


COMMANDS = {"create": cmd_create, "run": cmd_run, "status": cmd_status, "stop": cmd_stop,
            "resume": cmd_resume, "best": cmd_best}
