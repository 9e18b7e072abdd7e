"""Score the real-news dev set with a trained model: the figures `make dev-eval` prints.

The dev set (../shared/realnews-dev.jsonl by default) lives outside the repository and
is read only at run time (here, and by scripts/dev_overlap.py): it is for model choice
and error analysis, never for training. Its rows carry extra fields (source, date,
note); only id, doc, sentence, actor and stance are read (pipeline.records.read_dev).

Prints macro-F1, per-class and per-actor figures, the confusion table and the
expected calibration error (same functions as the evaluate stage, training.metrics),
writes the report files and the misclassified rows to --out-dir (reports/dev,
git-ignored: dev sentences are never committed), and logs the figures as dev_*
metrics to the model's MLflow run (the run in mlflow_run.json beside the model).

How sure a figure is: 524 rows from 74 pages give a wide interval, and rows of one page
move together. The 95% interval of the macro-F1 comes from a bootstrap that resamples
whole pages (``doc``), 2,000 times. ``--against DIR`` scores the dev set with a second
model too and gives the difference of the two on the same resamples (paired): its
interval, and the share of resamples in which the first model is ahead.

Usage: python scripts/dev_eval.py [--dev PATH] [--model-dir DIR] [--out-dir DIR] [--no-mlflow]
                                  [--against DIR]
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from pipeline import tracking
from pipeline.actors import detect_actors
from pipeline.config import load_section
from pipeline.inference import InferenceConfig, Prediction
from pipeline.labels import ACTORS, STANCES
from pipeline.lineage import file_md5
from pipeline.records import DEFAULT_DEV, LabelledRow, read_dev
from training.evaluate import EvaluateParams, predict_rows
from training.metrics import confusion, write_report

logger = logging.getLogger("dev_eval")

DEFAULT_OUT = Path("reports/dev")  # git-ignored
REPORT_NAME = "dev"
METRIC_PREFIX = "dev_"
CONFIDENT = 0.9  # errors at or above this top score are counted apart
RESAMPLES = 2000  # page-level bootstrap resamples for the intervals
BOOTSTRAP_SEED = 0


def macro_f1_of_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Macro-F1 over the last axis (stances) from per-stance counts, F1 0 where a stance
    has no gold and no predicted row (scikit-learn's ``zero_division=0``)."""
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    return f1.mean(axis=-1)


