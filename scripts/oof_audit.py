"""Out-of-fold label audit of the training corpus: which corpus labels to re-check.

Every corpus row (the prepared train and validation files) is scored by a model that
never saw it: the pages (``doc``) are split into --folds groups by a hash of the page
id, and for each group a model is trained on the other groups with the committed
``train`` parameters (``python -m training.train``), then scores the held-out group
(``scripts/dev_eval.py --dev``). Rows the held-out model labels differently with a
calibrated top score of at least --min-confidence are the candidates: a confident
disagreement is where a wrong corpus label is most likely (confident learning).

The candidates go to --out-dir/candidates.jsonl (id, actor, sentence, corpus label,
model label and score, fold) for a blind re-annotation against docs/annotation.md.
The folds' MLflow runs go to a store of their own in --out-dir, not the project's.
The script changes no label: decisions are recorded in data/agreement/ and applied to
data/corpus by hand (data/README.md, "Out-of-fold audit"). Nothing here reads the seed
or the real-news dev set. Two folds take about 12 minutes on this machine.

Usage: python scripts/oof_audit.py [--folds 2] [--min-confidence 0.8] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import tracking
from pipeline.atomic import open_replacing
from pipeline.records import LabelledRow, load_labelled, write_jsonl

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("reports/oof_audit")


def fold_of(doc: str, folds: int) -> int:
    """The fold of a page: stable across runs and machines (md5 of the page id)."""
    return int(hashlib.md5(doc.encode("utf-8")).hexdigest(), 16) % folds


def split_folds(rows: list[LabelledRow], folds: int) -> list[list[LabelledRow]]:
    """Rows grouped by the fold of their page; every row lands in exactly one group."""
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    groups: list[list[LabelledRow]] = [[] for _ in range(folds)]
    for row in rows:
        groups[fold_of(row.doc, folds)].append(row)
    empty = [i for i, group in enumerate(groups) if not group]
    if empty:
        raise ValueError(f"fold(s) {empty} hold no page: use fewer --folds")
    return groups


def candidates(misclassified: list[dict], min_confidence: float, fold: int) -> list[dict]:
    """The held-out model's disagreements at or above min_confidence, surest first."""
    picked = [
        {
            "id": row["id"],
            "actor": row["actor"],
            "sentence": row["sentence"],
            "corpus_label": row["gold"],
            "model_label": row["predicted"],
            "model_confidence": float(row["confidence"]),
            "fold": fold,
        }
        for row in misclassified
        if float(row["confidence"]) >= min_confidence
    ]
    return sorted(picked, key=lambda row: -row["model_confidence"])


def run(command: list[str], log: Path, workspace: Path) -> None:
    """Run one step; its MLflow runs go to the audit's own store under ``workspace``
    (pipeline.tracking keeps its embedded store in $DVC_ROOT), not the project's."""
    logger.info("running %s (log: %s)", " ".join(command), log)
    env = {**os.environ, tracking.DVC_ROOT_ENV: str(workspace.resolve())}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, check=False, env=env
        )
    if done.returncode:
        raise SystemExit(f"{command[1:3]} failed with exit code {done.returncode}: see {log}")


def audit_fold(
    fold: int, train: list[LabelledRow], held_out: list[LabelledRow], prepared: Path, out: Path
):
    fold_dir = out / f"fold_{fold}"
    write_jsonl(fold_dir / "train.jsonl", train)
    write_jsonl(fold_dir / "held_out.jsonl", held_out)
    python = sys.executable
    run(
        [
            python, "-m", "training.train",
            "--train", str(fold_dir / "train.jsonl"),
            "--validation", str(fold_dir / "held_out.jsonl"),
            "--out-dir", str(fold_dir / "model"),
            "--metrics", str(fold_dir / "train_metrics.json"),
            "--reliability-plot", str(fold_dir / "reliability.png"),
            "--lineage", str(prepared / "lineage.json"),
            "--history", str(fold_dir / "epochs.csv"),
        ],
        fold_dir / "train.log",
        out,
    )  # fmt: skip
    run(
        [
            python, "scripts/dev_eval.py", "--dev", str(fold_dir / "held_out.jsonl"),
            "--model-dir", str(fold_dir / "model"), "--out-dir", str(fold_dir / "scored"),
            "--no-mlflow",
        ],
        fold_dir / "score.log",
        out,
    )  # fmt: skip
    with (fold_dir / "scored" / "dev_misclassified.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["paths"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared-dir", type=Path, default=Path(paths["prepared_dir"]))
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--min-confidence", type=float, default=0.8)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="git-ignored")
    args = parser.parse_args(argv)

    rows = load_labelled(
        [args.prepared_dir / "train.jsonl", args.prepared_dir / "validation.jsonl"]
    )
    groups = split_folds(rows, args.folds)
    found: list[dict] = []
    for fold, held_out in enumerate(groups):
        train = [row for i, group in enumerate(groups) if i != fold for row in group]
        logger.info("fold %d/%d: training on %d rows, scoring %d", fold + 1, args.folds,
                    len(train), len(held_out))  # fmt: skip
        misclassified = audit_fold(fold, train, held_out, args.prepared_dir, args.out_dir)
        found += candidates(misclassified, args.min_confidence, fold)
    with open_replacing(args.out_dir / "candidates.jsonl") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in found)
    print(f"{len(found)} of {len(rows)} rows are confident disagreements "
          f"(score >= {args.min_confidence}): {args.out_dir / 'candidates.jsonl'}")  # fmt: skip


if __name__ == "__main__":
    main()
