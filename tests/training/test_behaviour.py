"""The behaviour suite runner: case parsing, scoring bookkeeping and pass rates.

Bookkeeping is checked two ways: with a rule-based predict function (a plain
deterministic function, so pass rates can be computed by hand) and with the tiny
real model through StancePredictor (the stage's own path).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.inference import Prediction
from pipeline.labels import STANCES
from training.behaviour import (
    CaseResult,
    SuiteError,
    load_suite,
    parse_suite,
    pass_rates,
    run_suite,
    write_results,
)

SUITE = {
    "mft": [
        {
            "rule": 2,
            "sentence": "Beijing imposed a ban on fish from Hokkaido on Monday.",
            "expect": {"china": "hostile", "japan": "neutral"},
        },
        {
            "rule": 7,
            "sentence": "Canberra called for restraint from every side.",
            "expect": {"other": "hedging"},
        },
        {
            "rule": "stances",
            "sentence": "Taipei hosted a chip industry fair on Friday.",
            "expect": {"taiwan": "neutral"},
        },
    ],
    "inv": [
        {
            "kind": "date",
            "actor": "china",
            "sentence": "Beijing announced a ban on films from Japan.",
            "variants": [
                "On Friday, Beijing announced a ban on films from Japan.",
                "On Friday, Beijing announced new rules on films from Japan.",
            ],
        }
    ],
    "dir": [
        {
            "kind": "restraint",
            "actor": "us",
            "label": "hedging",
            "direction": "up",
            "sentence": "Washington backed Tokyo.",
            "variant": "Washington backed Tokyo but called for restraint.",
        },
        {
            "kind": "restraint",
            "actor": "us",
            "label": "hedging",
            "direction": "down",
            "sentence": "The envoy backed Tokyo and called for restraint.",
            "variant": "The envoy backed Tokyo.",
        },
        {
            "kind": "penalty",
            "actor": "china",
            "label": "hostile",
            "direction": "up",
            "sentence": "Chinese and Japanese officials met on Monday.",
            "variant": "Chinese and Japanese officials met in Tokyo on Monday.",
        },
    ],
}


def keyword_predict(rows: list[tuple[str, str]]) -> list[Prediction]:
    """hostile for 'ban' (for china), hedging for 'restraint', else neutral; the hedging
    score grows with the word 'restraint'."""
    predictions = []
    for sentence, actor in rows:
        lower = sentence.lower()
        if "restraint" in lower:
            stance = "hedging"
        elif re.search(r"\bban\b", lower) and actor == "china":
            stance = "hostile"
        else:
            stance = "neutral"
        scores = {s: 0.1 for s in STANCES}
        scores[stance] = 0.7
        predictions.append(Prediction(actor, stance, scores, truncated=False))
    return predictions


def test_parse_suite_counts_cases():
    suite = parse_suite(SUITE, "inline")
    assert suite.size() == 4 + 2 + 3


def test_run_suite_by_hand():
    results = run_suite(parse_suite(SUITE, "inline"), keyword_predict)
    outcome = [(r.test, r.group, r.actor, r.passed) for r in results]
    assert outcome == [
        ("mft", "rule_02", "china", True),
        ("mft", "rule_02", "japan", True),
        ("mft", "rule_07", "other", True),
        ("mft", "rule_stances", "taiwan", True),
        ("inv", "date", "china", True),  # hostile -> hostile
        ("inv", "date", "china", False),  # hostile -> neutral ("new rules", no ban)
        ("dir", "restraint", "us", True),  # hedging 0.1 -> 0.7
        ("dir", "restraint", "us", True),  # down: 0.7 -> 0.1
        ("dir", "penalty", "china", False),  # 0.1 -> 0.1 does not move
    ]
    assert results[5].expected == "hostile" and results[5].outcome == "neutral"
    assert results[6].expected == "hedging up" and results[6].outcome == "0.100 -> 0.700"


def test_run_suite_wrong_mft_label_fails():
    suite = parse_suite(
        {
            "mft": [
                {"rule": 13, "sentence": "Beijing kept its ban.", "expect": {"china": "neutral"}}
            ]
        },
        "inline",
    )
    (result,) = run_suite(suite, keyword_predict)
    assert (result.outcome, result.passed) == ("hostile", False)


def test_dir_margin():
    suite = parse_suite({"dir": SUITE["dir"][:1]}, "inline")  # hedging 0.1 -> 0.7
    assert run_suite(suite, keyword_predict, dir_margin=0.5)[0].passed
    assert not run_suite(suite, keyword_predict, dir_margin=0.6)[0].passed


def test_pass_rates_by_hand():
    metrics = pass_rates(run_suite(parse_suite(SUITE, "inline"), keyword_predict))
    assert metrics == {
        "cases": 9.0,
        "pass_rate": 7 / 9,  # 4 mft + 1 inv + 2 dir
        "mft_pass_rate": 1.0,
        "mft_cases": 4.0,
        "mft_rule_02_pass_rate": 1.0,
        "mft_rule_07_pass_rate": 1.0,
        "mft_rule_stances_pass_rate": 1.0,
        "inv_pass_rate": 0.5,
        "inv_cases": 2.0,
        "inv_date_pass_rate": 0.5,
        "dir_pass_rate": 2 / 3,
        "dir_cases": 3.0,
        "dir_restraint_pass_rate": 1.0,
        "dir_penalty_pass_rate": 0.0,
    }


def test_pass_rates_leave_out_types_without_cases():
    result = CaseResult("mft", "rule_06", "japan", "s", "", "supportive", "neutral", False)
    assert pass_rates([result]) == {
        "cases": 1.0,
        "pass_rate": 0.0,
        "mft_pass_rate": 0.0,
        "mft_cases": 1.0,
        "mft_rule_06_pass_rate": 0.0,
    }
    assert pass_rates([]) == {}


def test_predict_is_called_once_with_distinct_rows():
    calls = []

    def recording(rows):
        calls.append(list(rows))
        return keyword_predict(rows)

    doubled = {**SUITE, "dir": SUITE["dir"] + [{**SUITE["dir"][0], "kind": "softening"}]}
    results = run_suite(parse_suite(doubled, "inline"), recording)
    assert len(calls) == 1
    assert len(calls[0]) == len(set(calls[0])) == 4 + 3 + 6  # the repeated pair is scored once
    assert len(results) == 10


BAD_SUITES = {
    "not a mapping": ([1, 2], "expected a mapping"),
    "unknown section": ({"mtf": []}, "mtf"),
    "unknown actor": (
        {"mft": [{"rule": 1, "sentence": "x", "expect": {"korea": "neutral"}}]},
        "mft.0.expect.korea",
    ),
    "unknown stance": (
        {"mft": [{"rule": 1, "sentence": "x", "expect": {"us": "friendly"}}]},
        "mft.0.expect.us",
    ),
    "rule out of range": (
        {"mft": [{"rule": 14, "sentence": "x", "expect": {"us": "neutral"}}]},
        "mft.0.rule",
    ),
    "blank sentence": (
        {"mft": [{"rule": 1, "sentence": "  ", "expect": {"us": "neutral"}}]},
        "mft.0.sentence",
    ),
    "no expected label": ({"mft": [{"rule": 1, "sentence": "x", "expect": {}}]}, "mft.0.expect"),
    "unknown inv kind": (
        {"inv": [{"kind": "typo", "actor": "us", "sentence": "x", "variants": ["y"]}]},
        "inv.0.kind",
    ),
    "no variants": (
        {"inv": [{"kind": "date", "actor": "us", "sentence": "x", "variants": []}]},
        "inv.0.variants",
    ),
    "blank variant": (
        {"inv": [{"kind": "date", "actor": "us", "sentence": "x", "variants": ["y", " "]}]},
        "inv.0.variants",
    ),
    "variant equal to sentence": (
        {"inv": [{"kind": "date", "actor": "us", "sentence": "x", "variants": ["y", "x"]}]},
        "inv[0].variants[1]: equal to its sentence",
    ),
    "dir without direction": (
        {"dir": [{**SUITE["dir"][0], "direction": "sideways"}]},
        "dir.0.direction",
    ),
    "dir variant equal": (
        {"dir": [{**SUITE["dir"][0], "variant": SUITE["dir"][0]["sentence"]}]},
        "dir[0].variant: equal to its sentence",
    ),
    "unknown field": ({"dir": [{**SUITE["dir"][0], "labels": "x"}]}, "dir.0.labels"),
    "repeated mft pair": (
        {"mft": [SUITE["mft"][0], {**SUITE["mft"][0], "rule": 13}]},
        "mft[1]: ('china', sentence) repeats mft[0]",
    ),
}


@pytest.mark.parametrize(("raw", "message"), BAD_SUITES.values(), ids=BAD_SUITES)
def test_parse_suite_errors_name_the_case(raw, message):
    with pytest.raises(SuiteError) as raised:
        parse_suite(raw, "cases.yaml")
    assert str(raised.value).startswith("cases.yaml: ")
    assert message in str(raised.value)


def test_load_suite_reports_bad_yaml(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text("mft: [rule: 1\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(path)


def test_tiny_model_bookkeeping(tmp_path, make_tiny_model):
    """The real predictor path: every outcome is the model's own prediction."""
    from pipeline.inference import StancePredictor

    predictor = StancePredictor(make_tiny_model(tmp_path / "model"))
    suite = parse_suite(SUITE, "inline")
    results = run_suite(suite, lambda rows: predictor.predict(rows, batch_size=4))
    assert len(results) == suite.size()
    for result in results:
        if result.test == "mft":
            (prediction,) = predictor.predict([(result.sentence, result.actor)])
            assert result.outcome == prediction.stance
            assert result.passed == (prediction.stance == result.expected)
        elif result.test == "inv":
            original, variant = predictor.predict(
                [(result.sentence, result.actor), (result.variant, result.actor)]
            )
            assert (result.expected, result.outcome) == (original.stance, variant.stance)
            assert result.passed == (original.stance == variant.stance)
        else:
            label, direction = result.expected.split()
            before, after = (
                p.scores[label]
                for p in predictor.predict(
                    [(result.sentence, result.actor), (result.variant, result.actor)]
                )
            )
            assert result.outcome == f"{before:.3f} -> {after:.3f}"
            assert result.passed == ((after > before) if direction == "up" else (before > after))
    metrics = pass_rates(results)
    for test in ("mft", "inv", "dir"):
        mine = [r.passed for r in results if r.test == test]
        assert metrics[f"{test}_pass_rate"] == pytest.approx(sum(mine) / len(mine))
    path = tmp_path / "out" / "results.csv"
    write_results(results, path)
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["passed"]) for row in rows] == [int(r.passed) for r in results]
    assert rows[4]["variant"] == SUITE["inv"][0]["variants"][0]


