"""Inter-annotator agreement on the blind 10% samples (data/agreement/).

Compares the second annotator's stances with the current corpus labels (so rows
relabelled in round 4 to the sharpened guideline count with their new label, and
rows cut since are left out and counted): Cohen's kappa and
raw agreement per sample and overall, the confusion between the two, and every
disagreement with its resolution from data/agreement/resolutions.jsonl (a resolution
that a later rule overturned carries "superseded": the label now in the corpus and why).
Usage: python scripts/agreement.py
"""

import json
from collections import Counter
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from pipeline.labels import STANCES
from pipeline.records import load_labelled

AGREEMENT_DIR = Path("data/agreement")
SAMPLES = {
    "round 1 (ca-cf)": "second_annotator.jsonl",
    "rounds 2-3 (cg-cp)": "second_annotator_rounds_2_3.jsonl",
    "round 4 (da-dd)": "second_annotator_round_4.jsonl",
    "rounds 4b-6 (de-dj, ea-ec)": "second_annotator_rounds_4b_5_6.jsonl",
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def agreement_line(name: str, first: list[str], second: list[str]) -> str:
    kappa = cohen_kappa_score(first, second, labels=list(STANCES))
    agree = sum(a == b for a, b in zip(first, second, strict=True)) / len(first)
    return f"{name}: rows {len(first)}, raw agreement {agree:.3f}, Cohen's kappa {kappa:.3f}"


def outcome_text(resolution: dict, current: str) -> str:
    """How a disagreement ended, checked against the label the corpus has now."""
    outcome = resolution.get("resolved", "UNRESOLVED")
    superseded = resolution.get("superseded")
    if superseded and current == superseded["label"]:
        return f"{outcome}, superseded -> {current} ({superseded['why']})"
    if superseded:
        return f"{outcome} (superseded by {superseded['label']}, but the corpus says {current})"
    if outcome != "UNRESOLVED" and current != outcome:
        return f"{outcome} (NOT APPLIED to the corpus)"
    return outcome


def main() -> None:
    corpus = {row.id: row for row in load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))}
    resolutions_path = AGREEMENT_DIR / "resolutions.jsonl"
    resolutions = {}
    if resolutions_path.exists():
        resolutions = {r["id"]: r for r in read_jsonl(resolutions_path)}
    all_first, all_second, items = [], [], []
    for name, file in SAMPLES.items():
        if not (AGREEMENT_DIR / file).exists():
            print(f"{name}: {file} missing")
            continue
        sampled = read_jsonl(AGREEMENT_DIR / file)
        # Round 4 cut some sampled rows (headlines, list fragments, repetitive kinds):
        # they are counted and left out, never silently.
        second = [item for item in sampled if item["id"] in corpus]
        if len(second) < len(sampled):
            print(f"{name}: {len(sampled) - len(second)} of {len(sampled)} sampled rows were "
                  "cut from the corpus later and are left out")  # fmt: skip
        # Agreement is measured on the labels as they were before disagreements were
        # resolved; resolutions.jsonl keeps that original label as "corpus".
        first = [
            resolutions[item["id"]]["corpus"]
            if item["id"] in resolutions
            else corpus[item["id"]].stance
            for item in second
        ]
        print(agreement_line(name, first, [item["stance"] for item in second]))
        all_first += first
        all_second += [item["stance"] for item in second]
        items += second
    print(agreement_line("all samples", all_first, all_second))
    pairs = Counter(zip(all_first, all_second, strict=True))
    print("\ncorpus label (rows) x second annotator (columns), all samples:")
    print(" " * 12 + "".join(f"{s:>12}" for s in STANCES))
    for a in STANCES:
        print(f"{a:>12}" + "".join(f"{pairs[(a, b)]:>12}" for b in STANCES))
    print("\ndisagreements:")
    for item, first in zip(items, all_first, strict=True):
        if item["stance"] != first:
            outcome = outcome_text(resolutions.get(item["id"], {}), corpus[item["id"]].stance)
            print(f"  {item['id']}: corpus={first} second={item['stance']} -> {outcome}")
            print(f"      {corpus[item['id']].sentence[:140]}")


if __name__ == "__main__":
    main()
