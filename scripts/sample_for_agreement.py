"""Draw a seeded random 10% of corpus rows for the blind second labelling.

Writes only what the second annotator may see: id, sentence, actor (no stance, no
style, no document). The corpus grew in rounds, so each round was sampled when it
was written; together the samples cover 10% of every file.
Usage: python scripts/sample_for_agreement.py OUT.jsonl SEED PART [PART ...]
  round 1:     ... data/agreement/sample.jsonl 2025 ca cb cc cd ce cf
  rounds 2-3:  ... data/agreement/sample_rounds_2_3.jsonl 2026 cg ch ci cj ck cl cm cn co cp
  round 4:     ... data/agreement/sample_round_4.jsonl 2027 da db dc dd
"""

import json
import random
import sys
from pathlib import Path

from pipeline.records import load_labelled

FRACTION = 0.10


def main() -> None:
    out, seed, parts = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    files = [Path("data/corpus") / f"part_{part}.jsonl" for part in parts]
    rows = load_labelled(files)
    sample = random.Random(seed).sample(rows, round(FRACTION * len(rows)))
    with open(out, "w", encoding="utf-8") as handle:
        for row in sample:
            item = {"id": row.id, "sentence": row.sentence, "actor": row.actor}
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(sample)} of {len(rows)} rows -> {out}")


if __name__ == "__main__":
    main()
