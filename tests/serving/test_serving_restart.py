"""`bentoml serve` killed with SIGKILL while requests are in flight, then restarted.

The server process is started without --host, so its default bind address is checked
on the way. Killed with SIGKILL, a server cannot stop its workers; they must not
outlive it (serving.service.die_with_the_server), and a server started again on the
same port must serve, alone.
"""

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import requests

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8
SUCCESSES_BEFORE_KILL = 40
TIMEOUT = 60


def listeners(root: psutil.Process, port: int) -> set[tuple[int, str]]:
    """(pid, address) of every process of ``root``'s tree listening on ``port``."""
    found = set()
    for process in [root, *root.children(recursive=True)]:
        for connection in process.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                found.add((process.pid, connection.laddr.ip))
    return found


class Load:
    """CLIENTS threads posting /classify and /score until stopped; every outcome kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)]

    def client(self, number: int) -> None:
        round_ = 0
        while not self.stop.is_set():
            round_ += 1
            if round_ % 2:
                items = [
                    {"sentence": f"Tokyo said on day {i} that client {number} was heard.",
                     "actor": "japan"}
                    for i in range(1 + round_ % 24)
                ]  # fmt: skip
                path, body = "/classify", {"items": items}
            else:
                text = f"Beijing protested on day {round_}. Washington urged calm again."
                path, body = "/score", {"text": text}
            try:
                status = str(requests.post(self.url + path, json=body, timeout=TIMEOUT).status_code)
            except requests.ConnectionError:
                status = "connection error"
                time.sleep(0.05)
            self.outcomes.append((time.monotonic(), status))

    def successes(self) -> int:
        return sum(status == "200" for _, status in self.outcomes)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT + 10)


def test_sigkill_mid_load_leaves_no_worker_and_a_restart_serves(
    served_home: Path, servers, tmp_path: Path, capsys
) -> None:
    port = servers.free_port()
    command = servers.serve_command(port)
    host = command.index("--host")
    del command[host : host + 2]  # the service's own default bind address
    env = servers.server_env(served_home, "stance-classifier:latest")
    url = f"http://127.0.0.1:{port}"

    first = servers.start_server(command, port, env, REPO_ROOT, tmp_path / "first.log")
    first_tree = [psutil.Process(first.pid), *psutil.Process(first.pid).children(recursive=True)]
    second = None
    try:
        bound = listeners(first_tree[0], port)
        assert bound and {address for _, address in bound} == {"127.0.0.1"}

        with Load(url) as load:
            deadline = time.monotonic() + 120
            while load.successes() < SUCCESSES_BEFORE_KILL and time.monotonic() < deadline:
                time.sleep(0.1)
            killed_at = time.monotonic()
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            _, alive = psutil.wait_procs(first_tree[1:], timeout=30)
        assert alive == [], f"workers outlived the killed server: {alive}"
        assert not any(thread.is_alive() for thread in load.threads)  # no client hangs

        before = Counter(status for at, status in load.outcomes if at < killed_at)
        after = Counter(status for at, status in load.outcomes if at >= killed_at)
        assert set(before) == {"200"} and before["200"] >= SUCCESSES_BEFORE_KILL
        # In flight at the kill: answered, or cut off (a worker may outlive the other by
        # an instant and answer 500); never left hanging.
        assert after["connection error"] > 0
        assert set(after) <= {"200", "500", "connection error"}
        with pytest.raises(requests.ConnectionError):  # nothing answers on the port
            requests.get(f"{url}/readyz", timeout=5)

        second = servers.start_server(command, port, env, REPO_ROOT, tmp_path / "second.log")
        second_tree = {p.pid for p in psutil.Process(second.pid).children(recursive=True)}
        assert {pid for pid, _ in listeners(psutil.Process(second.pid), port)} <= {
            second.pid, *second_tree,
        }  # fmt: skip
        item = {"sentence": "Tokyo restated its position after the restart.", "actor": "japan"}
        classify = requests.post(f"{url}/classify", json={"items": [item]}, timeout=TIMEOUT)
        score = requests.post(
            f"{url}/score", json={"text": "China protested. Japan replied."}, timeout=TIMEOUT
        )
        assert classify.status_code == score.status_code == 200
        assert classify.json()[0]["actor"] == "japan"
        with capsys.disabled():
            print(f"\nbefore SIGKILL: {dict(before)}; in flight or after: {dict(after)}")
    finally:
        if second is not None:
            servers.stop_process_group(second)
        for process in first_tree:  # only if the test failed with workers still alive
            if process.is_running():
                process.kill()
