"""List training-corpus sentences that come close to a real-news dev sentence.

The dev set (../shared/realnews-dev.jsonl) is for model choice and error analysis only;
the corpus writers never see it. Corpus rounds aimed at the dev set's error KINDS could
still, by chance or by a too-specific brief, produce a sentence that mirrors a dev
sentence, which would flatter the dev score. This check is run on every new corpus part
before it is merged: it prints each corpus sentence whose character 5-gram Jaccard with a
dev sentence reaches --jaccard, or that shares a run of --words words with one, and exits
1 if there is any. Dev sentences are printed only to the terminal, never written.

Usage: python scripts/dev_overlap.py [--dev PATH] [--jaccard 0.4] [--words 8] FILE_OR_DIR...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.checks import find_leaks, find_phrase_leaks
from pipeline.records import DEFAULT_DEV, DataError, load_labelled, read_dev


def corpus_files(paths: list[Path]) -> list[Path]:
    """The .jsonl files named, and those inside the folders named."""
    return [f for p in paths for f in (sorted(p.glob("*.jsonl")) if p.is_dir() else [p])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="corpus .jsonl files or folders")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--jaccard", type=float, default=0.4, help="character 5-gram Jaccard")
    parser.add_argument("--words", type=int, default=8, help="length of a shared word run")
    args = parser.parse_args(argv)
    if not args.dev.is_file():
        raise SystemExit(f"{args.dev}: dev set not found")
    try:  # both name the file and line of every bad row
        dev = [row.sentence for row in read_dev(args.dev)]
        candidates = [row.sentence for row in load_labelled(corpus_files(args.paths))]
    except DataError as error:
        raise SystemExit(str(error)) from error
    close = find_leaks(candidates, dev, args.jaccard)
    runs = find_phrase_leaks(candidates, dev, args.words)
    for pair in close:
        print(f"jaccard {pair}")
    for pair in runs:
        print(f"words   {pair}")
    print(
        f"{len(set(candidates))} corpus sentences against {len(set(dev))} dev sentences: "
        f"{len(close)} with Jaccard >= {args.jaccard}, {len(runs)} sharing {args.words} words"
    )
    return 1 if close or runs else 0


if __name__ == "__main__":
    sys.exit(main())
