"""Start a local server process, wait until it is ready, stop it by its process group.

One copy of what the load and serving benchmarks (scripts/load.py,
scripts/bench_serving.py) and the HTTP tests (tests/serving, tests/training) need to
run a real `bentoml serve` or `mlflow server`: a free loopback port, a start that
waits for the readiness path and fails with the server's log when the process exits
or does not become ready in time, and a stop that reaches the workers (the process
is started in its own session, so its pid is its process-group id). Standard library
only: the Bento ships it with the rest of serving/ and the service never calls it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HOST = "127.0.0.1"  # servers started here bind to loopback only
SERVICE = "serving.service:StanceService"
READY_PATH = "/readyz"
LOG_TAIL_CHARS = 4000  # how much of the server's log a start-up failure quotes


class ServerFailed(RuntimeError):
    """The server exited during start-up or was not ready in time (message: why + log tail)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def serve_command(port: int, service: str = SERVICE) -> list[str]:
    """`bentoml serve` of ``service`` on the loopback ``port``, with this interpreter."""
    return [sys.executable, "-m", "bentoml", "serve", service,
            "--host", HOST, "--port", str(port)]  # fmt: skip


def serve_env(
    home: Path | None = None, tag: str | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for `bentoml serve` (``base``, default this process's): offline, no
    usage tracking; ``home`` sets BENTOML_HOME and ``tag`` STANCE_MODEL_TAG."""
    env = {**(os.environ if base is None else base)}
    env.update(BENTOML_DO_NOT_TRACK="True", HF_HUB_OFFLINE="1")
    if home is not None:
        env["BENTOML_HOME"] = str(home)
    if tag is not None:
        env["STANCE_MODEL_TAG"] = tag
    return env


def local_url(port: int) -> str:
    """The base URL of a server started here on ``port``."""
    return f"http://{HOST}:{port}"


def is_ready(url: str, path: str = READY_PATH, timeout: float = 2.0) -> bool:
    """True when GET ``url + path`` answers 200; False when refused, hung or other status."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        connection = kind(parts.hostname, parts.port, timeout=timeout)
        try:
            connection.request("GET", parts.path.rstrip("/") + path)
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except (OSError, http.client.HTTPException):
        # The socket is bound before the worker is up: early probes hang or are refused.
        return False


def log_tail(log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    return text[-LOG_TAIL_CHARS:]


def wait_ready(
    url: str,
    timeout_s: float,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
    path: str = READY_PATH,
) -> None:
    """Poll ``url + path`` until it answers 200; ServerFailed when ``process`` exits
    first or ``timeout_s`` passes (with the tail of ``log_path``, if given)."""
    deadline = time.monotonic() + timeout_s

    def failed(reason: str) -> ServerFailed:
        tail = f"\nlog {log_path}:\n{log_tail(log_path)}" if log_path is not None else ""
        return ServerFailed(reason + tail)

    while True:
        if process is not None and process.poll() is not None:
            raise failed(f"server exited with {process.returncode} during start-up")
        if is_ready(url, path):
            return
        if time.monotonic() > deadline:
            raise failed(f"{url}{path} not ready in {timeout_s:g} s")
        time.sleep(0.5)


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM the process group the server leads, SIGKILL it if it does not stop in
    time, and kill workers left behind by a leader that exited on its own."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def start(
    command: Sequence[str],
    url: str,
    log_path: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    path: str = READY_PATH,
) -> subprocess.Popen:
    """Start ``command`` in its own session, output appended to ``log_path``, and wait
    until ``url + path`` is ready; on failure the process group is stopped and
    ServerFailed raised."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so stop() reaches the workers
        )
    try:
        wait_ready(url, timeout_s, process, log_path, path)
    except BaseException:
        stop(process)
        raise
    return process


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[subprocess.Popen]:
    """start() with the same arguments, yield the process, stop() it afterwards
    whatever happened."""
    process = start(*args, **kwargs)
    try:
        yield process
    finally:
        stop(process)


@contextlib.contextmanager
def bentoml_serve(
    log_prefix: str, timeout_s: float, cwd: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`bentoml serve` of the service on a free loopback port, in this process's
    environment made offline (serve_env), output to a new temporary log file named
    ``log_prefix...log`` (kept for reading afterwards): yields (base URL, process, log)."""
    port = free_port()
    handle, name = tempfile.mkstemp(prefix=log_prefix, suffix=".log")
    os.close(handle)  # start() opens the file itself
    log = Path(name)
    with running(serve_command(port), local_url(port), log, timeout_s, serve_env(), cwd) as process:
        yield local_url(port), process, log
