"""Fixtures for the batch tests: invented dated articles, a tiny model, a private registry.

The articles are our own sentences (no seed or dev-set text, no quotes of real people).
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTERED = "stance-classifier"

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}.items():
    os.environ.setdefault(_name, _value)

ARTICLES = [
    {
        "id": "a1",
        "date": "2025-11-10",
        "source": "Example Wire",
        "text": "Tokyo said its position on a Taiwan contingency had not changed.\n"
        "Beijing summoned the Japanese ambassador and demanded a retraction.\n"
        "The weather in the capital was mild.",
    },
    {
        "id": "a2",
        "date": "2025-11-11",
        "source": "Harbour Times",
        "text": "Washington urged both capitals to keep talking. "
        "China suspended group tours to Japan, and Taipei thanked Tokyo for its support.",
    },
    {
        "id": "a3",
        "date": "2025-11-11",
        "text": "A ministry statement said the talks would continue next week.",
    },
    {
        "id": "a4",
        "date": "2025-11-13T08:30:00+09:00",
        "source": "Example Wire",
        "url": "https://example.invalid/a4",
        "title": "Ferries resume",
        "text": "Seoul declined to take sides in the row between Japan and China.\n"
        "Chinese coast guard ships sailed near the disputed islands again.\n"
        "Japanese lawmakers asked the cabinet to soften its wording.",
    },
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path: Path, records: list[dict]) -> Path:
    import csv

    columns = ["id", "date", "source", "url", "title", "text"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in columns} for r in records)
    return path


def write_folder(path: Path, records: list[dict]) -> Path:
    """One .txt per article, named <date>_<id>.txt."""
    path.mkdir(parents=True, exist_ok=True)
    for record in records:
        (path / f"{record['date'][:10]}_{record['id']}.txt").write_text(record["text"])
    return path


@pytest.fixture(scope="session")
def corpus() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        articles=ARTICLES, write_jsonl=write_jsonl, write_csv=write_csv, write_folder=write_folder
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("batch-model") / "stance")


def reset_mlflow() -> None:
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(name, None)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator:
    """A private MLflow store holding the tiny model as `stance-classifier` version 1,
    alias champion, logged the way `train` logs it (pyfunc with the pipeline as code);
    MLFLOW_TRACKING_URI points at it for the module."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline.mlflow_model import MODEL_DIR_ARTIFACT, StancePyfunc

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    reset_mlflow()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment(
            "stance-classifier", artifact_location=(root / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=StancePyfunc(),
                artifacts={MODEL_DIR_ARTIFACT: str(tiny_model_dir)},
                code_paths=[str(REPO_ROOT / "pipeline")],
                pip_requirements=["mlflow"],
            )
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", REGISTERED).version
        MlflowClient().set_registered_model_alias(REGISTERED, "champion", version)
        yield types.SimpleNamespace(
            uri=uri, run_id=run.info.run_id, version=str(version), name=REGISTERED
        )
    reset_mlflow()
