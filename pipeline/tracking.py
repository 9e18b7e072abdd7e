"""MLflow set-up shared by the stages: embedded by default, a server when asked.

With MLFLOW_TRACKING_URI unset, runs go to a SQLite file and a local artifact folder
in the project root (both gitignored), so no server is needed. Setting
MLFLOW_TRACKING_URI points every stage at a tracking server instead; ``setup`` then
probes it first, so a server that cannot be reached fails the stage in seconds with its
URI in the message (``TrackingUnavailable``), before the stage does any work, and
MLflow's own HTTP retries are cut from minutes to seconds (``HTTP_DEFAULTS``).

Also what every run records the same way: its tags (git commit, the DVC experiment
it belongs to), the params.yaml values of the stages that touch it, and the data it
was trained or evaluated on as MLflow datasets.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow

from pipeline.atomic import write_json
from pipeline.config import StrictParams, require
from pipeline.lineage import file_md5, short

logger = logging.getLogger(__name__)

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
RUN_FILE = "mlflow_run.json"  # written by `train` beside the model: which run to resume
# Beside the model when `train` could not log everything (training.train_log).
PENDING_FILE = "mlflow_pending.json"
LOGGED_MODEL_NAME = "model"  # the pyfunc's name inside each training run
ONNX_ARTIFACT_DIR = "onnx"  # the servable ONNX directory `export` logs to each training run
CHAMPION = "champion"  # the registry alias of the served model
# `dvc exp run` gives every stage command the experiment's name (and DVC_ROOT, the
# workspace, also when the experiment runs in a temporary copy).
DVC_EXP_ENV, DVC_ROOT_ENV = "DVC_EXP_NAME", "DVC_ROOT"
EXP_TAG = "dvc_exp_name"  # the run tag (and registry version tag) naming the experiment
GIT_COMMIT_TAG = "git_commit"
RERUN_TAG_PREFIX = "rerun."  # a changed param of a stage re-run on an existing run
# MLflow retries a failed HTTP request 7 times with a backoff factor of 2 and waits up to
# 120 s for each answer: minutes before a stage learns that its server is gone. The
# stages use these instead, unless the environment sets them.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
PROBE_TIMEOUT_S = 5  # for the server's first answer to the probe


class TrackingUnavailable(RuntimeError):
    """The configured MLflow tracking server cannot be reached; the message names it."""


class MlflowParams(StrictParams):
    experiment: str
    registered_model: str

    def check(self) -> None:
        require(bool(self.experiment.strip()), "mlflow.experiment", "must not be empty")
        require(bool(self.registered_model.strip()), "mlflow.registered_model", "must not be empty")


def project_root() -> Path:
    """Where the local store lives: the DVC workspace when a stage runs under DVC
    (DVC_ROOT, which stays the workspace for `dvc exp run --temp` and queued
    experiments), else the working directory."""
    return Path(os.environ.get(DVC_ROOT_ENV) or ".").resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / LOCAL_DB}"


def server_uri() -> str | None:
    """The tracking server's URI (MLFLOW_TRACKING_URI, http or https), if one is set."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri if urlsplit(uri).scheme in ("http", "https") else None


def redacted(uri: str) -> str:
    """The URI without a user name or password in it (for messages)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(
        parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    )


def server_label() -> str:
    return (
        f"MLflow tracking server {redacted(server_uri() or tracking_uri())} (MLFLOW_TRACKING_URI)"
    )


def server_unreachable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the configured tracking server cannot be reached now; None when it answers
    (or when no server is configured). Any answer below HTTP 500 counts as an answer:
    a refused login is MLflow's to report, not a missing server."""
    import requests

    uri = server_uri()
    if uri is None:
        return None
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.ConnectionError as error:
        text = str(error)
        for known in ("Connection refused", "Name or service not known", "No route to host"):
            if known in text:
                return known.lower()
        return f"cannot connect: {text}"
    except requests.RequestException as error:
        return f"{type(error).__name__}: {error}"
    if response.status_code >= 500:
        return f"HTTP {response.status_code} from /health"
    return None


