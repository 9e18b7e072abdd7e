"""Put rounds 1-3 of the corpus into mostly American spelling, as real coverage is.

Rounds 1-3 were written almost all in British spelling (92% of sentences with a
spelling marker), real reporting on the dispute mostly in American (38% British).
A fixed two thirds of the round 1-3 documents (chosen by a hash of the document id,
so the choice is stable) get American forms; the rest stay British. Only spelling
changes: ids, labels and meaning do not. Run from the repository root; rewrites the
files in place and prints how many sentences changed.

    python scripts/mix_spelling.py data/corpus/part_c*.jsonl
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

STEMS = [
    "critic",
    "recogn",
    "organ",
    "emphas",
    "apolog",
    "character",
    "normal",
    "militar",
    "stabil",
    "summar",
    "author",
    "jeopard",
    "minim",
    "real",
    "priorit",
    "mobil",
    "legitim",
    "antagon",
    "penal",
    "scrutin",
    "sympath",
    "capital",
    "destabil",
    "maxim",
    "util",
    "final",
    "formal",
    "public",
    "special",
    "symbol",
    "harmon",
    "neutral",
    "rational",
    "polar",
    "econom",
    "familiar",
    "marginal",
    "sanit",
    "visual",
    "subsid",
]
SUFFIXES = {"ise": "ize", "ised": "ized", "ises": "izes", "ising": "izing",
            "isation": "ization", "isations": "izations"}  # fmt: skip
WORDS = {
    "defence": "defense", "defences": "defenses", "offence": "offense", "offences": "offenses",
    "colour": "color", "favour": "favor", "favours": "favors", "favoured": "favored",
    "favourable": "favorable", "honour": "honor", "honours": "honors", "honoured": "honored",
    "labour": "labor", "behaviour": "behavior", "neighbour": "neighbor",
    "neighbours": "neighbors", "neighbouring": "neighboring", "rumour": "rumor",
    "rumours": "rumors", "harbour": "harbor", "endeavour": "endeavor", "centre": "center",
    "centres": "centers", "programme": "program", "programmes": "programs",
    "travelled": "traveled", "travelling": "traveling", "cancelled": "canceled",
    "signalled": "signaled", "signalling": "signaling", "labelled": "labeled",
    "fuelled": "fueled", "fuelling": "fueling", "modelling": "modeling",
    "analyse": "analyze", "analysed": "analyzed", "judgement": "judgment",
    "manoeuvre": "maneuver", "manoeuvres": "maneuvers", "sceptical": "skeptical",
    "sceptics": "skeptics", "licence": "license", "paralysed": "paralyzed",
}  # fmt: skip


def _case(word: str, replacement: str) -> str:
    return replacement.capitalize() if word[:1].isupper() else replacement


def americanise(text: str) -> str:
    def word(match: re.Match) -> str:
        found = match.group(0)
        lower = found.lower()
        if lower in WORDS:
            return _case(found, WORDS[lower])
        for stem in STEMS:
            for british, american in SUFFIXES.items():
                if lower == stem + british:
                    return _case(found, stem + american)
        return found

    return re.sub(r"[A-Za-z]+", word, text)


def american_doc(doc: str) -> bool:
    return int(hashlib.md5(doc.encode()).hexdigest(), 16) % 3 != 0


def main() -> None:
    changed = 0
    for path in map(Path, sys.argv[1:]):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        for row in rows:
            if american_doc(row["doc"]):
                new = americanise(row["sentence"])
                changed += new != row["sentence"]
                row["sentence"] = new
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        path.write_text(text, encoding="utf-8")
    print(f"{changed} rows changed spelling")


if __name__ == "__main__":
    main()
