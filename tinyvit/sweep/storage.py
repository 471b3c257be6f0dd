"""Where a sweep's study lives: Optuna's journal file in the sweep's folder (one machine, no
set-up, safe for several processes) or a PostgreSQL server (several machines).

SQLite is refused: Optuna documents it as unsafe for parallel workers. A password in a
PostgreSQL URL is never printed and never written to disk; libpq's PGPASSWORD or ~/.pgpass
supply it to workers started later.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import optuna

from ..checkpoint import atomic_write_text
from ..runs import default_root

SWEEPS = ".sweeps"          # under the runs folder, so run listings ignore it
JOURNAL = "journal.log"
# A worker whose heartbeat is older than the grace period is taken as crashed and its
# trial is marked failed by the next worker that asks for a trial.
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 30
GRACE_ENV = "TINYVIT_SWEEP_GRACE"  # seconds; more for slow networks


def grace_seconds() -> int:
    try:
        return max(1, int(os.environ.get(GRACE_ENV, GRACE_SECONDS)))
    except ValueError:
        return GRACE_SECONDS


def heartbeat_seconds() -> int:
    """Often enough that a live worker is never taken for a crashed one."""
    return max(1, min(HEARTBEAT_SECONDS, grace_seconds() // 3))


# Optuna's INFO lines ("A new study created ...") would interleave with the workers' own.
optuna.logging.set_verbosity(optuna.logging.WARNING)


class SweepError(RuntimeError):
    """A sweep that cannot be created, found or reached; the message is one line, user-facing."""


def sweeps_root(runs_root: Path | str | None = None) -> Path:
    return Path(runs_root or default_root()) / SWEEPS


def sweep_dir(name: str, runs_root: Path | str | None = None) -> Path:
    return sweeps_root(runs_root) / name


def is_remote(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgresql+", "postgres://"))


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and the sweep's folder."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def strip_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", str(url))


def _password(url: str) -> str | None:
    m = re.search(r"://[^:/@]*:([^@]*)@", str(url))
    return m.group(1) if m else None


def _hide(text: str, url: str) -> str:
    secret = _password(url)
    text = text.replace(url, mask_url(url))
    return text.replace(secret, "***") if secret else text


def _sqlalchemy_url(url: str) -> str:
    # psycopg 3 is the driver in requirements.txt; a plain postgresql:// URL would pick psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def open_storage(url: str | None, name: str, runs_root: Path | str | None = None):
    """An Optuna storage for the sweep `name`: its journal file when `url` is empty."""
    if not url:
        folder = sweep_dir(name, runs_root)
        folder.mkdir(parents=True, exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    if not is_remote(url):
        raise SweepError(f"storage {mask_url(url)}: use postgresql://USER@HOST:PORT/DB for several machines "
                         "(SQLite is not safe for parallel workers), or leave --storage out for this machine")
    from optuna.storages import RDBStorage
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is marked experimental
            return RDBStorage(_sqlalchemy_url(url), heartbeat_interval=heartbeat_seconds(),
                              grace_period=grace_seconds(),
                              engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}})
    except Exception as err:  # sqlalchemy/psycopg errors carry the URL's parts
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()
        reason = reason[0] if reason else err.__class__.__name__
        raise SweepError(f"cannot reach storage {mask_url(url)}: {_hide(reason, url)}") from None


def write_pointer(name: str, url: str | None, runs_root: Path | str | None = None) -> None:
    """sweep.json in the local sweep folder, so this machine's app lists the sweep; a remote
    URL is kept without its password."""
    folder = sweep_dir(name, runs_root)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "sweep.json", json.dumps({"name": name, "storage": strip_password(url) if url else None}))


def read_pointer(name: str, runs_root: Path | str | None = None) -> str | None:
    """The storage URL this machine knows for the sweep (None: the journal file)."""
    try:
        return json.loads((sweep_dir(name, runs_root) / "sweep.json").read_text(encoding="utf-8")).get("storage")
    except (OSError, ValueError):
        return None


def local_sweeps(runs_root: Path | str | None = None) -> list[str]:
    root = sweeps_root(runs_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "sweep.json").is_file())
