"""The hand-off between training and serving: the local BentoML model store.

The `handoff` stage puts the champion's model directory (a Hugging Face save plus
inference.json) into the store under ``MODEL_NAME`` with its lineage as metadata; the
service reads it back by tag. The store lives under $BENTOML_HOME/models, as for any BentoML model.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import bentoml
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml.exceptions import NotFound

from pipeline.inference import INFERENCE_CONFIG

logger = logging.getLogger(__name__)

MODEL_NAME = "stance-classifier"  # the BentoML model name: written by handoff, read by service

# A directory without these cannot be loaded by StancePredictor; refuse it at save
# time rather than at the first request.
REQUIRED_FILES = ("config.json", INFERENCE_CONFIG)


class ModelNotInStoreError(LookupError):
    """The requested tag is not in the local BentoML store."""


def store_dir() -> Path:
    """Where BentoML keeps models in this process ($BENTOML_HOME/models)."""
    return Path(BentoMLContainer.model_store_dir.get())


def save_model(model_dir: Path, name: str, metadata: dict[str, Any]) -> str:
    """Copy ``model_dir`` into a new version of BentoML model ``name``; its tag string."""
    model_dir = Path(model_dir)
    missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir} is not a stance model directory: no {missing}")
    with bentoml.models.create(name=name, metadata=metadata) as model:
        # model.path is a staging directory; BentoML moves it into the store on exit.
        shutil.copytree(model_dir, model.path, dirs_exist_ok=True)
    tag = str(model.tag)
    logger.info("saved %s to the BentoML store at %s as %s", model_dir, store_dir(), tag)
    return tag


def _stored(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except NotFound as error:
        raise ModelNotInStoreError(
            f"no model '{tag}' in the BentoML store at {store_dir()}: run `dvc repro` first"
        ) from error


def load_model(tag: str) -> tuple[Path, dict[str, Any]]:
    """The stored model's directory and metadata; ModelNotInStoreError when absent."""
    model = _stored(tag)
    return Path(model.path), dict(model.info.metadata)


def resolve_tag(tag: str) -> str:
    """The exact ``name:version`` that ``tag`` (which may say ``latest``) points at."""
    return str(_stored(tag).tag)
