"""DVC stage `behaviour`: CheckList-style behaviour tests of the trained model.

The cases (``data/behaviour/cases.yaml``, our own sentences) are of three types:

- ``mft`` (minimum functionality): a sentence and the stance the guideline gives each
  listed actor; one case per (sentence, actor). Tagged with the guideline rule they
  exercise (1-13, ``stances`` for the stance table, ``actors`` for who counts).
- ``inv`` (invariance): an (actor, sentence) and variants that must not change the
  predicted label: officials of the same country and role swapped, one official
  named or described by title, British vs American spelling, a date or an
  attribution prefix added, quote marks changed.
  One case per variant; it passes when the variant's label equals the original's.
- ``dir`` (directional): a variant whose score for one label must move: e.g. an
  explicit call for restraint appended to a supportive `us` sentence must raise the
  `us` hedging score. It passes when the score moves by more than ``dir_margin``.

Pass rates per test type, per MFT rule and per INV/DIR kind go to the metrics file
and to the model's MLflow run (``behaviour_`` prefix), with this stage's params and
the md5 of the cases file; every case with its outcome goes to a CSV. The promotion
thresholds live in ``register`` (params.yaml), which reads these metrics from the run.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import mlflow
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline import tracking
from pipeline.atomic import open_replacing, write_json
from pipeline.config import StrictParams, load_section, require
from pipeline.inference import Prediction, StancePredictor
from pipeline.labels import ACTORS
from pipeline.lineage import file_md5, flatten
from pipeline.records import Actor, Stance

logger = logging.getLogger(__name__)

TEST_TYPES = ("mft", "inv", "dir")
METRIC_PREFIX = "behaviour_"  # in the MLflow run; the metrics file has the bare names
Rule = Annotated[int, Field(ge=1, le=13)] | Literal["stances", "actors"]
InvKind = Literal["swap_official", "name_form", "spelling", "date", "attribution", "quote_marks"]
DirKind = Literal["restraint", "softening", "penalty", "refusal"]
Predict = Callable[[list[tuple[str, str]]], list[Prediction]]


class BehaviourParams(StrictParams):
    batch_size: int
    min_cases: int  # a suite smaller than this is an error (a truncated or emptied file)
    dir_margin: float  # a directional case passes when its score moves by more than this

    def check(self) -> None:
        require(self.batch_size >= 1, "behaviour.batch_size", "must be >= 1")
        require(self.min_cases >= 1, "behaviour.min_cases", "must be >= 1")
        require(0 <= self.dir_margin < 1, "behaviour.dir_margin", "must be in [0, 1)")


class _Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str | None = None

    @field_validator("sentence", "variant", "variants", check_fields=False)
    @classmethod
    def _not_blank(cls, value):
        for text in [value] if isinstance(value, str) else value:
            if not text.strip():
                raise ValueError("must not be empty or whitespace")
        return value


class MftCase(_Case):
    rule: Rule
    sentence: str
    expect: dict[Actor, Stance] = Field(min_length=1)


class InvCase(_Case):
    kind: InvKind
    actor: Actor
    sentence: str
    variants: list[str] = Field(min_length=1)


class DirCase(_Case):
    kind: DirKind
    actor: Actor
    label: Stance
    direction: Literal["up", "down"]
    sentence: str
    variant: str


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mft: list[MftCase] = []
    inv: list[InvCase] = []
    dir: list[DirCase] = []

    def size(self) -> int:
        """Cases as scored: one per MFT (sentence, actor), INV variant and DIR pair."""
        return (
            sum(len(case.expect) for case in self.mft)
            + sum(len(case.variants) for case in self.inv)
            + len(self.dir)
        )


class SuiteError(ValueError):
    """The cases file is malformed; the message names the file, the case and the field."""


def _problems(suite: Suite) -> list[str]:
    """Cases that parse but cannot test anything (a variant equal to its original)
    or are listed twice."""
    problems, seen = [], {}
    for i, case in enumerate(suite.mft):
        for actor in case.expect:
            key = (case.sentence, actor)
            if key in seen:
                problems.append(f"mft[{i}]: ({actor!r}, sentence) repeats mft[{seen[key]}]")
            seen.setdefault(key, i)
    for i, case in enumerate(suite.inv):
        for j, variant in enumerate(case.variants):
            if variant == case.sentence:
                problems.append(f"inv[{i}].variants[{j}]: equal to its sentence")
    for i, case in enumerate(suite.dir):
        if case.variant == case.sentence:
            problems.append(f"dir[{i}].variant: equal to its sentence")
    return problems


def parse_suite(raw: object, source: str) -> Suite:
    """The suite from the parsed YAML ``raw``; SuiteError naming ``source`` otherwise."""
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: expected a mapping with keys {list(TEST_TYPES)}")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as error:
        lines = [
            f"{source}: {'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            f" (got {item.get('input')!r})"
            for item in error.errors()
        ]
        raise SuiteError("\n".join(lines)) from None
    problems = _problems(suite)
    if problems:
        raise SuiteError("\n".join(f"{source}: {problem}" for problem in problems))
    return suite


def load_suite(path: Path) -> Suite:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    return parse_suite(raw, str(path))


@dataclass(frozen=True)
class CaseResult:
    test: str  # mft, inv or dir
    group: str  # the MFT rule ("rule_06", "rule_stances") or the INV/DIR kind
    actor: str
    sentence: str
    variant: str  # "" for MFT
    expected: str  # MFT: the gold stance; INV: the original's label; DIR: "hedging up"
    outcome: str  # MFT/INV: the predicted label; DIR: "0.120 -> 0.340"
    passed: bool


def rule_group(rule: int | str) -> str:
    return f"rule_{rule:02d}" if isinstance(rule, int) else f"rule_{rule}"


def run_suite(suite: Suite, predict: Predict, dir_margin: float = 0.0) -> list[CaseResult]:
    """Score every case; one predict call over the distinct (sentence, actor) rows."""
    rows: list[tuple[str, str]] = []
    for case in suite.mft:
        rows += [(case.sentence, actor) for actor in case.expect]
    for case in suite.inv:
        rows += [(text, case.actor) for text in (case.sentence, *case.variants)]
    for case in suite.dir:
        rows += [(case.sentence, case.actor), (case.variant, case.actor)]
    distinct = list(dict.fromkeys(rows))
    scored = dict(zip(distinct, predict(distinct), strict=True))

    results = []
    for case in suite.mft:
        for actor, gold in case.expect.items():
            stance = scored[(case.sentence, actor)].stance
            results.append(
                CaseResult(
                    test="mft",
                    group=rule_group(case.rule),
                    actor=actor,
                    sentence=case.sentence,
                    variant="",
                    expected=gold,
                    outcome=stance,
                    passed=stance == gold,
                )
            )
    for case in suite.inv:
        original = scored[(case.sentence, case.actor)].stance
        for variant in case.variants:
            stance = scored[(variant, case.actor)].stance
            results.append(
                CaseResult(
                    test="inv",
                    group=case.kind,
                    actor=case.actor,
                    sentence=case.sentence,
                    variant=variant,
                    expected=original,
                    outcome=stance,
                    passed=stance == original,
                )
            )
    for case in suite.dir:
        before = scored[(case.sentence, case.actor)].scores[case.label]
        after = scored[(case.variant, case.actor)].scores[case.label]
        moved = after - before if case.direction == "up" else before - after
        results.append(
            CaseResult(
                test="dir",
                group=case.kind,
                actor=case.actor,
                sentence=case.sentence,
                variant=case.variant,
                expected=f"{case.label} {case.direction}",
                outcome=f"{before:.3f} -> {after:.3f}",
                passed=moved > dir_margin,
            )
        )
    return results


def pass_rates(results: list[CaseResult]) -> dict[str, float]:
    """``<type>_pass_rate`` and ``<type>_cases`` per test type, ``<type>_<group>_pass_rate``
    per rule or kind, ``pass_rate`` and ``cases`` over all; types without cases are absent."""
    buckets: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        buckets[result.test].append(result.passed)
        buckets[f"{result.test}_{result.group}"].append(result.passed)
    metrics: dict[str, float] = {}
    if results:
        metrics["cases"] = float(len(results))
        metrics["pass_rate"] = sum(r.passed for r in results) / len(results)
    for key in sorted(buckets):
        outcomes = buckets[key]
        metrics[f"{key}_pass_rate"] = sum(outcomes) / len(outcomes)
        if key in TEST_TYPES:
            metrics[f"{key}_cases"] = float(len(outcomes))
    return metrics


def write_results(results: list[CaseResult], path: Path) -> None:
    columns = ["test", "group", "actor", "passed", "expected", "outcome", "sentence", "variant"]
    with open_replacing(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for result in results:
            writer.writerow({**asdict(result), "passed": int(result.passed)})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--cases", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="every case (CSV)")
    args = parser.parse_args(argv)
    params = load_section("behaviour", BehaviourParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)
    tracking.setup(tracking_params.experiment)  # an unreachable server fails before any work

    suite = load_suite(args.cases)
    if suite.size() < params.min_cases:
        raise SuiteError(
            f"{args.cases}: {suite.size()} cases, fewer than behaviour.min_cases "
            f"({params.min_cases})"
        )
    predictor = StancePredictor(args.model_dir)
    results = run_suite(
        suite,
        lambda rows: predictor.predict(rows, batch_size=params.batch_size),
        params.dir_margin,
    )
    metrics = pass_rates(results)
    write_json(args.metrics, metrics)
    write_results(results, args.results)
    for test in TEST_TYPES:
        if f"{test}_cases" in metrics:
            logger.info(
                "%s: %d/%d passed (%.3f)",
                test,
                sum(r.passed for r in results if r.test == test),
                metrics[f"{test}_cases"],
                metrics[f"{test}_pass_rate"],
            )
    actors_without_cases = [a for a in ACTORS if not any(r.actor == a for r in results)]
    if actors_without_cases:
        logger.warning("no behaviour case for actor(s) %s", actors_without_cases)

    with mlflow.start_run(run_id=tracking.read_run_id(args.model_dir)):
        used = flatten(params.model_dump(), "behaviour")
        tracking.log_params({**used, "behaviour_cases_md5": file_md5(args.cases)})
        mlflow.log_metrics({METRIC_PREFIX + key: value for key, value in metrics.items()})
        mlflow.log_artifact(str(args.results))


if __name__ == "__main__":
    main()
