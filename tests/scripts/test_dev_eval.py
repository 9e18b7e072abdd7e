"""scripts/dev_eval.py on a tiny real model and a hand-made dev file of our own sentences."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.records import DataError
from training.metrics import stance_metrics

ROOT = Path(__file__).resolve().parents[2]

# Our own sentences, in the dev file's layout (extra fields the script must ignore).
DEV_ROWS = [
    ("Beijing recalled its consul from Osaka on Tuesday.", "china", "hostile"),
    ("Beijing recalled its consul from Osaka on Tuesday.", "japan", "neutral"),
    ("Tokyo again refused to withdraw the premier's answer.", "japan", "supportive"),
    ("The State Department urged calm on all sides.", "us", "hedging"),
    ("Taipei opened a trade office in Fukuoka.", "taiwan", "neutral"),
    ("Seoul called for dialogue between its neighbours.", "other", "hedging"),
]


def dev_line(i: int, sentence: str, actor: str, stance: str, **extra) -> str:
    row = {"id": f"D{i:03d}-{actor}", "doc": f"https://example.invalid/{i}", "source": "Wire"}
    row |= {"date": "2025-11-20", "sentence": sentence, "actor": actor, "stance": stance}
    return json.dumps({**row, "note": "", **extra}) + "\n"


@pytest.fixture(scope="module")
def dev_eval(load_script):
    return load_script("dev_eval")


@pytest.fixture
def dev_file(tmp_path) -> Path:
    path = tmp_path / "shared" / "realnews-dev.jsonl"
    path.parent.mkdir()
    path.write_text("".join(dev_line(i, *row) for i, row in enumerate(DEV_ROWS)) + "\n")
    return path


def test_read_dev_takes_only_the_fields_it_needs(dev_eval, dev_file):
    rows = dev_eval.read_dev(dev_file)
    assert [(r.sentence, r.actor, r.stance) for r in rows] == DEV_ROWS
    assert rows[0].id == "D000-china" and rows[0].doc == "https://example.invalid/0"


def test_read_dev_names_file_and_line_of_bad_rows(dev_eval, tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text(
        dev_line(0, *DEV_ROWS[0])
        + dev_line(1, "Seoul stayed silent.", "korea", "hedging")
        + "{not json\n"
        + json.dumps({"id": "x", "doc": "d", "sentence": "s", "actor": "us"})
        + "\n"
    )
    with pytest.raises(DataError) as raised:
        dev_eval.read_dev(path)
    message = str(raised.value)
    assert f"{path}:2: field 'actor'" in message
    assert f"{path}:3: invalid JSON" in message
    assert f"{path}:4: field 'stance'" in message
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no labelled rows"):
        dev_eval.read_dev(empty)


@pytest.fixture
def project(tmp_path, monkeypatch, clean_mlflow, make_tiny_model):
    """A working directory with the repository's params.yaml and a tiny model that has
    an MLflow run beside it, as `train` leaves it."""
    import mlflow

    from pipeline import tracking

    root = tmp_path / "repo"
    root.mkdir()
    shutil.copyfile(ROOT / "params.yaml", root / "params.yaml")
    monkeypatch.chdir(root)
    model_dir = make_tiny_model(root / "models" / "stance")
    experiment_id = tracking.setup("stance-classifier")
    with mlflow.start_run() as run:
        tracking.write_run_file(model_dir, run.info.run_id, experiment_id)
    return {"root": root, "model_dir": model_dir, "run_id": run.info.run_id}


def test_main_scores_reports_and_logs(dev_eval, dev_file, project, capsys):
    from mlflow import MlflowClient

    from pipeline.inference import StancePredictor

    out_dir = project["root"] / "reports" / "dev"
    metrics = dev_eval.main(["--dev", str(dev_file), "--model-dir", str(project["model_dir"])])

    # the same figures as the evaluate stage's functions on the same predictions
    predictions = StancePredictor(project["model_dir"]).predict([(s, a) for s, a, _ in DEV_ROWS])
    predicted = [p.stance for p in predictions]
    expected = stance_metrics([g for *_, g in DEV_ROWS], predicted, [a for _, a, _ in DEV_ROWS])
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)
    assert {"ece", "ece_uncalibrated"} <= set(metrics)

    with open(out_dir / "dev_misclassified.csv", encoding="utf-8") as handle:
        wrong = list(csv.DictReader(handle))
    assert len(wrong) == sum(p != g for p, (*_, g) in zip(predicted, DEV_ROWS, strict=True))
    for name in ("metrics.json", "confusion.png", "reliability.png"):
        assert (out_dir / f"dev_{name}").stat().st_size > 0

    printed = capsys.readouterr().out
    assert f"macro-F1 {metrics['macro_f1']:.3f}" in printed
    assert "confusion (rows gold, columns predicted)" in printed
    assert f"rows {len(DEV_ROWS)}, sentences 5" in printed
    # "Osaka" is not a `japan` alias: that row's actor is not marked in the model input
    assert "(so not marked for the model) 1" in printed
    assert f"logged as dev_* metrics to MLflow run {project['run_id']}" in printed

    client = MlflowClient()
    run = client.get_run(project["run_id"])
    assert run.data.metrics["dev_macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert run.data.metrics["dev_ece"] == pytest.approx(metrics["ece"])
    assert run.data.tags["dev_data_file"] == "realnews-dev.jsonl"
    logged = [a.path for a in client.list_artifacts(project["run_id"], "dev")]
    assert sorted(logged) == ["dev/dev_confusion.png", "dev/dev_reliability.png"]


def test_no_mlflow(dev_eval, dev_file, project):
    out_dir = project["root"] / "elsewhere"
    argv = ["--dev", str(dev_file), "--model-dir", str(project["model_dir"])]
    dev_eval.main([*argv, "--out-dir", str(out_dir), "--no-mlflow"])
    assert (out_dir / "dev_metrics.json").is_file()
    from mlflow import MlflowClient

    assert "dev_macro_f1" not in MlflowClient().get_run(project["run_id"]).data.metrics


def test_dev_reports_are_git_ignored():
    done = subprocess.run(
        ["git", "check-ignore", "-q", "reports/dev/dev_misclassified.csv"], cwd=ROOT, check=False
    )
    assert done.returncode == 0, "reports/dev/ must be git-ignored: it quotes dev sentences"


GOLD = ["hostile", "neutral", "supportive", "hedging", "neutral", "hedging", "hostile"]
PREDICTED = ["hostile", "hostile", "supportive", "neutral", "neutral", "hedging", "neutral"]
DOCS = ["a", "a", "b", "b", "c", "d", "d"]


def test_every_page_once_gives_the_plain_macro_f1(dev_eval) -> None:
    expected = stance_metrics(GOLD, PREDICTED, ["japan"] * len(GOLD))["macro_f1"]
    once = dev_eval.resampled_macro_f1(GOLD, PREDICTED, DOCS, np.ones((1, 4)))
    assert once[0] == pytest.approx(expected)


def test_a_page_drawn_twice_counts_its_rows_twice(dev_eval) -> None:
    # pages a, b, c, d drawn 2, 0, 1, 1 times
    weights = np.array([[2.0, 0.0, 1.0, 1.0]])
    rows = [i for i, doc in enumerate(DOCS) for _ in range({"a": 2, "c": 1, "d": 1}.get(doc, 0))]
    gold, predicted = [GOLD[i] for i in rows], [PREDICTED[i] for i in rows]
    expected = stance_metrics(gold, predicted, ["japan"] * len(rows))["macro_f1"]
    drawn = dev_eval.resampled_macro_f1(GOLD, PREDICTED, DOCS, weights)
    assert drawn[0] == pytest.approx(expected)


def test_page_resamples_draw_as_many_pages_as_there_are(dev_eval) -> None:
    weights = dev_eval.page_resamples(DOCS, 50, seed=1)
    assert weights.shape == (50, 4)
    assert (weights.sum(axis=1) == 4).all()
    assert (weights == dev_eval.page_resamples(DOCS, 50, seed=1)).all()
    assert len({tuple(row) for row in weights}) > 10  # varied draws
    with pytest.raises(ValueError, match="at least 2 pages"):
        dev_eval.page_resamples(["a", "a"], 10, seed=1)


def test_a_model_against_itself_differs_by_nothing(dev_eval, dev_file, project, capsys):
    model = str(project["model_dir"])
    metrics = dev_eval.main(["--dev", str(dev_file), "--model-dir", model, "--no-mlflow",
                             "--against", model])  # fmt: skip
    printed = capsys.readouterr().out
    assert metrics["macro_f1_low"] <= metrics["macro_f1_high"]
    assert f"macro-F1 95% interval {metrics['macro_f1_low']:.3f}-" in printed
    assert f"resamples of the {len(DEV_ROWS)} pages" in printed
    assert (
        f"against {model}: macro-F1 {metrics['macro_f1']:.3f}; difference +0.000, "
        f"95% interval +0.000 to +0.000; {model} ahead in 0% of the resamples"
    ) in printed
