"""scripts/load.py's request plan and figures (the load itself is run by `make load`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.schemas import ClassifyRequest, ScoreRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def load(load_script):
    return load_script("load")


def test_the_plan_is_valid_mixed_varied_and_repeatable(load) -> None:
    requests = load.plan(400, seed=3)

    assert requests == load.plan(400, seed=3) != load.plan(400, seed=4)
    for path, body in requests:
        model = ClassifyRequest if path == "/classify" else ScoreRequest
        model.model_validate(body)  # every body is one the service accepts
    classify = [len(body["items"]) for path, body in requests if path == "/classify"]
    documents = [body["text"] for path, body in requests if path == "/score"]
    assert 0.5 < len(classify) / len(requests) < 0.8
    assert min(classify) == 1 and max(classify) > 32
    assert any("\n" in text for text in documents)
    lengths = [len(item["sentence"]) for _, b in requests if "items" in b for item in b["items"]]
    assert min(lengths) < 120 and max(lengths) > 800  # some far over the max tokens


def test_percentile_is_the_nearest_rank(load) -> None:
    values = [float(v) for v in range(1, 101)]
    assert [load.percentile(values, q) for q in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_expected_rows_follow_the_items_and_the_detected_actors(load) -> None:
    assert load.expected_rows("/classify", {"items": [{}, {}, {}]}) == 3
    text = "Beijing summoned Japan's ambassador.\nThe weather was mild."
    assert load.expected_rows("/score", {"text": text}) == 2  # china and japan
    assert load.expected_rows("/score", {"text": text, "actors": ["us"]}) == 0
