"""Seed-set metrics: one computation for the baseline and the fine-tuned model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # file output only; no display on CI
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from pipeline.labels import ACTORS, STANCES  # noqa: E402


def stance_metrics(gold: list[str], predicted: list[str], actors: list[str]) -> dict[str, float]:
    """Flat metric dict (MLflow-friendly keys) over the four stances."""
    metrics = {
        "macro_f1": f1_score(
            gold, predicted, labels=list(STANCES), average="macro", zero_division=0
        ),
        "accuracy": accuracy_score(gold, predicted),
    }
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(STANCES), zero_division=0
    )
    for i, stance in enumerate(STANCES):
        metrics[f"{stance}_precision"] = precision[i]
        metrics[f"{stance}_recall"] = recall[i]
        metrics[f"{stance}_f1"] = f1[i]
        metrics[f"{stance}_support"] = int(support[i])
    for actor in ACTORS:
        pairs = [(g, p) for g, p, a in zip(gold, predicted, actors, strict=True) if a == actor]
        if pairs:
            metrics[f"accuracy_{actor}"] = sum(g == p for g, p in pairs) / len(pairs)
    return {key: float(value) for key, value in metrics.items()}


def confusion(gold: list[str], predicted: list[str]) -> list[list[int]]:
    return confusion_matrix(gold, predicted, labels=list(STANCES)).tolist()


def plot_confusion(matrix: list[list[int]], title: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(STANCES)), STANCES, rotation=30)
    axis.set_yticks(range(len(STANCES)), STANCES)
    axis.set_xlabel("predicted")
    axis.set_ylabel("gold")
    axis.set_title(title)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if count > peak / 2 else "black"
            axis.text(j, i, str(count), ha="center", va="center", color=colour)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(
    out_dir: Path, name: str, rows: list, predicted: list[str], scores: list[dict] | None = None
) -> dict[str, float]:
    """Write <name>_metrics.json, <name>_predictions.csv (DVC confusion plot),
    <name>_misclassified.csv and <name>_confusion.png; return the metrics."""
    gold = [row.stance for row in rows]
    metrics = stance_metrics(gold, predicted, [row.actor for row in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out_dir / f"{name}_predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actor", "actual", "predicted"])
        for row, guess in zip(rows, predicted, strict=True):
            writer.writerow([row.id, row.actor, row.stance, guess])
    with open(out_dir / f"{name}_misclassified.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actor", "gold", "predicted", "confidence", "sentence"])
        for i, (row, guess) in enumerate(zip(rows, predicted, strict=True)):
            if row.stance != guess:
                confidence = f"{scores[i][guess]:.3f}" if scores else ""
                writer.writerow([row.id, row.actor, row.stance, guess, confidence, row.sentence])
    plot_confusion(
        confusion(gold, predicted), f"{name}: seed test set", out_dir / f"{name}_confusion.png"
    )
    return metrics