def test_stage_main_writes_metrics_and_logs_to_the_run(
    tmp_path, make_tiny_model, monkeypatch, clean_mlflow
):
    import mlflow
    from mlflow import MlflowClient

    from pipeline import tracking
    from training import behaviour

    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    Path("params.yaml").write_text(
        yaml.safe_dump({**params, "behaviour": {**params["behaviour"], "min_cases": 9}})
    )
    Path("cases.yaml").write_text(yaml.safe_dump(SUITE))
    model_dir = make_tiny_model(tmp_path / "model")
    experiment_id = tracking.setup(params["mlflow"]["experiment"])
    with mlflow.start_run() as run:
        tracking.write_run_file(model_dir, run.info.run_id, experiment_id)
    argv = ["--model-dir", str(model_dir), "--cases", "cases.yaml"]
    argv += ["--metrics", "m/behaviour.json", "--results", "r/results.csv"]
    behaviour.main(argv)
    metrics = json.loads(Path("m/behaviour.json").read_text())
    assert metrics["cases"] == 9
    logged = MlflowClient().get_run(run.info.run_id).data.metrics
    assert {k: logged[f"behaviour_{k}"] for k in metrics} == pytest.approx(metrics)
    names = [a.path for a in MlflowClient().list_artifacts(run.info.run_id)]
    assert names == ["results.csv"]

    # A suite smaller than behaviour.min_cases is an error before any scoring.
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SuiteError, match=r"9 cases, fewer than behaviour.min_cases \(150\)"):
        behaviour.main(argv)
