"""Share of corpus sentences of each kind the real-news profile found thin (issue 12).

A kind is matched by a keyword pattern over the sentence (an approximation: it counts
sentences that talk about the kind, whatever their label). Prints, per kind, the
share the issue measured on real news (its own classification), and the same
pattern's share on the real-news dev set (read from ../shared at run time, if
present) and on the corpus: the last two are a like-for-like comparison.
Usage: python scripts/thin_kinds.py [--dev ../shared/realnews-dev.jsonl]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from pipeline.records import load_labelled

# kind: (real-news share of sentences, pattern)
KINDS = {
    "China demands retraction / threatens countermeasures": (
        0.18,
        r"retract|withdraw (?:her|the) |countermeasure|bear all (?:the )?consequences"
        r"|crushing defeat|pay a (?:heavy )?price|firm(?:ly)? respon|resolute(?:ly)? respon",
    ),
    "Japan refusing to retract": (
        0.078,
        r"(?:not|never|refus\w*|declin\w*|no plans? to|won't|will not) (?:to )?"
        r"(?:retract|withdraw|take back)",
    ),
    "'unchanged' / 1972 formula": (0.065, r"unchanged|not changed|1972|joint communiqu"),
    "PM qualifying her remark": (
        0.039,
        r"reflect(?:ion)?\b|worst[- ]case|specific (?:case|scenario|example)|refrain from"
        r"|hypothetical",
    ),
    "Trump-Takaichi call / advice not to provoke": (
        0.045,
        r"not to provoke|tone down|Trump\W+(?:and\W+)?Takaichi|Takaichi\W+(?:and\W+)?Trump"
        r"|(?:phone|telephone) call",
    ),
    "summons and demarches": (0.058, r"summon|d[eé]marche|lodged? (?:a |stern |strong )*protest"),
    "background on Taiwan's status / Beijing's claim": (
        0.032,
        r"claims? (?:Taiwan|the island)|part of (?:its|China's|Chinese) territory"
        r"|inseparable part|internal affair|one[- ]China",
    ),
    "no comment": (0.019, r"no comment|declined to comment|did not (?:immediately )?respond"),
    "export controls (dual-use, rare earths)": (0.013, r"dual[- ]use|rare earth|export control"),
    "safety warnings to Chinese nationals / Japan's rebuttal": (
        0.013,
        r"safety|security risks?|\bsafe\b",
    ),
    "follow-ups in 2026": (0.013, r"\b2026\b|January|February|March"),
}


def share(regex: re.Pattern, sentences: list[str]) -> str:
    if not sentences:
        return "n/a"
    return f"{sum(bool(regex.search(s)) for s in sentences) / len(sentences):.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=Path("../shared/realnews-dev.jsonl"))
    args = parser.parse_args()
    rows = load_labelled(sorted(Path("data/corpus").glob("*.jsonl")))
    corpus = sorted({row.sentence for row in rows})
    dev = []
    if args.dev.is_file():
        lines = args.dev.read_text(encoding="utf-8").splitlines()
        dev = sorted({json.loads(line)["sentence"] for line in lines if line.strip()})
    print(f"{len(corpus)} distinct corpus sentences, {len(dev)} dev sentences\n")
    print("| kind | real news (issue) | dev set (pattern) | corpus (pattern) |")
    print("|---|---:|---:|---:|")
    for kind, (real, pattern) in KINDS.items():
        regex = re.compile(pattern, re.IGNORECASE)
        print(f"| {kind} | {real:.1%} | {share(regex, dev)} | {share(regex, corpus)} |")


if __name__ == "__main__":
    main()
