"""Inter-annotator agreement on the blind 10% sample (data/agreement/).

Compares the second annotator's stances with the corpus labels: Cohen's kappa,
raw agreement, the confusion between the two, and every disagreement with its
resolution from data/agreement/resolutions.jsonl when that file has one.
Usage: python scripts/agreement.py
"""

import json
from collections import Counter
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from pipeline.labels import STANCES
from pipeline.records import load_labelled

AGREEMENT_DIR = Path("data/agreement")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main() -> None:
    corpus = {row.id: row for row in load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))}
    second = read_jsonl(AGREEMENT_DIR / "second_annotator.jsonl")
    resolutions_path = AGREEMENT_DIR / "resolutions.jsonl"
    resolutions = {}
    if resolutions_path.exists():
        resolutions = {r["id"]: r for r in read_jsonl(resolutions_path)}
    missing = [item["id"] for item in second if item["id"] not in corpus]
    if missing:
        raise SystemExit(f"ids not in the corpus: {missing[:10]}")
    # Agreement is measured on the labels as they were before disagreements were
    # resolved; resolutions.jsonl keeps that original label as "corpus".
    first_labels = [
        resolutions[item["id"]]["corpus"]
        if item["id"] in resolutions
        else corpus[item["id"]].stance
        for item in second
    ]
    second_labels = [item["stance"] for item in second]
    kappa = cohen_kappa_score(first_labels, second_labels, labels=list(STANCES))
    agree = sum(a == b for a, b in zip(first_labels, second_labels, strict=True))
    print(
        f"rows: {len(second)}  raw agreement: {agree / len(second):.3f}  Cohen's kappa: {kappa:.3f}"
    )
    pairs = Counter(zip(first_labels, second_labels, strict=True))
    print("\ncorpus label (rows) x second annotator (columns):")
    print(" " * 12 + "".join(f"{s:>12}" for s in STANCES))
    for a in STANCES:
        print(f"{a:>12}" + "".join(f"{pairs[(a, b)]:>12}" for b in STANCES))
    print("\ndisagreements:")
    for item, first in zip(second, first_labels, strict=True):
        if item["stance"] != first:
            row = corpus[item["id"]]
            resolution = resolutions.get(item["id"], {})
            outcome = resolution.get("resolved", "UNRESOLVED")
            if outcome != "UNRESOLVED" and corpus[item["id"]].stance != outcome:
                outcome += " (NOT APPLIED to the corpus)"
            print(f"  {item['id']}: corpus={first} second={item['stance']} -> {outcome}")
            print(f"      {row.sentence[:140]}")


if __name__ == "__main__":
    main()
