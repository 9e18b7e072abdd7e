"""DVC stage `evaluate`: score the fine-tuned model on the seed test set.

Writes the DVC metrics and plots files (shared layout with the baseline, see
training.metrics) and logs the same metrics, the confusion matrix image, the
reliability diagram, the misclassified table, this stage's params and the seed set
(as an MLflow dataset, context ``test``) to the training run in MLflow. The
scores are the served ones (calibrated by the model's temperature); ``ece`` is their
expected calibration error and ``ece_uncalibrated`` that of the raw scores (T = 1).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlflow

from pipeline import tracking
from pipeline.config import StrictParams, load_section, require
from pipeline.inference import InferenceConfig, Prediction, StancePredictor
from pipeline.lineage import flatten
from pipeline.records import LabelledRow, load_labelled
from training.metrics import write_report

logger = logging.getLogger(__name__)

REPORT_NAME = "seed"


class EvaluateParams(StrictParams):
    batch_size: int

    def check(self) -> None:
        require(self.batch_size >= 1, "evaluate.batch_size", "must be >= 1")


def predict_rows(model_dir: Path, rows: list[LabelledRow], batch_size: int) -> list[Prediction]:
    """The evaluated predictions: the same predictor, batching and order as serving."""
    predictor = StancePredictor(model_dir)
    return predictor.predict([(row.sentence, row.actor) for row in rows], batch_size=batch_size)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_section("evaluate", EvaluateParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)
    tracking.setup(tracking_params.experiment)  # an unreachable server fails before any work

    rows = load_labelled(args.test)
    predictions = predict_rows(args.model_dir, rows, params.batch_size)
    metrics = write_report(
        args.out_dir,
        REPORT_NAME,
        rows,
        [p.stance for p in predictions],
        [p.scores for p in predictions],
        temperature=InferenceConfig.load(args.model_dir).temperature,
    )
    logger.info(
        "seed macro-F1 %.3f, accuracy %.3f, ECE %.4f (uncalibrated %.4f)",
        metrics["macro_f1"], metrics["accuracy"], metrics["ece"], metrics["ece_uncalibrated"],
    )  # fmt: skip

    with mlflow.start_run(run_id=tracking.read_run_id(args.model_dir)):
        tracking.log_params(flatten(params.model_dump(), "evaluate"))
        records = [row.model_dump() for row in rows]
        tracking.log_dataset(args.test, records, "test", "seeds")
        mlflow.log_metrics({f"seed_{k}": v for k, v in metrics.items()})
        for suffix in ("confusion.png", "reliability.png", "misclassified.csv"):
            mlflow.log_artifact(str(args.out_dir / f"{REPORT_NAME}_{suffix}"))


if __name__ == "__main__":
    main()
