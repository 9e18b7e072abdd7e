"""Which model scores: a registry alias or version, an MLflow model URI, or a local directory.

``--model`` accepts
- nothing: the registry alias ``champion`` of the registered model;
- a number: that registry version; any other word: that registry alias;
- ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: another registered model;
- a path to a stance model directory (``inference.json`` beside the weights, as `train`
  writes it) or to a downloaded MLflow pyfunc directory (``MLmodel``).

The registry is the tracking store of the pipeline (``pipeline.tracking.tracking_uri``:
./mlflow.db by default, or $MLFLOW_TRACKING_URI). A registry model is pinned to its
version once, so an alias that moves mid-run cannot mix two models in one output.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from batch.outputs import ModelInfo
from pipeline import tracking
from pipeline.inference import INFERENCE_CONFIG

logger = logging.getLogger(__name__)

MLMODEL_FILE = "MLmodel"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_ALIAS = re.compile(r"^[A-Za-z][\w-]*$")


class ModelError(LookupError):
    """The requested model cannot be found; the message says where it was looked for."""


@dataclass(frozen=True)
class ModelChoice:
    """A resolved model: its stance model directory, what to call it in the output, and
    the MLflow model URI Spark's UDF loads (None for a bare model directory)."""

    model_dir: Path
    info: ModelInfo
    pyfunc_uri: str | None


def find_model_dir(pyfunc_dir: Path) -> Path:
    """The stance model directory inside a logged pyfunc (``artifacts/<name>/``)."""
    found = {p.parent for p in Path(pyfunc_dir).glob(f"artifacts/*/{INFERENCE_CONFIG}")}
    if len(found) != 1:
        raise ModelError(
            f"{pyfunc_dir}: expected one model directory with {INFERENCE_CONFIG} under "
            f"artifacts/, found {sorted(map(str, found))}"
        )
    return found.pop()


def _local(path: Path) -> ModelChoice:
    path = path.resolve()
    if (path / INFERENCE_CONFIG).is_file():
        run_file = path / tracking.RUN_FILE
        run_id = json.loads(run_file.read_text())["run_id"] if run_file.is_file() else None
        return ModelChoice(path, ModelInfo(str(path), None, run_id), None)
    if (path / MLMODEL_FILE).is_file():
        import yaml

        run_id = yaml.safe_load((path / MLMODEL_FILE).read_text()).get("run_id")
        return ModelChoice(find_model_dir(path), ModelInfo(str(path), None, run_id), str(path))
    raise ModelError(
        f"{path} is neither a stance model directory ({INFERENCE_CONFIG}) "
        f"nor an MLflow model directory ({MLMODEL_FILE})"
    )


def _registry(name: str, alias: str | None, version: str | None, cache: Path) -> ModelChoice:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking.tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias is not None
            else client.get_model_version(name, version)
        )
    except MlflowException as error:
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise ModelError(
            f"no {what} of registered model {name!r} in the tracking store {uri} "
            f"({error.message.splitlines()[0]}): run the main job (`make all`) first, "
            "or pass --model with another alias, version or a model directory"
        ) from None
    pinned = f"models:/{name}/{found.version}"
    logger.info("model: %s -> %s (run %s)", alias or version, pinned, found.run_id)
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=cache))
    info = ModelInfo(name, str(found.version), found.run_id)
    return ModelChoice(find_model_dir(downloaded), info, pinned)


def resolve_model(
    spec: str | None, registered_model: str, cache: Path | None = None
) -> ModelChoice:
    """The model ``spec`` names (see the module doc); registry downloads go to ``cache``."""
    spec = (spec or tracking.CHAMPION).strip()
    cache = cache or Path(tempfile.mkdtemp(prefix="stance-watch-model-"))
    if Path(spec).is_dir():
        return _local(Path(spec))
    uri = _URI.match(spec)
    if uri:
        return _registry(uri["name"], uri["alias"], uri["version"], cache)
    if spec.isdigit():
        return _registry(registered_model, None, spec, cache)
    if _ALIAS.match(spec):
        return _registry(registered_model, spec, None, cache)
    raise ModelError(
        f"--model {spec!r}: not a directory, a registry version or alias, "
        "or a models:/NAME@ALIAS or models:/NAME/VERSION URI"
    )
