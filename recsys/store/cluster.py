"""A throw-away PostgreSQL server for tests and benchmarks (Debian's ``postgresql`` package).

:func:`postgres_server` creates a cluster in a temporary directory with
``initdb`` (trust authentication, listening on 127.0.0.1 on a free port),
starts it with ``pg_ctl`` and yields its URL; on exit it stops the server
(``pg_ctl stop -m immediate``) and deletes the directory. PostgreSQL refuses
to run as root: as root the cluster is created and run as the user
``postgres`` (or ``nobody``) through ``runuser``. Where no server can be
started it yields ``None`` and :data:`reason` says why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["find_binaries", "postgres_server"]


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest ``/usr/lib/postgresql/*/bin``, else PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0)
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def _run_as() -> tuple[list[str], str | None]:
    """(command prefix, user name): ``runuser -u USER --`` as root, nothing otherwise."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            if runuser:
                return [runuser, "-u", user, "--"], user
    raise RuntimeError("running as root without runuser or a 'postgres'/'nobody' user: PostgreSQL refuses root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[tuple[str | None, str]]:
    """Yields ``(url, reason)``: a running throw-away server's URL, or ``(None, why not)``."""
    binaries = find_binaries()
    if binaries is None:
        yield None, "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql"
        return
    try:
        prefix, user = _run_as()
    except RuntimeError as err:
        yield None, str(err)
        return
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    data, port = root / "data", _free_port()
    if user is not None:
        record = pwd.getpwnam(user)
        os.chmod(root, 0o755)
        os.chown(root, record.pw_uid, record.pw_gid)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    started = False
    try:
        done = subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                               "--auth=trust", "-E", "UTF8", "--no-instructions"], **quiet, timeout=timeout)
        if done.returncode != 0:
            yield None, f"initdb failed: {done.stderr.strip()[-400:]}"
            return
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
        done = subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                               str(root / "server.log"), "-w", "-t", str(int(timeout)), "start"],
                              **quiet, timeout=timeout + 10)
        if done.returncode != 0:
            log = (root / "server.log").read_text(errors="replace")[-400:] if (root / "server.log").exists() else ""
            yield None, f"pg_ctl start failed: {done.stderr.strip()[-400:]} {log}"
            return
        started = True
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait(url, timeout)
        yield url, ""
    finally:
        if started:
            subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _wait(url: str, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
