"""Corpus counts for the data card: actor x stance, style, dispute, multi-actor share.

Prints Markdown tables (pasted into data/README.md). Usage: python scripts/corpus_stats.py
"""

from collections import Counter, defaultdict
from pathlib import Path

from pipeline.labels import ACTORS, STANCES
from pipeline.records import load_labelled


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    rows = load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))
    n = len(rows)
    actors_of = defaultdict(set)
    for row in rows:
        actors_of[row.sentence].add(row.actor)
    multi = sum(len(a) >= 2 for a in actors_of.values())
    print(
        f"rows: {n}, distinct sentences: {len(actors_of)}, documents: {len({r.doc for r in rows})}"
    )
    print(f"sentences naming 2+ actors: {multi} ({multi / len(actors_of):.1%})\n")
    cells = Counter((r.actor, r.stance) for r in rows)
    body = []
    for actor in ACTORS:
        total = sum(cells[(actor, s)] for s in STANCES)
        body.append([actor, *(cells[(actor, s)] for s in STANCES), f"{total} ({total / n:.1%})"])
    stance_totals = Counter(r.stance for r in rows)
    body.append(
        ["**all**", *(f"{stance_totals[s]} ({stance_totals[s] / n:.1%})" for s in STANCES), n]
    )
    print(table(["actor", *STANCES, "total"], body) + "\n")
    style_sentences = Counter({r.sentence: r.style for r in rows}.values())
    print(table(["style", "sentences"], [[s, c] for s, c in style_sentences.most_common()]) + "\n")
    disputes = Counter(r.dispute for r in rows)
    print(
        table(
            ["dispute", "rows", "share"],
            [[d, c, f"{c / n:.1%}"] for d, c in disputes.most_common()],
        )
    )


if __name__ == "__main__":
    main()
