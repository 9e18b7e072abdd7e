"""MLflow set-up shared by the stages: embedded by default, a server when asked.

With MLFLOW_TRACKING_URI unset, runs go to a SQLite file and a local artifact folder
in the working directory (both gitignored), so no server is needed. Setting
MLFLOW_TRACKING_URI points every stage at a tracking server instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import mlflow

from pipeline.config import StrictParams, require

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
RUN_FILE = "mlflow_run.json"  # written by `train` beside the model: which run to resume
LOGGED_MODEL_NAME = "model"  # the pyfunc's name inside each training run
ONNX_ARTIFACT_DIR = "onnx"  # the servable ONNX directory `export` logs to each training run
CHAMPION = "champion"  # the registry alias of the served model


class MlflowParams(StrictParams):
    experiment: str
    registered_model: str

    def check(self) -> None:
        require(bool(self.experiment.strip()), "mlflow.experiment", "must not be empty")
        require(bool(self.registered_model.strip()), "mlflow.registered_model", "must not be empty")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(LOCAL_DB).resolve()}"


def setup(experiment: str) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists; its id."""
    # Read before set_tracking_uri: MLflow exports MLFLOW_TRACKING_URI when it is set.
    local = "MLFLOW_TRACKING_URI" not in os.environ
    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    artifact_location = None
    if local:
        artifact_location = Path(LOCAL_ARTIFACTS).resolve().as_uri()
    experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def file_md5(path: Path) -> str:
    """The md5 DVC 3 records for a single file, so MLflow and dvc.lock name the same data."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_run_file(directory: Path, run_id: str, experiment_id: str) -> None:
    payload = {"run_id": run_id, "experiment_id": experiment_id}
    (directory / RUN_FILE).write_text(json.dumps(payload, indent=2) + "\n")


def logged_model_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{LOGGED_MODEL_NAME}"


def onnx_artifact_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{ONNX_ARTIFACT_DIR}"


def read_run_id(directory: Path) -> str:
    return json.loads((directory / RUN_FILE).read_text())["run_id"]
