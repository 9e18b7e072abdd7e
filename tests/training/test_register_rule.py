"""The champion/challenger rule of the register stage, as a function and end to end.

End to end: candidate runs with a small random-weight stance model and a chosen
seed_macro_f1 go through training.register.main against a real MLflow SQLite store
and a private BentoML store, one after another.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from training.register import CHALLENGER, CHAMPION, decide_alias

REGISTERED = "stance-classifier"


@pytest.mark.parametrize(
    ("new", "current", "expected"),
    [
        (0.1, None, CHAMPION),  # no champion yet
        (0.0, None, CHAMPION),
        (0.8, 0.7, CHAMPION),  # better
        (0.7, 0.7, CHAMPION),  # equal: the newer model wins ties
        (0.69, 0.7, CHALLENGER),  # worse
        (0.0, 1.0, CHALLENGER),
    ],
)
def test_decide_alias(new, current, expected):
    assert decide_alias(new, current) == expected


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    """A 2-layer, 32-wide BERT stance model in the layout `train` saves."""
    return make_tiny_model(tmp_path_factory.mktemp("small-model") / "stance")


@pytest.fixture
def project(tiny_project: Path, tiny):
    """The tiny project with the tracking store and a private BentoML store in place."""
    from pipeline import tracking

    tracking.setup("stance-classifier")
    with tiny.bentoml_store_at(tiny_project / "bentoml"):
        yield tiny_project


def candidate(root: Path, small_model: Path, label: str, score: float) -> tuple[Path, str]:
    """A model dir named like the real one, logged as a run with seed_macro_f1 = score."""
    import mlflow

    from pipeline import tracking
    from pipeline.mlflow_model import MODEL_DIR_ARTIFACT, StancePyfunc

    model_dir = root / "candidates" / label / "stance"
    shutil.copytree(small_model, model_dir)
    (model_dir / "candidate.txt").write_text(label)
    with mlflow.start_run(run_name=label) as run:
        mlflow.log_param("train_data_md5", f"md5-of-{label}")
        mlflow.log_param("train.base_model", "small-test-model")
        mlflow.log_metric("seed_macro_f1", score)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=StancePyfunc(),
            artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            pip_requirements=["mlflow"],
        )
        tracking.write_run_file(model_dir, run.info.run_id, run.info.experiment_id)
    return model_dir, run.info.run_id


def register(model_dir: Path, label: str) -> dict:
    """register, then the hand-off into the BentoML store: both records, merged."""
    from serving import handoff
    from training import register

    out = Path("metrics") / f"registration_{label}.json"
    register.main(["--model-dir", str(model_dir), "--out", str(out)])
    handed = Path("metrics") / f"handoff_{label}.json"
    handoff.main(["--registration", str(out), "--model-dir", str(model_dir), "--out", str(handed)])
    return {**json.loads(out.read_text()), **json.loads(handed.read_text())}


def stored(tag: str) -> tuple[str, dict]:
    """The candidate label of the weights stored under ``tag`` and their metadata."""
    from serving.store import load_model

    path, metadata = load_model(tag)
    return (path / "candidate.txt").read_text(), metadata


def test_champion_moves_only_on_higher_or_equal_score(project, small_model):
    from mlflow import MlflowClient

    client = MlflowClient()

    def alias_version(alias: str) -> str:
        return str(client.get_model_version_by_alias(REGISTERED, alias).version)

    # First version: no champion yet.
    a_dir, a_run = candidate(project, small_model, "a", 0.50)
    record = register(a_dir, "a")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "1")
    assert alias_version(CHAMPION) == "1"
    label, metadata = stored(record["bento_tag"])
    assert label == "a" and metadata["mlflow_run_id"] == a_run
    assert metadata["registry_version"] == "1" and metadata["training_data_md5"] == "md5-of-a"

    # Lower score: challenger; champion stays, and the store gets the champion's weights.
    b_dir, b_run = candidate(project, small_model, "b", 0.40)
    record = register(b_dir, "b")
    assert (record["alias"], str(record["version"])) == (CHALLENGER, "2")
    assert str(record["champion_version"]) == "1"
    assert alias_version(CHAMPION) == "1"
    assert alias_version(CHALLENGER) == "2"
    assert client.get_model_version_by_alias(REGISTERED, CHALLENGER).run_id == b_run
    label, metadata = stored(record["bento_tag"])
    assert label == "a", "the store must keep serving the champion, not the losing model"
    assert metadata["mlflow_run_id"] == a_run and metadata["registry_version"] == "1"
    assert metadata["training_data_md5"] == "md5-of-a"

    # Equal score: the newer model takes over.
    c_dir, c_run = candidate(project, small_model, "c", 0.50)
    record = register(c_dir, "c")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "3")
    assert alias_version(CHAMPION) == "3"
    label, metadata = stored(record["bento_tag"])
    assert label == "c" and metadata["mlflow_run_id"] == c_run
    assert metadata["registry_version"] == "3"

    # Higher score: champion moves again.
    d_dir, d_run = candidate(project, small_model, "d", 0.90)
    record = register(d_dir, "d")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "4")
    assert client.get_model_version_by_alias(REGISTERED, CHAMPION).run_id == d_run
    label, metadata = stored("stance-classifier:latest")
    assert label == "d" and metadata["registry_version"] == "4"

    import bentoml

    assert len(bentoml.models.list("stance-classifier")) == 4
