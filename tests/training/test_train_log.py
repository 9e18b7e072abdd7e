"""What train logs after training, saved when the server is gone and finished by register.

Against the embedded store (no server): the server-lost path itself is tested against a
real `mlflow server` in test_mlflow_server.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.train_log import COMPLETED, COMPLETED_TAG, TrainLog, finish_pending, log_to_run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_mlflow) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pending_log(run_id: str, *steps: str) -> TrainLog:
    return TrainLog(
        run_id=run_id,
        metrics={"validation_macro_f1": 0.5, "temperature": 1.25},
        epochs={1: {"train_loss": 1.5, "validation_macro_f1": 0.25}, 2: {"train_loss": 1.0}},
        artifacts=[],
        example=("Tokyo said it would not back down.", "japan"),
        unlogged=steps,
        reason="connection refused",
    )


def new_run() -> str:
    import mlflow

    from pipeline import tracking

    tracking.setup("stance-classifier")
    with mlflow.start_run(run_name="fine-tune") as run:
        return run.info.run_id


def test_pending_log_round_trips_beside_the_model(tmp_path: Path) -> None:
    log = pending_log("r1", "metrics", "model", "finish")
    assert TrainLog.load(tmp_path) is None
    log.save(tmp_path)
    assert TrainLog.load(tmp_path) == log


def test_register_logs_what_train_left_once(project: Path) -> None:
    from mlflow import MlflowClient

    run_id = new_run()
    pending_log(run_id, "epochs", "metrics", "finish").save(project)

    assert finish_pending(project) is True
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.metrics["temperature"] == 1.25
    assert run.data.tags[COMPLETED_TAG] == COMPLETED
    assert run.info.status == "FINISHED"
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "train_loss")]
    assert history == [(1, 1.5), (2, 1.0)]

    assert finish_pending(project) is False  # done before: nothing logged twice
    assert len(client.get_metric_history(run_id, "train_loss")) == 2


def test_nothing_pending_is_nothing_to_do(project: Path) -> None:
    assert finish_pending(project) is False
    pending_log("r1").model_copy(update={"unlogged": ()}).save(project)
    assert finish_pending(project) is False


def test_an_error_that_is_not_a_lost_server_is_raised(project: Path) -> None:
    import mlflow

    run_id = new_run()
    mlflow.start_run(run_id=run_id)
    try:
        with pytest.raises(FileNotFoundError):
            log_to_run(pending_log(run_id, "model"), project / "no-such-model")
    finally:
        mlflow.end_run()
