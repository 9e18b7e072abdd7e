"""Temperature scaling and expected calibration error, on hand-computed and synthetic values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.records import LabelledRow
from training.calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    fit_temperature,
    negative_log_likelihood,
    softmax,
    uncalibrated,
)
from training.metrics import (
    ECE_BINS,
    calibration_report,
    expected_calibration_error,
    reliability_bins,
    write_report,
)


def synthetic(true_temperature: float, rows: int = 20_000, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_temperature)."""
    rng = np.random.default_rng(seed)
    honest = rng.normal(0.0, 2.0, size=(rows, 4))
    probabilities = softmax(honest)
    # inverse-CDF sampling of one label per row
    labels = (probabilities.cumsum(axis=1) < rng.random((rows, 1))).sum(axis=1).clip(max=3)
    return honest * true_temperature, labels


@pytest.mark.parametrize("true_temperature", [0.6, 1.0, 2.5])
def test_fit_temperature_recovers_known_temperature(true_temperature):
    logits, labels = synthetic(true_temperature)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_fitted_temperature_minimises_nll():
    logits, labels = synthetic(1.8, rows=3_000, seed=1)
    fitted = fit_temperature(logits, labels)
    best = negative_log_likelihood(logits, labels, fitted)
    for other in (1.0, fitted * 0.9, fitted * 1.1):
        assert best < negative_log_likelihood(logits, labels, other)


def test_fit_temperature_stays_in_bounds_on_degenerate_data():
    # All correct with a wide margin: the NLL keeps falling (to 0) as T -> 0.
    logits = np.array([[9.0, 0.0, 0.0, 0.0], [0.0, 9.0, 0.0, 0.0]])
    sharp = fit_temperature(logits, np.array([0, 1]))
    assert MIN_TEMPERATURE <= sharp < 1.0
    assert negative_log_likelihood(logits, np.array([0, 1]), sharp) < 1e-6
    # All wrong: the NLL keeps falling as T grows.
    assert fit_temperature(logits, np.array([1, 0])) == pytest.approx(MAX_TEMPERATURE, rel=1e-3)


def test_negative_log_likelihood_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; labels 1 and 0: NLL = (ln(4/3) + ln 4) / 2
    logits = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    expected = (np.log(4 / 3) + np.log(4)) / 2
    assert negative_log_likelihood(logits, np.array([1, 0]), 1.0) == pytest.approx(expected)
    # T = 2 halves the logits: softmax([0, ln 3 / 2]) = [1 / (1 + sqrt 3), sqrt 3 / (1 + sqrt 3)]
    root = np.sqrt(3.0)
    expected = (np.log((1 + root) / root) + np.log(1 + root)) / 2
    assert negative_log_likelihood(logits, np.array([1, 0]), 2.0) == pytest.approx(expected)


def test_negative_log_likelihood_rejects_bad_shapes():
    with pytest.raises(ValueError, match="n labels"):
        negative_log_likelihood(np.zeros((3, 4)), np.zeros(2, dtype=int), 1.0)
    with pytest.raises(ValueError, match="n > 0"):
        negative_log_likelihood(np.zeros((0, 4)), np.zeros(0, dtype=int), 1.0)


def test_temperature_keeps_the_argmax_and_uncalibrated_inverts_it():
    logits, _ = synthetic(1.0, rows=200)
    for temperature in (0.5, 1.7, 4.0):
        calibrated = softmax(logits, temperature)
        assert np.allclose(calibrated.sum(axis=1), 1.0)
        assert (calibrated.argmax(axis=1) == logits.argmax(axis=1)).all()
        assert np.allclose(uncalibrated(calibrated, temperature), softmax(logits), atol=1e-12)


def test_uncalibrated_accepts_zero_probabilities():
    assert np.allclose(uncalibrated(np.array([[1.0, 0.0, 0.0, 0.0]]), 2.0), [[1, 0, 0, 0]])


# (probabilities, gold) by hand: bins are (0.9, 1], (0.8, 0.9], (0.5, 0.6]
HAND = (
    [
        [0.95, 0.05, 0.00, 0.00],  # confidence 0.95, correct   -> bin 9
        [0.85, 0.15, 0.00, 0.00],  # confidence 0.85, wrong     -> bin 8
        [0.55, 0.45, 0.00, 0.00],  # confidence 0.55, correct   -> bin 5
        [0.10, 0.60, 0.20, 0.10],  # confidence 0.60, wrong     -> bin 5 (upper edge)
    ],
    [0, 1, 0, 0],
)


