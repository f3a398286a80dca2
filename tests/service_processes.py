"""Real processes for the service tests and benchmark (test-only): a throw-away redis-server and ``recsys serve``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

__all__ = ["free_port", "redis_server", "serve_process", "wait_http"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the group we started: uvicorn's supervisor and its workers
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throw-away redis-server on a free port (no persistence); yields its URL,
    or None when no ``redis-server`` binary is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@contextlib.contextmanager
def serve_process(model: str | Path, keys: str | Path, workers: int = 1, redis_url: str | None = None,
                  nice: int = 0, log_path: str | Path | None = None,
                  extra: tuple[str, ...] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    """``recsys serve`` on a free port of 127.0.0.1 (``extra``: more options); yields (base URL, process)."""
    port = free_port()
    command = [sys.executable, "-m", "recsys.cli", "serve", "--model", str(model), "--api-keys", str(keys),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if redis_url:
        command += ["--redis", redis_url]
    command += list(extra)
    if nice:
        command = ["nice", "-n", str(nice), *command]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", timeout=120, process=process)
        yield base, process
    finally:
        _stop(process)
        if log_path:
            log.close()
