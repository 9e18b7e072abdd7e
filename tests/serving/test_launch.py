"""serving.launch against real processes: a stdlib HTTP server, one that exits, one that
never answers, and a server with a worker in its process group."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from serving import launch


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", launch.HOST]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_start_waits_for_ready_and_stop_ends_the_process(tmp_path: Path):
    port = launch.free_port()
    url = launch.local_url(port)
    assert not launch.is_ready(url, "/")  # nothing listens yet
    with launch.running(http_server(port), url, tmp_path / "log", 30, cwd=tmp_path, path="/") as p:
        assert p.poll() is None
        assert launch.is_ready(url, "/")
        assert launch.is_ready(url + "/", "/")  # a base URL given with a trailing slash
        assert not launch.is_ready(url, "/no-such-page")  # 404 is not ready
    assert p.poll() is not None
    assert not launch.is_ready(url, "/")


def test_a_server_that_exits_fails_with_its_code_and_log(tmp_path: Path):
    command = [sys.executable, "-c", "import sys; print('cannot load the model'); sys.exit(3)"]
    with pytest.raises(launch.ServerFailed, match="exited with 3") as failure:
        launch.start(command, launch.local_url(launch.free_port()), tmp_path / "log", 30)
    assert "cannot load the model" in str(failure.value)
    assert str(tmp_path / "log") in str(failure.value)


def test_a_server_never_ready_is_stopped_and_fails(tmp_path: Path):
    marker = f"never-ready-{time.monotonic_ns()}"
    command = [sys.executable, "-c", "import time, sys; time.sleep(300)", marker]
    url = launch.local_url(launch.free_port())
    with pytest.raises(launch.ServerFailed, match=r"not ready in 1 s"):
        launch.start(command, url, tmp_path / "log", timeout_s=1)
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    assert all(gone(p.pid) for p in left), "the server outlived its failed start"


def test_stop_reaches_workers_in_the_process_group(tmp_path: Path):
    port = launch.free_port()
    child_pid = tmp_path / "child.pid"
    # the "arbiter" starts a worker, then becomes the HTTP server (exec keeps the pid)
    script = f"sleep 300 & echo $! > {child_pid}; exec {' '.join(http_server(port))}"
    url = launch.local_url(port)
    with launch.running(["bash", "-c", script], url, tmp_path / "log", 30, path="/") as process:
        worker = int(child_pid.read_text())
        assert not gone(worker)
    assert gone(process.pid)
    deadline = time.monotonic() + 10
    while not gone(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(worker), "a worker of the stopped server is still running"


def test_serve_env_is_offline_and_sets_home_and_tag(tmp_path: Path):
    env = launch.serve_env(tmp_path, "stance-classifier:abc", base={"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "BENTOML_DO_NOT_TRACK": "True",
        "HF_HUB_OFFLINE": "1",
        "BENTOML_HOME": str(tmp_path),
        "STANCE_MODEL_TAG": "stance-classifier:abc",
    }
    assert launch.serve_env(base={"STANCE_MODEL_TAG": "x:1"})["STANCE_MODEL_TAG"] == "x:1"
    command = launch.serve_command(8123)
    assert command[-4:] == ["--host", "127.0.0.1", "--port", "8123"]
    assert launch.SERVICE in command
