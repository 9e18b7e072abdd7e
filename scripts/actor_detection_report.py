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


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "seeds/labels.jsonl")
    rows = load_labelled(path)
    gold = {(row.sentence, row.actor) for row in rows}
    sentences = {row.sentence for row in rows}
    # Sentences of the seed files with no labelled row still count for false alarms.
    for doc in {row.doc for row in rows}:
        sentences |= set(segment_texts((path.parent / doc).read_text(encoding="utf-8")))
    found = {(s, actor) for s in sentences for actor in detect_actors(s)}
    hits = gold & found
    print(f"rows labelled: {len(gold)}, rows detected: {len(found)}, both: {len(hits)}")
    print(f"recall    {len(hits) / len(gold):.3f}")
    print(f"precision {len(hits) / len(found):.3f}")
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
    gold = {(row.sentence, row.actor) for row in corpus}
    found = {(s, actor) for s in {row.sentence for row in corpus} for actor in detect_actors(s)}
    hits = gold & found
    print(
        f"\ntraining corpus: rows labelled {len(gold)}, detected {len(found)}, "
        f"recall {len(hits) / len(gold):.3f}, precision {len(hits) / len(found):.3f}"
    )


if __name__ == "__main__":
    main()
