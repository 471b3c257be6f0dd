"""A throw-away PostgreSQL server for the several-machine sweep tests: Debian's `postgresql`
binaries, a cluster in a temporary folder, a free port, password authentication. PostgreSQL
refuses to run as root, so under root the server runs as the `postgres` user."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PASSWORD = "s3cret-pw"


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self) -> None:
        self.bin = pg_bin()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "tester")
        self.folder = Path(tempfile.mkdtemp(prefix="tinyvit-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)

    def start(self) -> "PgServer":
        if self.as_root:
            shutil.chown(self.folder, "postgres")
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD)
        if self.as_root:
            shutil.chown(pwfile, "postgres")
        subprocess.run(self._cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"),
                       check=True, capture_output=True)
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                                 str(self.folder / "server.log"), "-o",
                                 f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start"),
                       check=True, capture_output=True, timeout=60)
        return self

    def url(self, password: str = PASSWORD) -> str:
        return f"postgresql://{self.user}:{password}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