def page_resamples(docs: list[str], resamples: int, seed: int) -> np.ndarray:
    """(resamples x pages) counts: how often each page is drawn when len(pages) pages are
    drawn with replacement (a cluster bootstrap: a page's rows are kept together)."""
    pages = len(set(docs))
    if pages < 2:
        raise ValueError(f"a page-level bootstrap needs at least 2 pages (doc values), got {pages}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, pages, size=(resamples, pages))
    return np.stack([np.bincount(row, minlength=pages) for row in draws])


def resampled_macro_f1(
    gold: list[str], predicted: list[str], docs: list[str], weights: np.ndarray
) -> np.ndarray:
    """Macro-F1 of each resample (one value per row of ``weights``, from page_resamples)."""
    page_index = {doc: i for i, doc in enumerate(dict.fromkeys(docs))}
    # per page and stance: true positives, false positives, false negatives
    counts = np.zeros((3, len(page_index), len(STANCES)))
    stance_index = {stance: i for i, stance in enumerate(STANCES)}
    for g, p, doc in zip(gold, predicted, docs, strict=True):
        page = page_index[doc]
        if g == p:
            counts[0, page, stance_index[g]] += 1
        else:
            counts[1, page, stance_index[p]] += 1
            counts[2, page, stance_index[g]] += 1
    tp, fp, fn = (weights @ counts[k] for k in range(3))
    return macro_f1_of_counts(tp, fp, fn)


def interval(values: np.ndarray) -> tuple[float, float]:
    """The central 95% of the values."""
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body, strict=True)]
    lines = [header, ["-" * w for w in widths], *body]
    return "\n".join(
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def format_report(
    metrics: dict[str, float], rows: list[LabelledRow], predictions: list[Prediction]
) -> str:
    """The readable report: overall, per class, per actor, confusion, calibration."""
    predicted = [p.stance for p in predictions]
    wrong = [p for row, p in zip(rows, predictions, strict=True) if p.stance != row.stance]
    confident = sum(p.scores[p.stance] >= CONFIDENT for p in wrong)
    per_actor = Counter(row.actor for row in rows)
    # rows whose actor detection misses: the model input marks no mention of the actor
    unmarked = sum(row.actor not in detect_actors(row.sentence) for row in rows)
    parts = [
        f"rows {len(rows)}, sentences {len({row.sentence for row in rows})}, "
        f"truncated {sum(p.truncated for p in predictions)}, "
        f"actor not found by the actor dictionary (so not marked for the model) {unmarked}",
        f"macro-F1 {metrics['macro_f1']:.3f}   accuracy {metrics['accuracy']:.3f}",
        "",
        table(
            ["stance", "precision", "recall", "F1", "rows"],
            [
                [
                    stance,
                    f"{metrics[f'{stance}_precision']:.3f}",
                    f"{metrics[f'{stance}_recall']:.3f}",
                    f"{metrics[f'{stance}_f1']:.3f}",
                    str(int(metrics[f"{stance}_support"])),
                ]
                for stance in STANCES
            ],
        ),
        "",
        table(
            ["actor", "accuracy", "rows"],
            [
                [actor, f"{metrics[f'accuracy_{actor}']:.3f}", str(per_actor[actor])]
                for actor in ACTORS
                if per_actor[actor]
            ],
        ),
        "",
        "confusion (rows gold, columns predicted):",
        table(
            ["gold \\ predicted", *STANCES],
            [
                [gold, *map(str, counts)]
                for gold, counts in zip(
                    STANCES, confusion([r.stance for r in rows], predicted), strict=True
                )
            ],
        ),
        "",
        f"ECE (10 bins): {metrics['ece']:.4f} as served (calibrated), "
        f"{metrics['ece_uncalibrated']:.4f} uncalibrated",
        f"errors {len(wrong)}, of which {confident} with a top score >= {CONFIDENT}",
    ]
    return "\n".join(parts)


def log_to_run(model_dir: Path, metrics: dict[str, float], dev: Path, out_dir: Path) -> str:
    """dev_* metrics, the dev file's md5 and the plots (no sentences) to the model's run."""
    import mlflow

    tracking.setup(load_section("mlflow", tracking.MlflowParams).experiment)
    run_id = tracking.read_run_id(model_dir)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({METRIC_PREFIX + key: value for key, value in metrics.items()})
        mlflow.set_tags({"dev_data_md5": file_md5(dev), "dev_data_file": dev.name})
        for suffix in ("confusion.png", "reliability.png"):
            mlflow.log_artifact(str(out_dir / f"{REPORT_NAME}_{suffix}"), artifact_path="dev")
    return run_id


def main(argv: list[str] | None = None) -> dict[str, float]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["paths"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="dev set JSONL")
    parser.add_argument("--model-dir", type=Path, default=Path(paths["model_dir"]))
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="git-ignored")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to the model's run")
    parser.add_argument(
        "--against", type=Path, help="a second model directory, compared on the same resamples"
    )
    args = parser.parse_args(argv)
    params = load_section("evaluate", EvaluateParams)

    rows = read_dev(args.dev)
    predictions = predict_rows(args.model_dir, rows, params.batch_size)
    metrics = write_report(
        args.out_dir,
        REPORT_NAME,
        rows,
        [p.stance for p in predictions],
        [p.scores for p in predictions],
        temperature=InferenceConfig.load(args.model_dir).temperature,
        set_name="real-news dev set",
    )
    print(f"{args.dev} scored with {args.model_dir}\n")
    print(format_report(metrics, rows, predictions))
    gold, docs = [row.stance for row in rows], [row.doc for row in rows]
    weights = page_resamples(docs, RESAMPLES, BOOTSTRAP_SEED)
    scores = resampled_macro_f1(gold, [p.stance for p in predictions], docs, weights)
    low, high = interval(scores)
    metrics |= {"macro_f1_low": low, "macro_f1_high": high}
    print(f"macro-F1 95% interval {low:.3f}-{high:.3f} "
          f"({RESAMPLES} resamples of the {len(set(docs))} pages)")  # fmt: skip
    if args.against:
        other = [p.stance for p in predict_rows(args.against, rows, params.batch_size)]
        every_page_once = np.ones((1, weights.shape[1]))
        other_f1 = float(resampled_macro_f1(gold, other, docs, every_page_once)[0])
        difference = scores - resampled_macro_f1(gold, other, docs, weights)
        low, high = interval(difference)
        print(
            f"against {args.against}: macro-F1 {other_f1:.3f}; difference "
            f"{metrics['macro_f1'] - other_f1:+.3f}, 95% interval {low:+.3f} to {high:+.3f}; "
            f"{args.model_dir} ahead in {(difference > 0).mean():.0%} of the resamples"
        )
    print(f"\nmisclassified rows: {args.out_dir / f'{REPORT_NAME}_misclassified.csv'}")
    if args.no_mlflow:
        return metrics
    if not (args.model_dir / tracking.RUN_FILE).is_file():
        logger.warning("%s has no %s: not logged to MLflow", args.model_dir, tracking.RUN_FILE)
        return metrics
    run_id = log_to_run(args.model_dir, metrics, args.dev, args.out_dir)
    print(f"logged as dev_* metrics to MLflow run {run_id}")
    return metrics


if __name__ == "__main__":
    main()