def test_reliability_bins_by_hand():
    table = reliability_bins(*HAND)
    assert len(table) == ECE_BINS
    assert [b.count for b in table] == [0, 0, 0, 0, 0, 2, 0, 0, 1, 1]
    assert (table[5].lower, table[5].upper) == pytest.approx((0.5, 0.6))
    assert table[5].accuracy == 0.5 and table[5].confidence == pytest.approx(0.575)
    assert table[8].accuracy == 0.0 and table[8].confidence == pytest.approx(0.85)
    assert table[9].accuracy == 1.0 and table[9].confidence == pytest.approx(0.95)


def test_expected_calibration_error_by_hand():
    # (1 * |1 - 0.95| + 1 * |0 - 0.85| + 2 * |0.5 - 0.575|) / 4 = 1.05 / 4
    assert expected_calibration_error(*HAND) == pytest.approx(0.2625)


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy():
    probabilities = [[0.75, 0.25, 0.0, 0.0]] * 4
    assert expected_calibration_error(probabilities, [0, 0, 0, 1]) == pytest.approx(0.0)


def test_edge_confidence_goes_to_the_lower_bin():
    table = reliability_bins([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], [0, 0])
    assert table[4].count == 1 and table[9].count == 1  # (0.4, 0.5] and (0.9, 1]


def test_reliability_bins_reject_empty_input():
    with pytest.raises(ValueError, match="n > 0"):
        reliability_bins(np.zeros((0, 4)), [])


def test_calibration_report_writes_the_diagram(tmp_path):
    logits, labels = synthetic(2.0, rows=2_000, seed=3)
    temperature = fit_temperature(logits, labels)
    path = tmp_path / "plots" / "reliability.png"
    report = calibration_report(
        softmax(logits, temperature), labels.tolist(), temperature, "synthetic", path
    )
    assert path.stat().st_size > 0
    assert report["ece_uncalibrated"] == pytest.approx(
        expected_calibration_error(softmax(logits), labels)
    )
    assert report["ece"] < report["ece_uncalibrated"]


def test_write_report_adds_calibration_when_scores_are_given(tmp_path):
    stances = ["supportive", "hostile", "hedging", "neutral"]
    rows = [
        LabelledRow(id=f"r{i}", doc="d", sentence=f"Sentence {i}.", actor="japan", stance=gold)
        for i, gold in enumerate(["supportive", "hostile", "supportive", "supportive"])
    ]
    probabilities, _ = HAND
    scores = [dict(zip(stances, p, strict=True)) for p in probabilities]
    predicted = [stances[int(np.argmax(p))] for p in probabilities]
    metrics = write_report(tmp_path, "hand", rows, predicted, scores, set_name="hand-made set")
    assert metrics["ece"] == pytest.approx(0.2625)
    assert "ece_uncalibrated" not in metrics  # no temperature: the scores are not scaled
    scaled = write_report(tmp_path / "scaled", "hand", rows, predicted, scores, temperature=2.0)
    raw = uncalibrated(np.array(probabilities), 2.0)
    assert scaled["ece"] == pytest.approx(0.2625)
    assert scaled["ece_uncalibrated"] == pytest.approx(expected_calibration_error(raw, HAND[1]))
    assert json.loads((tmp_path / "hand_metrics.json").read_text())["ece"] == metrics["ece"]
    assert (tmp_path / "hand_reliability.png").stat().st_size > 0
    no_scores = write_report(tmp_path / "plain", "plain", rows, predicted)
    assert "ece" not in no_scores and not (tmp_path / "plain" / "plain_reliability.png").exists()


def test_served_scores_are_divided_by_the_saved_temperature(tmp_path, make_tiny_model):
    """The predictor applies inference.json's temperature: what train saves is served."""
    from pipeline.inference import InferenceConfig, StancePredictor

    raw_dir = make_tiny_model(tmp_path / "raw")
    hot_dir = tmp_path / "hot"
    shutil.copytree(raw_dir, hot_dir)
    InferenceConfig(max_length=32, temperature=2.5).save(hot_dir)
    rows = [
        ("Beijing lodged a protest with the Japanese embassy on Friday.", "china"),
        ("Washington urged calm on both sides of the Taiwan Strait.", "us"),
    ]
    raw, _ = StancePredictor(raw_dir).predict_proba(rows)
    hot, _ = StancePredictor(hot_dir).predict_proba(rows)
    assert not np.allclose(raw, hot)
    assert np.allclose(uncalibrated(hot, 2.5), raw, atol=1e-5)
    assert (raw.argmax(axis=1) == hot.argmax(axis=1)).all()


def test_inference_config_loads_old_files_without_temperature(tmp_path: Path):
    from pipeline.inference import InferenceConfig

    (tmp_path / "inference.json").write_text('{"max_length": 64}')
    assert InferenceConfig.load(tmp_path).temperature == 1.0
