"""The seed-set results table quoted by README.md and data/README.md.

Reads the DVC metrics files that `evaluate` and `baseline` wrote (nothing is
recomputed) and prints Markdown: per-class F1, macro-F1, accuracy, per-actor
accuracy for both models, and the fine-tuned model's confusion table.
Usage: python scripts/results_table.py
"""

import csv
import json
from collections import Counter
from pathlib import Path

from pipeline.labels import ACTORS, STANCES

MODELS = {
    "fine-tuned MiniLM": Path("reports/seed/seed_metrics.json"),
    "TF-IDF + logistic regression": Path("reports/baseline/baseline_metrics.json"),
}
PREDICTIONS = Path("reports/seed/seed_predictions.csv")


def main() -> None:
    metrics = {name: json.loads(path.read_text()) for name, path in MODELS.items()}
    names = list(metrics)
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    keys = [
        "macro_f1",
        "accuracy",
        *(f"{s}_f1" for s in STANCES),
        *(f"accuracy_{a}" for a in ACTORS),
    ]
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{metrics[n][key]:.3f}" for n in names) + " |")
    support = metrics[names[0]]
    print(
        "\nRows per gold stance: "
        + ", ".join(f"{s} {int(support[f'{s}_support'])}" for s in STANCES)
    )
    with open(PREDICTIONS, encoding="utf-8") as handle:
        pairs = Counter((row["actual"], row["predicted"]) for row in csv.DictReader(handle))
    print("\nConfusion (fine-tuned; rows gold, columns predicted):\n")
    print("| gold \\ predicted | " + " | ".join(STANCES) + " |")
    print("|---|" + "---:|" * len(STANCES))
    for gold in STANCES:
        print(f"| {gold} | " + " | ".join(str(pairs[(gold, p)]) for p in STANCES) + " |")


if __name__ == "__main__":
    main()
