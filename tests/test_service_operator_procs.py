"""Issue 21, replayed against real ``recsys serve`` processes: memory under large unauthenticated
bodies, start-up failures that exit with one line, no password in the process list or the log,
one job at a time across workers, one-line CLI errors and Ctrl-C."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from service_processes import free_port, serve_process

from recsys.service import PREFIX, KeyStore

pytestmark = pytest.mark.processes  # every test here starts real `recsys` processes

RECSYS = [sys.executable, "-m", "recsys.cli"]
BODY_BYTES = 100 * 2**20


@pytest.fixture(scope="module")
def keys_and_token(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    store = KeyStore()
    token = store.add("ops", admin=True)
    store.save(path)
    return path, token


def _send_body(port: int, chunked: bool, sent: list[int]) -> None:
    """POST a 100 MB body without a token, as fast as the server takes it, until it closes."""
    head = (f"POST {PREFIX}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + ("Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {BODY_BYTES}\r\n\r\n"))
    chunk = b"7" * 2**20
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        for _ in range(BODY_BYTES // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            sent[0] += len(chunk)


def test_worker_memory_under_concurrent_100mb_unauthenticated_bodies(model_dir, keys_and_token, tmp_path):
    keys, _ = keys_and_token
    with serve_process(model_dir, keys, log_path=tmp_path / "serve.log") as (base, process):
        port = int(base.rsplit(":", 1)[1])
        worker = psutil.Process(process.pid)
        for _ in range(20):  # settle: a few requests, then idle
            httpx.get(f"{base}/health")
        time.sleep(1.0)
        idle = worker.memory_info().rss
        peak, stop = [idle], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], worker.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        sent = [[0] for _ in range(8)]
        attackers = [threading.Thread(target=_send_body, args=(port, i % 2 == 1, sent[i])) for i in range(8)]
        for t in attackers:
            t.start()
        for t in attackers:
            t.join(timeout=60)
        stop.set()
        sampler.join()
        grown = (peak[0] - idle) / 2**20
        print(f"\nworker RSS idle {idle / 2**20:.1f} MB, peak under 8 concurrent 100 MB bodies "
              f"(4 declared, 4 chunked) {peak[0] / 2**20:.1f} MB (+{grown:.1f} MB); "
              f"bytes the clients got to send: {sum(s[0] for s in sent) / 2**20:.0f} MB")
        assert grown < 50, f"worker grew by {grown:.1f} MB"
        assert httpx.get(f"{base}/health").status_code == 200
        # headers: a 100 KB Authorization and 5,000 header lines get 431; past the parser's 1 MB buffer, 400
        assert httpx.get(f"{base}/health", headers={"Authorization": "Bearer " + "x" * 100_000}).status_code == 431
        assert httpx.get(f"{base}/health", headers={f"x-h{i}": "1" for i in range(5000)}).status_code == 431
        try:  # the parser answers 400 and closes; the client may see the reset before the answer
            assert httpx.get(f"{base}/health", headers={"x-big": "x" * 2_000_000}).status_code == 400
        except httpx.TransportError:
            pass
        assert worker.memory_info().rss - idle < 50 * 2**20
        assert httpx.get(f"{base}/health").status_code == 200


def _serve(model: str | Path, keys: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*RECSYS, "serve", "--model", str(model), "--api-keys", str(keys), "--port",
                           str(free_port()), *extra], capture_output=True, text=True, timeout=timeout)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("recsys")]


def test_a_corrupt_model_with_two_workers_exits_with_one_line(model_dir, keys_and_token, redis_url, tmp_path):
    keys, _ = keys_and_token
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    current = (bad / "engine" / "CURRENT").read_text().strip()
    (bad / "engine" / current / "config.json").write_text("garbage")
    started = time.monotonic()
    result = _serve(bad, keys, "--workers", "2", "--redis", redis_url)
    assert result.returncode == 2
    assert time.monotonic() - started < 100  # no respawn loop
    lines = _error_lines(result)
    assert len(lines) == 1 and "a worker could not start" in lines[0] and "config.json" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("extra, expected", [
    (["--port", "99999"], "argument --port: 99999 is outside 1..65535"),
    (["--workers", "0"], "argument --workers"),
    (["--workers", "2", "--redis", "redis://user:SECRET@127.0.0.1:1/0"], "Redis at redis://user:***@127.0.0.1:1/0"),
    (["--redis", "redis://127.0.0.1:1/0"], "does not answer"),
])
def test_startup_failures_exit_non_zero_with_one_line(model_dir, keys_and_token, extra, expected):
    keys, _ = keys_and_token
    result = _serve(model_dir, keys, *extra)
    assert result.returncode == 2
    lines = [line for line in _error_lines(result) if "warning" not in line]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "SECRET" not in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_directory_as_keys_file(model_dir, tmp_path):
    result = _serve(model_dir, tmp_path)
    assert result.returncode == 2 and "is not a file" in result.stderr and "Traceback" not in result.stderr


@contextlib.contextmanager
def _redis_with_password(password: str):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                                "--requirepass", password], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def _process_tree_argv(pid: int) -> str:
    root = psutil.Process(pid)
    return "\n".join(" ".join(p.cmdline()) for p in [root, *root.children(recursive=True)])


def test_two_workers_one_job_at_a_time_and_no_password_anywhere(model_dir, keys_and_token, tmp_path):
    keys, token = keys_and_token
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    with _redis_with_password("PW21secret") as url:
        url_file = tmp_path / "redis-url"
        url_file.write_text(url + "\n")
        port = free_port()
        log = tmp_path / "serve.log"
        command = [*RECSYS, "serve", "--model", str(model), "--api-keys", str(keys), "--port", str(port),
                   "--workers", "2", "--redis-url-file", str(url_file)]
        with open(log, "w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            from service_processes import wait_http

            wait_http(f"{base}/health", timeout=120, process=process)
            time.sleep(2)  # both workers up
            assert "PW21secret" not in _process_tree_argv(process.pid)
            admin = {"Authorization": f"Bearer {token}"}
            with httpx.Client(timeout=30) as client:
                codes = [client.post(f"{base}{PREFIX}/train", headers=admin).status_code for _ in range(4)]
                codes.append(client.post(f"{base}{PREFIX}/batch-process", headers=admin).status_code)
                assert sorted(codes) == [202, 409, 409, 409, 409], codes
                deadline = time.monotonic() + 120
                while client.get(f"{base}{PREFIX}/jobs/train", headers=admin).json()["status"] == "running":
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
                assert client.post(f"{base}{PREFIX}/batch-process", headers=admin).status_code == 202
                while client.get(f"{base}{PREFIX}/jobs/batch-process", headers=admin).json()["status"] == "running":
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
                job = client.get(f"{base}{PREFIX}/jobs/batch-process", headers=admin).json()
                assert job["status"] == "completed", job
                for _ in range(6):  # whichever worker answers serves the published version
                    info = client.get(f"{base}{PREFIX}/model-info", headers=admin).json()
                    assert info["served_batch_version"] == job["result"]["version"]
                health = client.get(f"{base}/health").json()
                assert health["status"] == "ok" and health["batch_version"] == job["result"]["version"]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        assert "PW21secret" not in log.read_text()


@pytest.mark.parametrize("argv, expected", [
    (["train", "--data", "/nonexistent-21", "--out", "OUT"], "argument --data: directory /nonexistent-21 does not exist"),
    (["train", "--profile", "ci", "--out", "/etc/passwd/x"], "argument --out"),
    (["train", "--profile", "ci", "--data-dir", "/etc/passwd", "--out", "OUT"], "argument --data-dir"),
    (["batch", "--data", "/nonexistent-21", "--out", "OUT"], "argument --data"),
    (["tune", "--data", "/nonexistent-21", "--out", "t.toml"], "argument --data"),
    (["tune", "--data", ".", "--out", "/"], "argument --out: / is a directory"),
    (["keys", "add", "--user", "bad user", "--file", "k.json"], "argument --user: 'bad user' is not an id"),
    (["keys", "revoke", "abcd", "--file", "missing.json"], "not found"),
])
def test_cli_user_errors_are_one_line_and_status_2(argv, expected, tmp_path):
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    result = subprocess.run([*RECSYS, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr


def test_help_shows_defaults():
    result = subprocess.run([*RECSYS, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert "(default: 8000)" in result.stdout and "(default: 1048576)" in result.stdout
    result = subprocess.run([*RECSYS, "generate", "--help"], capture_output=True, text=True, timeout=60)
    assert "(default: 42)" in result.stdout


def _as_from_a_terminal() -> None:
    """SIGINT as in a terminal: a test run started in the background (``cmd &`` without job control) has it
    ignored, and Python would then never raise KeyboardInterrupt in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    process = subprocess.Popen([*RECSYS, "generate", "--profile", "large", "--out", str(tmp_path / "d")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_as_from_a_terminal)
    assert process.stderr is not None
    seen = b""
    while b"generating" not in seen:  # interrupted mid-generation, as a user would
        seen += process.stderr.read1(4096) or b""
        assert process.poll() is None, seen
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    err = (seen + rest).decode().replace("\r", "\n")
    # a progress bar's line ends without a newline: keep what follows its last "]"
    lines = [line.rsplit("]", 1)[-1] if "%|" in line else line for line in err.splitlines()]
    lines = [line for line in lines if line.strip() and not line.startswith("[recsys ")]  # step lines (progress)
    assert "Traceback" not in err
    assert process.returncode == 130 and lines == ["recsys generate: interrupted"], err
