"""Stance metrics: one computation for the baseline, the fine-tuned model and the dev set.

Label metrics (macro-F1, per class, per actor, confusion) and calibration metrics
(expected calibration error over equal-width confidence bins, reliability diagram).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # file output only; no display on CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from pipeline.atomic import open_replacing, replacing, write_json  # noqa: E402
from pipeline.labels import ACTORS, STANCES  # noqa: E402
from training.calibration import uncalibrated  # noqa: E402

ECE_BINS = 10  # equal-width confidence bins: (0, 0.1], (0.1, 0.2], ..., (0.9, 1]


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
    with replacing(path) as temp:
        figure.savefig(temp, dpi=120)
    plt.close(figure)


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin: (lower, upper], its rows, their accuracy and mean confidence."""

    lower: float
    upper: float
    count: int
    accuracy: float  # 0.0 for an empty bin (its weight in the ECE is 0)
    confidence: float


def reliability_bins(
    probabilities: np.ndarray, gold_ids: list[int] | np.ndarray, bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Rows grouped by top score into ``bins`` equal-width bins (lower, upper].

    A row is correct when its argmax (the first of tied maxima, as the predictor
    picks) is its gold class id.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    gold = np.asarray(gold_ids)
    if probabilities.ndim != 2 or gold.shape != (len(probabilities),) or len(gold) == 0:
        raise ValueError(
            f"expected probabilities (n x classes) and n gold ids with n > 0, "
            f"got {probabilities.shape} and {gold.shape}"
        )
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left" on the inner edges: a confidence equal to an edge goes to the lower bin.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    table = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        table.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                accuracy=float(correct[members].mean()) if count else 0.0,
                confidence=float(confidence[members].mean()) if count else 0.0,
            )
        )
    return table


def calibration_error(table: list[ReliabilityBin]) -> float:
    """ECE of a reliability table: sum over bins of (rows / all rows) * |accuracy - confidence|."""
    total = sum(b.count for b in table)
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in table))


def expected_calibration_error(
    probabilities: np.ndarray, gold_ids: list[int] | np.ndarray, bins: int = ECE_BINS
) -> float:
    """Expected calibration error with ``bins`` equal-width confidence bins."""
    return calibration_error(reliability_bins(probabilities, gold_ids, bins))


def plot_reliability(curves: dict[str, list[ReliabilityBin]], title: str, path: Path) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, one line per curve,
    with the row counts per bin below."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    for (name, table), marker in zip(curves.items(), "os^D", strict=False):
        filled = [b for b in table if b.count]
        label = f"{name}: ECE {calibration_error(table):.3f}"
        top.plot(
            [b.confidence for b in filled], [b.accuracy for b in filled], marker=marker, label=label
        )
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    first = next(iter(curves.values()))
    width = (first[0].upper - first[0].lower) / (len(curves) + 1)
    for offset, (name, table) in enumerate(curves.items()):
        bottom.bar(
            [b.lower + width * (offset + 0.5) for b in table],
            [b.count for b in table],
            width=width,
            align="edge",
            label=name,
        )
    bottom.set_xlabel("confidence (top score)")
    bottom.set_ylabel("rows")
    figure.tight_layout()
    with replacing(path) as temp:
        figure.savefig(temp, dpi=120)
    plt.close(figure)


def calibration_report(
    probabilities: np.ndarray,
    gold_ids: list[int],
    temperature: float | None,
    title: str,
    path: Path,
) -> dict[str, float]:
    """ECE of the scores as served and the reliability diagram at ``path``.

    With a ``temperature`` (scores made by softmax(z / T)) also the ECE of the raw
    scores behind them, ``ece_uncalibrated``, drawn in the same diagram.
    """
    served = reliability_bins(probabilities, gold_ids)
    if temperature is None:
        plot_reliability({"scores": served}, title, path)
        return {"ece": calibration_error(served)}
    raw = reliability_bins(uncalibrated(probabilities, temperature), gold_ids)
    plot_reliability(
        {f"calibrated (T = {temperature:.3g})": served, "uncalibrated (T = 1)": raw}, title, path
    )
    return {"ece": calibration_error(served), "ece_uncalibrated": calibration_error(raw)}


def write_report(
    out_dir: Path,
    name: str,
    rows: list,
    predicted: list[str],
    scores: list[dict] | None = None,
    temperature: float | None = None,
    set_name: str = "seed test set",
) -> dict[str, float]:
    """Write <name>_metrics.json, <name>_predictions.csv (DVC confusion plot),
    <name>_misclassified.csv and <name>_confusion.png; return the metrics.

    With ``scores`` the metrics include their ``ece`` and <name>_reliability.png is
    written too; with the ``temperature`` the scores were made with, also the
    ``ece_uncalibrated`` of the raw scores (training.metrics.calibration_report).
    """
    gold = [row.stance for row in rows]
    metrics = stance_metrics(gold, predicted, [row.actor for row in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    if scores is not None:
        probabilities = np.array([[s[label] for label in STANCES] for s in scores])
        metrics |= calibration_report(
            probabilities,
            [STANCES.index(g) for g in gold],
            temperature,
            f"{name}: {set_name}",
            out_dir / f"{name}_reliability.png",
        )
    write_json(out_dir / f"{name}_metrics.json", metrics)
    with open_replacing(out_dir / f"{name}_predictions.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actor", "actual", "predicted"])
        for row, guess in zip(rows, predicted, strict=True):
            writer.writerow([row.id, row.actor, row.stance, guess])
    with open_replacing(out_dir / f"{name}_misclassified.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actor", "gold", "predicted", "confidence", "sentence"])
        for i, (row, guess) in enumerate(zip(rows, predicted, strict=True)):
            if row.stance != guess:
                confidence = f"{scores[i][guess]:.3f}" if scores else ""
                writer.writerow([row.id, row.actor, row.stance, guess, confidence, row.sentence])
    plot_confusion(
        confusion(gold, predicted), f"{name}: {set_name}", out_dir / f"{name}_confusion.png"
    )
    return metrics