def require_server() -> None:
    """Raise TrackingUnavailable, naming the URI, if the configured server does not answer."""
    reason = server_unreachable()
    if reason is not None:
        raise TrackingUnavailable(
            f"{server_label()} is unreachable: {reason}. Start it (or point "
            f"MLFLOW_TRACKING_URI at a running server, or unset it to log to the embedded "
            f"store {LOCAL_DB}) and run the stage again."
        )


def setup(experiment: str) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists; its id.

    With a tracking server configured, probe it first (TrackingUnavailable, in seconds,
    when it does not answer) and use ``HTTP_DEFAULTS`` for MLflow's retries.
    """
    # Read before set_tracking_uri: MLflow exports MLFLOW_TRACKING_URI when it is set.
    local = "MLFLOW_TRACKING_URI" not in os.environ
    if server_uri() is not None:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        require_server()
    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    artifact_location = None
    if local:
        artifact_location = (project_root() / LOCAL_ARTIFACTS).as_uri()
    experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_run_file(directory: Path, run_id: str, experiment_id: str) -> None:
    write_json(directory / RUN_FILE, {"run_id": run_id, "experiment_id": experiment_id})


def logged_model_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{LOGGED_MODEL_NAME}"


def onnx_artifact_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{ONNX_ARTIFACT_DIR}"


def read_run_id(directory: Path) -> str:
    return json.loads((directory / RUN_FILE).read_text())["run_id"]


def dvc_experiment() -> str | None:
    """The DVC experiment this process runs in (`dvc exp run`), if any."""
    return os.environ.get(DVC_EXP_ENV, "").strip() or None


def run_tags(model_type: str) -> dict[str, str]:
    """Tags of a new run: the model type, the git commit, and the DVC experiment name
    when the stage runs under `dvc exp run` (so `dvc exp show` and MLflow name the same
    runs)."""
    tags = {"model_type": model_type, GIT_COMMIT_TAG: git_commit()}
    experiment = dvc_experiment()
    if experiment:
        tags[EXP_TAG] = experiment
    return tags


def log_params(params: dict[str, Any]) -> None:
    """Log params to the active run, once each.

    A later stage (evaluate, behaviour, register) re-run on the same training run after
    its params.yaml section changed cannot overwrite an MLflow param; the new value
    goes to the tag ``rerun.<key>`` instead, with a warning.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_params needs an active MLflow run")
    logged = mlflow.get_run(run.info.run_id).data.params
    new, changed = {}, {}
    for key, value in params.items():
        if key not in logged:
            new[key] = value
        elif logged[key] != str(value):
            changed[key] = value
    if new:
        mlflow.log_params(new)
    for key, value in changed.items():
        logger.warning(
            "run %s already has param %s=%s; the re-run's value %s goes to tag %s%s",
            run.info.run_id, key, logged[key], value, RERUN_TAG_PREFIX, key,
        )  # fmt: skip
        mlflow.set_tag(RERUN_TAG_PREFIX + key, str(value))


def dataset_name(split: str, corpus_md5: str | None) -> str:
    """``train@corpus-1a2b3c4d``: the split and the corpus version it came from."""
    return f"{split}@corpus-{short(corpus_md5)}" if corpus_md5 else split


def log_dataset(
    path: Path, records: list[dict], context: str, split: str, corpus_md5: str | None = None
) -> None:
    """Log the labelled file at ``path`` (its rows as ``records``) as an MLflow dataset
    input of the active run: named by split and corpus version, digest = the file's md5
    (what dvc.lock records), source = the path, ``context`` training/validation/test."""
    import pandas as pd
    from mlflow.data.sources import LocalArtifactDatasetSource

    dataset = mlflow.data.from_pandas(
        pd.DataFrame.from_records(records),
        source=LocalArtifactDatasetSource(Path(path).as_posix()),
        targets="stance",
        name=dataset_name(split, corpus_md5),
        digest=file_md5(path),
    )
    tags = {"corpus_md5": corpus_md5} if corpus_md5 else None
    mlflow.log_input(dataset, context=context, tags=tags)
