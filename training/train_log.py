"""What `train` logs to its MLflow run after training, and how `register` finishes it
when the tracking server went away during training.

`train` sets up tracking before training (``pipeline.tracking.setup`` probes a
configured server), so a server that is down costs no training time: the stage fails
in seconds, naming the URI. The run is created then, and its id is written beside the
model (``mlflow_run.json``) as always.

Everything logged after training is one ``TrainLog``: the per-epoch figures, the
validation metrics, the reliability diagram and the model (a pyfunc). If the server
cannot be reached at that point, training is not lost: the model directory is already
complete on disk, the steps not logged are saved beside it (``mlflow_pending.json``),
and the stage ends with a warning naming the URI. `register`, the stage that needs the
logged model, logs those steps to the same run first (``finish_pending``), then
registers; a re-run of `dvc repro` after the server is back therefore registers the
model without retraining. The run tag ``train_log`` = ``completed by register`` says it
was done, so a later re-run of `register` does not log them twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import mlflow
from mlflow.models import infer_signature
from pydantic import BaseModel, ConfigDict

from pipeline import tracking
from pipeline.atomic import write_text
from pipeline.mlflow_model import MODEL_DIR_ARTIFACT, StancePyfunc, example_frames

logger = logging.getLogger(__name__)

PENDING_FILE = tracking.PENDING_FILE
# In order; the per-epoch figures before the final metrics, as they were produced.
STEPS = ("epochs", "metrics", "artifacts", "model", "finish")
STEP_NAMES = {
    "epochs": "per-epoch figures",
    "metrics": "validation metrics",
    "artifacts": "reliability diagram",
    "model": "logged model",
    "finish": "finished status",
}
COMPLETED_TAG, COMPLETED = "train_log", "completed by register"
# Pinned into the logged model so `mlflow models serve` or a Spark UDF rebuilds this
# environment, and never resolves an unpinned torch (a multi-GB CUDA build).
RUNTIME_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "mlflow",
    "pysbd",
    "pyyaml",
    "pandas",
    "numpy",
)


class TrainLog(BaseModel):
    """What train logs after training; ``unlogged``: the steps still to do, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    metrics: dict[str, float]
    epochs: dict[int, dict[str, float]]  # {epoch: {metric: value}}, logged with step=epoch
    artifacts: list[str]  # files logged to the run's root (paths from the project root)
    example: tuple[str, str]  # (sentence, actor): the logged model's input example
    unlogged: tuple[str, ...] = STEPS
    reason: str | None = None  # why the steps were not logged

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / PENDING_FILE
        write_text(path, self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> TrainLog | None:
        path = Path(model_dir) / PENDING_FILE
        if not path.is_file():
            return None
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def describe(steps: tuple[str, ...] | list[str]) -> str:
    """``per-epoch figures, validation metrics`` for (epochs, metrics)."""
    return ", ".join(STEP_NAMES.get(step, step) for step in steps)


def pip_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in RUNTIME_PACKAGES]


def log_model(model_dir: Path, sentence: str, actor: str) -> None:
    """The model directory as a pyfunc in the active run (without the tracking files
    beside the weights: what is logged is the same whoever logs it)."""
    example_input, example_output = example_frames(sentence, actor)
    with tempfile.TemporaryDirectory(prefix="stance-logged-") as scratch:
        # Hard links, under the directory's own name (the pyfunc keeps that name).
        copy = Path(scratch) / Path(model_dir).name
        copy.mkdir()
        for path in Path(model_dir).iterdir():
            if path.is_file() and path.name not in (tracking.RUN_FILE, PENDING_FILE):
                try:
                    os.link(path, copy / path.name)
                except OSError:  # another filesystem
                    shutil.copy2(path, copy / path.name)
        mlflow.pyfunc.log_model(
            name=tracking.LOGGED_MODEL_NAME,
            python_model=StancePyfunc(),
            artifacts={MODEL_DIR_ARTIFACT: str(copy)},
            code_paths=[str(Path(__file__).resolve().parents[1] / "pipeline")],
            signature=infer_signature(example_input, example_output),
            input_example=example_input,
            pip_requirements=pip_requirements(),
        )


def _log_step(log: TrainLog, step: str, model_dir: Path) -> None:
    if step == "epochs":
        for epoch, values in sorted(log.epochs.items()):
            mlflow.log_metrics(values, step=epoch)
    elif step == "metrics":
        mlflow.log_metrics(log.metrics)
    elif step == "artifacts":
        for artifact in log.artifacts:
            if Path(artifact).is_file():
                mlflow.log_artifact(artifact)
            else:
                logger.warning("%s is gone: not logged to run %s", artifact, log.run_id)
    elif step == "model":
        log_model(model_dir, *log.example)
    elif step == "finish":
        mlflow.end_run()
    else:
        raise ValueError(f"unknown train log step {step!r}")


def log_to_run(log: TrainLog, model_dir: Path) -> TrainLog:
    """Do ``log.unlogged`` in order in the active run (the last step ends it); the log
    of what is left. A tracking server that stops answering stops it there (the run is
    left without talking to the server); any other error is raised."""
    remaining = list(log.unlogged)
    while remaining:
        try:
            _log_step(log, remaining[0], model_dir)
        except Exception:
            reason = tracking.server_unreachable()
            if reason is None:
                raise
            while mlflow.active_run() is not None:  # forget the run; the server is gone
                with contextlib.suppress(Exception):
                    mlflow.end_run()
            return log.model_copy(update={"unlogged": tuple(remaining), "reason": reason})
        remaining.pop(0)
    return log.model_copy(update={"unlogged": (), "reason": None})


def finish_pending(model_dir: Path) -> bool:
    """Log what `train` could not (``mlflow_pending.json`` beside the model) to its run,
    unless that was done before; True if something was logged now.

    Needs tracking set up (``pipeline.tracking.setup``). A server that stops answering
    again raises ``tracking.TrackingUnavailable``.
    """
    pending = TrainLog.load(model_dir)
    if pending is None or not pending.unlogged:
        return False
    run = mlflow.MlflowClient().get_run(pending.run_id)
    if run.data.tags.get(COMPLETED_TAG) == COMPLETED:
        return False
    logger.info(
        "train could not log %s to run %s (%s): logging them now",
        describe(pending.unlogged), pending.run_id, pending.reason,
    )  # fmt: skip
    mlflow.start_run(run_id=pending.run_id)
    left = log_to_run(pending, model_dir)
    if left.unlogged:
        raise tracking.TrackingUnavailable(
            f"{tracking.server_label()} stopped answering while logging train's "
            f"{describe(left.unlogged)} to run {pending.run_id} ({left.reason}); "
            "run the stage again when it is back"
        )
    mlflow.MlflowClient().set_tag(pending.run_id, COMPLETED_TAG, COMPLETED)
    return True
