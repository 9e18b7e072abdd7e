"""scripts/agreement.py: how each disagreement's outcome is reported against the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def agreement(load_script):
    return load_script("agreement")


def test_applied_resolution_is_reported_plainly(agreement) -> None:
    assert agreement.outcome_text({"resolved": "hostile"}, "hostile") == "hostile"


def test_resolution_missing_from_the_corpus_is_flagged(agreement) -> None:
    assert agreement.outcome_text({"resolved": "hostile"}, "neutral") == (
        "hostile (NOT APPLIED to the corpus)"
    )


def test_unresolved_disagreement_says_so(agreement) -> None:
    assert agreement.outcome_text({}, "neutral") == "UNRESOLVED"


def test_superseded_resolution_names_the_later_rule(agreement) -> None:
    resolution = {"resolved": "hostile", "superseded": {"label": "neutral", "why": "rule 13"}}
    assert agreement.outcome_text(resolution, "neutral") == (
        "hostile, superseded -> neutral (rule 13)"
    )


def test_superseded_label_missing_from_the_corpus_is_flagged(agreement) -> None:
    resolution = {"resolved": "hostile", "superseded": {"label": "neutral", "why": "rule 13"}}
    assert "but the corpus says hedging" in agreement.outcome_text(resolution, "hedging")


def test_every_committed_superseded_resolution_matches_the_corpus() -> None:
    import json

    from pipeline.records import load_labelled

    corpus = {r.id: r.stance for r in load_labelled(sorted((ROOT / "data/corpus").glob("*.jsonl")))}
    lines = (ROOT / "data/agreement/resolutions.jsonl").read_text(encoding="utf-8").splitlines()
    superseded = [r for r in map(json.loads, lines) if "superseded" in r]
    assert superseded, "the four rule-13 resolutions carry 'superseded'"
    for resolution in superseded:
        assert corpus[resolution["id"]] == resolution["superseded"]["label"], resolution["id"]
