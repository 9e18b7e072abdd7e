"""The behaviour suite (data/behaviour/cases.yaml) is valid, covers what it claims to
cover, and stays a test set: no case sentence is near a corpus or seed sentence."""

from collections import Counter
from pathlib import Path
from typing import get_args

import pytest
import yaml

from pipeline.checks import find_leaks
from pipeline.labels import ACTORS
from pipeline.records import load_labelled
from training.behaviour import DirKind, InvKind, load_suite

ROOT = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
GUIDELINE_RULES = [r for r in range(1, 14) if r != 10]  # rule 10 is how to decide, not a case


@pytest.fixture(scope="module")
def suite():
    return load_suite(ROOT / PARAMS["paths"]["behaviour_cases"])


@pytest.fixture(scope="module")
def sentences(suite) -> list[str]:
    texts = [case.sentence for case in suite.mft]
    texts += [text for case in suite.inv for text in (case.sentence, *case.variants)]
    texts += [text for case in suite.dir for text in (case.sentence, case.variant)]
    return texts


def test_size_meets_the_stage_minimum(suite):
    assert suite.size() >= PARAMS["behaviour"]["min_cases"]


def test_every_guideline_rule_has_mft_cases(suite):
    rows = Counter(case.rule for case in suite.mft for _ in case.expect)
    thin = {rule: rows[rule] for rule in [*GUIDELINE_RULES, "stances", "actors"] if rows[rule] < 5}
    assert thin == {}


def test_every_actor_is_tested(suite):
    rows = Counter(actor for case in suite.mft for actor in case.expect)
    assert {actor: rows[actor] for actor in ACTORS if rows[actor] < 8} == {}


def test_every_invariance_and_directional_kind_has_cases(suite):
    inv = Counter(case.kind for case in suite.inv for _ in case.variants)
    assert {kind: inv[kind] for kind in get_args(InvKind) if inv[kind] < 3} == {}
    directional = Counter(case.kind for case in suite.dir)
    assert {kind: directional[kind] for kind in get_args(DirKind) if directional[kind] < 4} == {}


def test_restraint_cases_test_the_us_hedging_score(suite):
    restraint = [case for case in suite.dir if case.kind == "restraint"]
    assert {(c.actor, c.label, c.direction) for c in restraint} == {("us", "hedging", "up")}


def test_sentences_are_not_near_training_or_seed_sentences(sentences):
    threshold = PARAMS["prepare"]["leakage_jaccard"]
    corpus = load_labelled(sorted((ROOT / PARAMS["paths"]["corpus_dir"]).glob("*.jsonl")))
    seeds = load_labelled(ROOT / PARAMS["paths"]["seed_labels"])
    near = find_leaks(sentences, [r.sentence for r in corpus + seeds], threshold)
    assert [str(pair) for pair in near] == []
