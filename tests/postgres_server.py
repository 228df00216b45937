"""A real PostgreSQL server for tests: a temporary data folder, a free loopback port, stopped by PID.

PostgreSQL's server programs (`initdb`, `pg_ctl`, `postgres`) are not on PATH on Debian: they live
in the version's own folder, which `pg_config --bindir` prints. The server refuses to run as root,
so as root the data folder is given to the `postgres` user and the programs run through
`runuser -u postgres --`. It listens on 127.0.0.1 only, its socket stays in the data folder, and
clients connect over TCP with trust authentication (a throwaway cluster).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

from mlflow_server import free_port

USER = "mlflow"  # the cluster's superuser, and the owner of the store's database
DATABASE = "mlflow"


def postgres_bindir() -> Optional[Path]:
    """The folder holding `initdb` and `pg_ctl`, or None where PostgreSQL is not installed."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        folder = Path(done.stdout.strip())
        if (folder / "initdb").exists():
            return folder
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or (
        [shutil.which("initdb")] if shutil.which("initdb") else []
    )
    return Path(found[-1]).parent if found else None


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _stop(data: Path, seconds: float = 30) -> None:
    """Fast shutdown (SIGINT) of the postmaster whose PID the data folder records; then wait."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def postgres_server(bindir: Path) -> Iterator[str]:
    """Run a throwaway cluster; yields the `postgresql://` URI of an empty database in it."""
    root = Path(tempfile.mkdtemp(prefix="forgetlab-pg-"))  # under /tmp: reachable by the postgres user
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    try:
        _start(bindir, data, port)
        yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        _stop(data)
        shutil.rmtree(root, ignore_errors=True)


def _start(bindir: Path, data: Path, port: int) -> None:
    try:
        subprocess.run(
            _as_server_user(
                [str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )
        options = f"-h 127.0.0.1 -p {port} -k {data} -F"  # -F: no fsync, a test cluster
        subprocess.run(
            _as_server_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(data / "server.log"),
                    "-w",
                    "-t",
                    "120",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as error:
        log = (data / "server.log").read_text()[-2000:] if (data / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {error.stderr!r} {log}") from None
