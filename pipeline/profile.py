"""Corpus profile: how much the labelled text reads like real reporting.

The figures are the ones the real-news profile (issue 12) measures on real pages, so
the `prepare` stage can write the training corpus's figures as a DVC metric and a data
test can hold them within a documented tolerance of the real-news targets in
``params.yaml`` (``prepare.profile``).

Every feature is computed over distinct sentences except the stance shares, which
are over (sentence, actor) rows. Definitions (all on the raw sentence text):

- ``words``: whitespace-separated tokens.
- ``quote``: the sentence contains a double quotation mark (straight or curly) or
  an opening single curly quote.
- ``date``: names a weekday or a month (capitalised full name, or a month
  abbreviation with a full stop such as "Nov.").
- ``adverbial_opening``: the first word is a connective or opens an adverbial
  phrase (``OPENERS``): "On Tuesday, ...", "Despite ...", "While ...", "But ...".
- ``actors_3plus``: the sentence has rows for three or more actors.
- ``headline_or_fragment``: the row's ``style`` is ``headline`` or ``list_fragment``.
- ``british_spelling``: among sentences with a spelling marker (``-ise``/``-ize``
  verbs of the dispute, defence/defense, ...), the share with a British form.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable

from pipeline.labels import STANCES
from pipeline.records import LabelledRow

_QUOTE = re.compile(r"[\"\u201c\u201d]|(?:^|\s)\u2018")
_DATE = re.compile(
    r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March"
    r"|April|May|June|July|August|September|October|November|December"
    r"|(?:Jan|Feb|Mar|Apr|Aug|Sept|Sep|Oct|Nov|Dec)\.)"
)
OPENERS = frozenset(
    (
        "on",
        "in",
        "at",
        "by",
        "after",
        "before",
        "despite",
        "while",
        "whilst",
        "but",
        "however",
        "although",
        "though",
        "meanwhile",
        "since",
        "as",
        "when",
        "earlier",
        "later",
        "last",
        "yet",
        "and",
        "still",
        "instead",
        "even",
        "amid",
        "amidst",
        "following",
        "separately",
        "elsewhere",
        "until",
        "during",
        "over",
        "within",
        "without",
        "because",
        "once",
        "now",
        "today",
        "yesterday",
        "moreover",
        "nevertheless",
        "nonetheless",
        "indeed",
        "asked",
        "speaking",
        "responding",
        "addressing",
        "throughout",
        "beyond",
        "under",
        "with",
        "for",
    )
)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_BRITISH = re.compile(
    r"\b(?:defence|criticis\w*|recognis\w*|organis\w*|emphasis(?:e|ed|es|ing)|apologis\w*"
    r"|characteris\w*|normalis\w*|militaris\w*|stabilis\w*|summaris\w*|colour\w*|centre\w*"
    r"|programme\w*|labour\w*|favour\w*|honour\w*|authoris\w*|jeopardis\w*|minimis\w*)\b",
    re.IGNORECASE,
)
_AMERICAN = re.compile(
    r"\b(?:defense|criticiz\w*|recogniz\w*|organiz\w*|emphasiz\w*|apologiz\w*"
    r"|characteriz\w*|normaliz\w*|militariz\w*|stabiliz\w*|summariz\w*|color\w*|center\w*"
    r"|program|programs|labor\w*|favor\w*|honor\w*|authoriz\w*|jeopardiz\w*|minimiz\w*)\b",
    re.IGNORECASE,
)
FRAGMENT_STYLES = frozenset({"headline", "list_fragment"})


def word_count(sentence: str) -> int:
    return len(sentence.split())


def has_quote(sentence: str) -> bool:
    return bool(_QUOTE.search(sentence))


def names_date(sentence: str) -> bool:
    return bool(_DATE.search(sentence))


def adverbial_opening(sentence: str) -> bool:
    match = _FIRST_WORD.search(sentence)
    return bool(match) and match.start() <= 2 and match.group(0).lower() in OPENERS


def spelling(sentence: str) -> str | None:
    """'british', 'american' or None (no marker, or both kinds)."""
    british, american = bool(_BRITISH.search(sentence)), bool(_AMERICAN.search(sentence))
    if british == american:
        return None
    return "british" if british else "american"


def _share(flags: Iterable[bool]) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else 0.0


def profile(rows: list[LabelledRow]) -> dict[str, float]:
    """The profile figures of ``rows`` (see the module docstring for definitions)."""
    actors: dict[str, set[str]] = defaultdict(set)
    styles: dict[str, str | None] = {}
    for row in rows:
        actors[row.sentence].add(row.actor)
        styles.setdefault(row.sentence, row.style)
    sentences = list(actors)
    words = sorted(word_count(s) for s in sentences) or [0]
    spelled = [s for s in (spelling(x) for x in sentences) if s is not None]
    figures = {
        "sentences": len(sentences),
        "rows": len(rows),
        "words_mean": statistics.fmean(words),
        "words_median": statistics.median(words),
        "words_p90": words[min(len(words) - 1, int(0.9 * len(words)))],
        "words_max": words[-1],
        "over_40_words": _share(w > 40 for w in words),
        "quote": _share(has_quote(s) for s in sentences),
        "date": _share(names_date(s) for s in sentences),
        "adverbial_opening": _share(adverbial_opening(s) for s in sentences),
        "actors_3plus": _share(len(a) >= 3 for a in actors.values()),
        "headline_or_fragment": _share(styles[s] in FRAGMENT_STYLES for s in sentences),
        "british_spelling": _share(s == "british" for s in spelled),
    }
    for stance in STANCES:
        figures[f"share_{stance}"] = _share(row.stance == stance for row in rows)
    taiwan = [row for row in rows if row.actor == "taiwan"]
    figures["taiwan_neutral"] = _share(row.stance == "neutral" for row in taiwan)
    return {k: round(float(v), 4) for k, v in figures.items()}


def out_of_tolerance(
    figures: dict[str, float], targets: dict[str, float], tolerances: dict[str, float]
) -> list[str]:
    """One message per target feature whose figure is further than its tolerance."""
    problems = []
    for key, target in targets.items():
        if key not in figures:
            problems.append(f"profile: unknown feature {key!r}")
            continue
        tolerance = tolerances[key]
        if abs(figures[key] - target) > tolerance:
            problems.append(f"profile: {key} = {figures[key]:.3f}, target {target} +/- {tolerance}")
    return problems


def main() -> None:
    """Print the profile of labelled JSONL files: ``python -m pipeline.profile FILE...``."""
    import argparse
    import json
    from pathlib import Path

    from pipeline.records import load_labelled

    parser = argparse.ArgumentParser(description="Print the corpus profile of labelled files.")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    rows = [row for path in args.files for row in load_labelled(path)]
    print(json.dumps(profile(rows), indent=2))


if __name__ == "__main__":
    main()
