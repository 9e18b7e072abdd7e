"""Draw the seeded random 10% of corpus rows for the blind second labelling.

Writes only what the second annotator may see: id, sentence, actor (no stance, no
style, no document). Usage: python scripts/sample_for_agreement.py OUT.jsonl
"""

import json
import random
import sys
from pathlib import Path

from pipeline.records import load_labelled

FRACTION, SEED = 0.10, 2025


def main() -> None:
    rows = load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))
    sample = random.Random(SEED).sample(rows, round(FRACTION * len(rows)))
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        for row in sample:
            item = {"id": row.id, "sentence": row.sentence, "actor": row.actor}
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(sample)} of {len(rows)} rows -> {sys.argv[1]}")


if __name__ == "__main__":
    main()
