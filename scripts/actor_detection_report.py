"""Precision and recall of actor detection against the labelled seed rows.

A (sentence, actor) row counts as found when pipeline.actors detects that actor in
the sentence. Prints the figures the README quotes, then every miss and false alarm.
Usage: python scripts/actor_detection_report.py [seeds/labels.jsonl]
"""

import sys
from collections import Counter
from pathlib import Path

from pipeline.actors import detect_actors
from pipeline.labels import ACTORS
from pipeline.records import load_labelled
from pipeline.segment import segment_texts


def labelled_and_detected(rows, sentences: set[str]) -> tuple[set, set]:
    """(sentence, actor) pairs labelled in ``rows`` and detected in ``sentences``."""
    gold = {(row.sentence, row.actor) for row in rows}
    found = {
        (s, actor) for s in sentences | {row.sentence for row in rows} for actor in detect_actors(s)
    }
    return gold, found


def recall_precision(gold: set, found: set) -> tuple[float, float]:
    hits = len(gold & found)
    return hits / len(gold), hits / len(found)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "seeds/labels.jsonl")
    rows = load_labelled(path)
    # Sentences of the seed files with no labelled row still count for false alarms.
    sentences = set()
    for doc in {row.doc for row in rows}:
        sentences |= set(segment_texts((path.parent / doc).read_text(encoding="utf-8")))
    gold, found = labelled_and_detected(rows, sentences)
    recall, precision = recall_precision(gold, found)
    print(f"rows labelled: {len(gold)}, rows detected: {len(found)}, both: {len(gold & found)}")
    print(f"recall    {recall:.3f}")
    print(f"precision {precision:.3f}")
    print("\nper actor (recall / precision):")
    for actor in ACTORS:
        g = {p for p in gold if p[1] == actor}
        f = {p for p in found if p[1] == actor}
        if g or f:
            r = len(g & f) / len(g) if g else float("nan")
            p = len(g & f) / len(f) if f else float("nan")
            print(f"  {actor:<7} {r:.3f} / {p:.3f}  (labelled {len(g)}, detected {len(f)})")
    misses, alarms = sorted(gold - found), sorted(found - gold)
    print(f"\nmissed ({len(misses)}):")
    for sentence, actor in misses:
        print(f"  {actor:<7} {sentence[:110]}")
    print(f"\nfalse alarms ({len(alarms)}):")
    for sentence, actor in alarms:
        print(f"  {actor:<7} {sentence[:110]}")
    print("\nfalse alarms by actor:", dict(Counter(actor for _, actor in alarms)))

    # For reference: the training corpus, whose names the alias list was not built from.
    corpus = load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))
    gold, found = labelled_and_detected(corpus, set())
    recall, precision = recall_precision(gold, found)
    print(
        f"\ntraining corpus: rows labelled {len(gold)}, detected {len(found)}, "
        f"recall {recall:.3f}, precision {precision:.3f}"
    )


if __name__ == "__main__":
    main()
