"""DVC stage `baseline`: TF-IDF + logistic regression over the same actor-marked input.

Evaluated on the seed test set exactly like the fine-tuned model (training.metrics),
and tracked as its own MLflow run in the same experiment for side-by-side comparison,
with the same lineage as the fine-tuned run (prepare's params and corpus md5, the
training and test data as MLflow datasets).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlflow
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from pipeline import tracking
from pipeline.config import StrictParams, load_section, require
from pipeline.formatting import flat_input
from pipeline.lineage import Lineage, file_md5
from pipeline.records import load_labelled
from training.metrics import write_report

logger = logging.getLogger(__name__)

REPORT_NAME = "baseline"


class BaselineParams(StrictParams):
    ngram_max: int
    min_df: int
    c: float
    seed: int

    def check(self) -> None:
        require(1 <= self.ngram_max <= 3, "baseline.ngram_max", "must be 1, 2 or 3")
        require(self.min_df >= 1, "baseline.min_df", "must be >= 1")
        require(self.c > 0, "baseline.c", "must be > 0")


def fit_baseline(texts: list[str], labels: list[str], params: BaselineParams):
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, params.ngram_max), min_df=params.min_df, sublinear_tf=True),
        LogisticRegression(
            C=params.c, max_iter=2000, class_weight="balanced", random_state=params.seed
        ),
    )
    return model.fit(texts, labels)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument(
        "--lineage", type=Path, required=True, help="prepare's lineage record (corpus md5)"
    )
    args = parser.parse_args(argv)
    params = load_section("baseline", BaselineParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)
    tracking.setup(tracking_params.experiment)  # an unreachable server fails before any work

    train_rows, test_rows = load_labelled(args.train), load_labelled(args.test)
    model = fit_baseline(
        [flat_input(r.sentence, r.actor) for r in train_rows],
        [r.stance for r in train_rows],
        params,
    )
    probabilities = model.predict_proba([flat_input(r.sentence, r.actor) for r in test_rows])
    classes = list(model.classes_)
    predicted = [classes[int(p.argmax())] for p in probabilities]
    scores = [dict(zip(classes, map(float, p), strict=True)) for p in probabilities]
    metrics = write_report(args.out_dir, REPORT_NAME, test_rows, predicted, scores)
    logger.info("baseline seed macro-F1 %.3f", metrics["macro_f1"])

    lineage = Lineage.load(args.lineage)
    with mlflow.start_run(run_name="tfidf-baseline"):
        mlflow.set_tags(tracking.run_tags("tfidf_logreg"))
        mlflow.log_params({f"baseline.{k}": v for k, v in params.model_dump().items()})
        mlflow.log_params(lineage.params)
        mlflow.log_params(
            {"corpus_md5": lineage.corpus_md5, "train_data_md5": file_md5(args.train)}
        )
        records = [row.model_dump() for row in train_rows]
        tracking.log_dataset(args.train, records, "training", "train", lineage.corpus_md5)
        tracking.log_dataset(args.test, [row.model_dump() for row in test_rows], "test", "seeds")
        mlflow.log_metrics({f"seed_{k}": v for k, v in metrics.items()})
        for suffix in ("confusion.png", "reliability.png", "misclassified.csv"):
            mlflow.log_artifact(str(args.out_dir / f"{REPORT_NAME}_{suffix}"))


if __name__ == "__main__":
    main()
