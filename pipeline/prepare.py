"""DVC stage `prepare`: validate labelled data, check for leakage, write the splits.

train / validation come from the training corpus only (validation drawn by a seeded
hash of the sentence, so no sentence is on both sides and a label change moves no
row: `split_validation`); test is the
labelled seed articles. The stage fails, listing the pairs, when a corpus sentence
equals or nearly equals a seed sentence, when two corpus sentences look
template-filled, or when two near-duplicate sentences label the same actor
differently and the pair is not allowlisted with a reason. It also writes the
corpus profile (pipeline.profile) as a DVC metric, with every feature that is
outside its tolerance of the real-news target in ``prepare.profile``, and the
lineage record (pipeline.lineage: the corpus directory's md5 as dvc.lock records it,
and this stage's params), which `train` and `baseline` put on their MLflow runs.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter
from pathlib import Path

from pipeline.atomic import write_json
from pipeline.checks import (
    find_label_conflicts,
    find_leaks,
    find_phrase_leaks,
    find_templates,
    read_conflict_allowlist,
)
from pipeline.config import StrictParams, load_section, require
from pipeline.lineage import Lineage, dir_md5, flatten
from pipeline.profile import out_of_tolerance, profile
from pipeline.records import DataError, LabelledRow, load_labelled, write_jsonl

logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}
REPORT_FILE = "report.json"
PROFILE_FILE = "profile.json"


class ProfileTarget(StrictParams):
    """A real-news figure and how far the corpus may be from it."""

    target: float
    tolerance: float

    def check(self) -> None:
        require(self.tolerance >= 0, "prepare.profile.*.tolerance", "must be >= 0")


class PrepareParams(StrictParams):
    validation_fraction: float
    seed: int
    leakage_jaccard: float
    phrase_leak_words: int
    template_overlap: float
    consistency_jaccard: float
    profile: dict[str, ProfileTarget]
    allow_skipping_invalid_rows: bool = False

    def check(self) -> None:
        require(
            0 < self.validation_fraction < 0.5, "prepare.validation_fraction", "must be in (0, 0.5)"
        )
        require(0 < self.leakage_jaccard <= 1, "prepare.leakage_jaccard", "must be in (0, 1]")
        require(0 < self.template_overlap <= 1, "prepare.template_overlap", "must be in (0, 1]")
        require(self.phrase_leak_words >= 4, "prepare.phrase_leak_words", "must be >= 4")
        require(
            0 < self.consistency_jaccard <= 1, "prepare.consistency_jaccard", "must be in (0, 1]"
        )


class LeakageError(ValueError):
    pass


def validation_draw(sentence: str, seed: int) -> float:
    """A sentence's place in [0, 1): an md5 of the seed and the sentence text, so it
    depends on nothing else (not on labels, not on the other rows)."""
    digest = hashlib.md5(f"{seed}\n{sentence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_validation(
    rows: list[LabelledRow], fraction: float, seed: int
) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """Seeded split with all rows of a sentence on one side: a sentence is validation when
    its `validation_draw` is below ``fraction``. Correcting a label or adding rows moves
    no other row between the sides, so validation figures of two corpus versions are
    measured on the same sentences (a stratified split redrew almost all of them after
    a few label changes). The label shares of the two sides agree within sampling error."""
    train: list[LabelledRow] = []
    validation: list[LabelledRow] = []
    for row in rows:
        (validation if validation_draw(row.sentence, seed) < fraction else train).append(row)
    if not train or not validation:
        empty = "validation" if not validation else "train"
        sentences = len({row.sentence for row in rows})
        raise ValueError(
            f"prepare.validation_fraction {fraction} with prepare.seed {seed} leaves the "
            f"{empty} split empty ({sentences} corpus sentences): change either value "
            f"or add sentences"
        )
    return train, validation


def check_corpus(
    corpus: list[LabelledRow],
    seeds: list[LabelledRow],
    params: PrepareParams,
    allowed_phrases: list[str] = (),
    allowed_conflicts: dict[tuple[str, str], str] | None = None,
) -> dict:
    """Raise LeakageError listing every leaked or template pair; return the check summary."""
    sentences = [row.sentence for row in corpus]
    seed_sentences = [row.sentence for row in seeds]
    leaks = find_leaks(sentences, seed_sentences, params.leakage_jaccard)
    phrases = find_phrase_leaks(
        sentences, seed_sentences, params.phrase_leak_words, allowed_phrases
    )
    templates = find_templates(sentences, params.template_overlap)
    allowed_conflicts = allowed_conflicts or {}
    conflicts = find_label_conflicts(corpus, params.consistency_jaccard)
    unlisted = [c for c in conflicts if c.key not in allowed_conflicts]
    failures = []
    if leaks:
        failures.append(
            f"{len(leaks)} training sentence(s) equal or nearly equal a seed sentence "
            f"(char 5-gram Jaccard >= {params.leakage_jaccard}):\n"
            + "\n".join(f"  {pair}" for pair in leaks)
        )
    if phrases:
        failures.append(
            f"{len(phrases)} training sentence(s) copy a run of {params.phrase_leak_words} "
            "words from a seed sentence (allowlist a name or set phrase only if it is not "
            "a copy):\n" + "\n".join(f"  {pair}" for pair in phrases)
        )
    if templates:
        failures.append(
            f"{len(templates)} template-like pair(s) (> {params.template_overlap:.0%} of word "
            "4-grams shared):\n" + "\n".join(f"  {pair}" for pair in templates)
        )
    if unlisted:
        failures.append(
            f"{len(unlisted)} near-duplicate pair(s) (word Jaccard >= "
            f"{params.consistency_jaccard}) label the same actor differently; fix one label "
            "or allowlist the pair with a reason:\n" + "\n".join(f"  {c}" for c in unlisted)
        )
    if failures:
        raise LeakageError("\n".join(failures))
    return {
        "seed_leaks": 0,
        "seed_phrase_copies": 0,
        "template_pairs": 0,
        "label_conflicts_allowlisted": len(conflicts),
        "distinct_corpus_sentences": len(set(sentences)),
    }


def counts(rows: list[LabelledRow]) -> dict:
    return {
        "rows": len(rows),
        "sentences": len({row.sentence for row in rows}),
        "actor_stance": dict(sorted(Counter(f"{r.actor}/{r.stance}" for r in rows).items())),
    }


def read_allowlist(path: Path | None) -> list[str]:
    if path is None:
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def load_all(
    corpus_files: list[Path], seed_labels: Path, allow_skipping: bool
) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """The corpus and the seed labels; one DataError listing every problem of both."""
    loaded, problems = [], []
    for paths in (corpus_files, seed_labels):
        try:
            loaded.append(load_labelled(paths, allow_skipping=allow_skipping))
        except DataError as error:
            problems += error.problems
    if problems:
        raise DataError(problems)
    corpus, seeds = loaded
    return corpus, seeds


def prepare(
    corpus_files: list[Path],
    seed_labels: Path,
    out_dir: Path,
    params: PrepareParams,
    allowlist: Path | None = None,
    conflict_allowlist: Path | None = None,
    lineage: Lineage | None = None,
) -> dict:
    """Validate, check and split; write the splits, the report, the profile and the
    ``lineage`` record to out_dir. Every check runs before the first file is written,
    and each file replaces its old version whole (pipeline.atomic): a failed prepare
    writes nothing."""
    corpus, seeds = load_all(corpus_files, seed_labels, params.allow_skipping_invalid_rows)
    allowed_conflicts = read_conflict_allowlist(conflict_allowlist) if conflict_allowlist else {}
    checks = check_corpus(corpus, seeds, params, read_allowlist(allowlist), allowed_conflicts)
    train, validation = split_validation(corpus, params.validation_fraction, params.seed)
    splits = {"train": train, "validation": validation, "test": seeds}
    report = {"checks": checks, **{name: counts(rows) for name, rows in splits.items()}}
    figures = profile(corpus)
    targets = {key: spec.target for key, spec in params.profile.items()}
    tolerances = {key: spec.tolerance for key, spec in params.profile.items()}
    drift = out_of_tolerance(figures, targets, tolerances)
    for message in drift:
        logger.warning("%s", message)
    for name, rows in splits.items():
        write_jsonl(out_dir / SPLIT_FILES[name], rows)
    write_json(out_dir / REPORT_FILE, report)
    write_json(out_dir / PROFILE_FILE, {"corpus": figures, "out_of_tolerance": len(drift)})
    if lineage is not None:
        lineage.save(out_dir)
    return report


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-dir", type=Path, required=True)
    parser.add_argument("--seed-labels", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--leakage-allowlist", type=Path, default=None)
    parser.add_argument("--consistency-allowlist", type=Path, default=None)
    args = parser.parse_args(argv)
    params = load_section("prepare", PrepareParams)
    corpus_files = sorted(args.corpus_dir.glob("*.jsonl"))
    if not corpus_files:
        raise SystemExit(f"prepare: no *.jsonl files in {args.corpus_dir}")
    lineage = Lineage(
        corpus_dir=args.corpus_dir.as_posix(),
        corpus_md5=dir_md5(args.corpus_dir),
        corpus_files=sum(1 for path in args.corpus_dir.rglob("*") if path.is_file()),
        params=flatten(params.model_dump(), "prepare"),
    )
    report = prepare(
        corpus_files,
        args.seed_labels,
        args.out_dir,
        params,
        args.leakage_allowlist,
        args.consistency_allowlist,
        lineage,
    )
    logger.info("corpus %s: md5 %s", lineage.corpus_dir, lineage.corpus_md5)
    for name in SPLIT_FILES:
        logger.info(
            "%s: %d rows, %d sentences", name, report[name]["rows"], report[name]["sentences"]
        )


if __name__ == "__main__":
    main()
