"""DVC stage `handoff`: put the registry's champion into the local BentoML model store.

Reads the registration record written by `register`. What is stored is the servable
ONNX directory that `export` wrote (``--onnx-dir``: ONNX Runtime, int8 unless
`export.serve_precision` says fp32; no torch weights, no pickle). When the new model
is the champion, its own directory is stored; when it lost, the champion's ONNX
directory is fetched back from its MLflow run (where `export` logged it), so the
store always serves the champion. A champion trained before the export stage
existed has no ONNX directory in its run: its torch weights (the logged pyfunc's
model directory) are stored instead, and the service reports backend torch. While
no version has passed register's promotion gate there is no champion, and nothing
is stored. The stored model carries its lineage (MLflow run id, registry name and
version, training data hash, base model, backend and precision) as metadata, and the
service loads it by tag ``serving.store.MODEL_NAME``.

The registry says what serves each version (tags ``backend``, ``precision``,
``model_size_mb``: pipeline.inference.model_dir_summary): the new version is tagged
with its own servable directory (the ONNX export, else its torch weights) whether or
not it won, and the champion with the directory actually stored.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from pipeline import tracking
from pipeline.atomic import write_json
from pipeline.config import load_section
from pipeline.inference import INFERENCE_CONFIG, InferenceConfig, model_dir_summary
from serving.store import MODEL_NAME, save_model

logger = logging.getLogger(__name__)


def logged_torch_dir(run_id: str) -> Path:
    """The torch model directory inside a run's logged pyfunc."""
    logged = Path(mlflow.artifacts.download_artifacts(tracking.logged_model_uri(run_id)))
    # The pyfunc keeps the model directory under artifacts/<its original folder name>.
    found = {p.parent for p in logged.glob(f"artifacts/*/{INFERENCE_CONFIG}")}
    if len(found) != 1:
        raise FileNotFoundError(
            f"champion run {run_id}: expected one model directory with "
            f"{INFERENCE_CONFIG} under {logged}/artifacts, found {sorted(map(str, found))}"
        )
    return found.pop()


def logged_onnx_dir(run_id: str) -> Path | None:
    """The servable ONNX directory `export` logged to the run; None if it has none."""
    artifacts = MlflowClient().list_artifacts(run_id, tracking.ONNX_ARTIFACT_DIR)
    if not any(a.path.endswith(f"/{INFERENCE_CONFIG}") for a in artifacts):
        return None
    return Path(mlflow.artifacts.download_artifacts(tracking.onnx_artifact_uri(run_id)))


def champion_model_dir(record: dict, model_dir: Path, onnx_dir: Path | None) -> Path:
    """The directory to serve: the champion's ONNX export if it has one, else its torch
    weights. The new model's own directories when it is the champion."""
    if record["champion_run_id"] == record["run_id"]:
        return onnx_dir if onnx_dir is not None else model_dir
    found = logged_onnx_dir(record["champion_run_id"])
    if found is not None:
        return found
    logger.warning(
        "champion run %s has no %s/ directory (trained before the export stage): "
        "storing its torch weights",
        record["champion_run_id"], tracking.ONNX_ARTIFACT_DIR,
    )  # fmt: skip
    return logged_torch_dir(record["champion_run_id"])


def tag_served(registered_model: str, version: str, model_dir: Path) -> None:
    """Tag a registry version with what serves it: backend, precision, model size."""
    client = MlflowClient()
    for key, value in model_dir_summary(model_dir).items():
        client.set_model_version_tag(registered_model, version, key, value)


def lineage(record: dict, model_dir: Path) -> dict:
    """What the service reports about the stored model (BentoML metadata values)."""
    params = MlflowClient().get_run(record["champion_run_id"]).data.params
    config = InferenceConfig.load(model_dir)
    return {
        "mlflow_run_id": record["champion_run_id"],
        "registry_name": record["registered_model"],
        "registry_version": str(record["champion_version"]),
        "alias": tracking.CHAMPION,
        "training_data_md5": params.get("train_data_md5", "unknown"),
        "base_model": params.get("train.base_model", "unknown"),
        "max_length": config.max_length,
        "backend": config.backend,
        "precision": config.precision,
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registration", type=Path, required=True, help="register's record")
    parser.add_argument("--model-dir", type=Path, required=True, help="the new model's dir")
    parser.add_argument(
        "--onnx-dir", type=Path, help="the new model's ONNX export (default: store torch)"
    )
    parser.add_argument("--out", type=Path, required=True, help="hand-off record (JSON)")
    args = parser.parse_args(argv)
    tracking_params = load_section("mlflow", tracking.MlflowParams)

    tracking.setup(tracking_params.experiment)  # an unreachable server fails before any work
    record = json.loads(args.registration.read_text(encoding="utf-8"))
    name = record["registered_model"]
    tag_served(name, str(record["version"]), args.onnx_dir or args.model_dir)
    if record["champion_version"] is None:  # no version has passed register's promotion gate
        logger.warning("no champion in the registry: nothing put into the BentoML store")
        write_json(args.out, {"bento_tag": None, "registry_version": None})
        return
    model_dir = champion_model_dir(record, args.model_dir, args.onnx_dir)
    tag = save_model(model_dir, MODEL_NAME, lineage(record, model_dir))
    tag_served(name, str(record["champion_version"]), model_dir)
    out = {"bento_tag": tag, "registry_version": str(record["champion_version"])}
    write_json(args.out, out)
    config = InferenceConfig.load(model_dir)
    logger.info(
        "BentoML store: %s (registry version %s, %s %s)",
        tag, record["champion_version"], config.backend, config.precision,
    )  # fmt: skip


if __name__ == "__main__":
    main()
