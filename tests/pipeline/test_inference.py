"""The predictor: one tokenisation, length-sorted batches, request order, the config file."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from pipeline.formatting import model_input
from pipeline.inference import InferenceConfig, StancePredictor, length_batches

MAX_LENGTH = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("inference") / "model", None, MAX_LENGTH)


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> StancePredictor:
    return StancePredictor(model_dir)


def growing_rows() -> list[tuple[str, str]]:
    """Sentences from a few tokens to well past MAX_LENGTH, one word more each time."""
    words = [
        "the",
        "envoy",
        "said",
        "Tokyo",
        "would",
        "not",
        "retract",
        "its",
        "remarks",
        "before",
        "the",
        "summit",
    ]
    rows = []
    for n in range(1, 40):
        sentence = " ".join(words[i % len(words)] for i in range(n)) + "."
        rows.append((sentence, "japan" if n % 3 else "china"))
    return rows


def test_one_pass_truncation_flag_matches_untruncated_length(
    predictor: StancePredictor, model_dir: Path
) -> None:
    """The old definition: tokenise the pair untruncated; truncated iff longer than max_length."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = growing_rows()
    pairs = [model_input(sentence, actor) for sentence, actor in rows]
    full = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=False)["input_ids"]

    encoded = predictor.encode(rows)

    assert encoded.truncated == [len(ids) > MAX_LENGTH for ids in full]
    assert 0 < sum(encoded.truncated) < len(rows)  # both sides of the boundary are covered
    for ids, flag, untruncated in zip(encoded.input_ids, encoded.truncated, full, strict=True):
        if flag:  # the sentence is cut, the closing [SEP] kept
            assert len(ids) == MAX_LENGTH
            assert ids[:-1] == untruncated[: MAX_LENGTH - 1] and ids[-1] == untruncated[-1]
        else:
            assert ids == untruncated


def test_length_sorted_batches_keep_request_order(predictor: StancePredictor) -> None:
    rows = growing_rows()[::-1][::2] + growing_rows()[::2]  # long and short interleaved
    batched, batched_flags = predictor.predict_proba(rows, batch_size=4)
    one_by_one = [predictor.predict_proba([row], batch_size=1) for row in rows]

    np.testing.assert_allclose(batched, np.concatenate([p for p, _ in one_by_one]), atol=1e-5)
    assert batched_flags == [flags[0] for _, flags in one_by_one]
    predictions = predictor.predict(rows, batch_size=4)
    assert [p.actor for p in predictions] == [actor for _, actor in rows]
    assert len({round(p.scores["hostile"], 6) for p in predictions}) > 1  # not one row repeated


def test_length_batches_cover_every_row_once_shortest_first() -> None:
    lengths = [9, 3, 7, 3, 12, 5, 8]
    batches = length_batches(lengths, batch_size=3)

    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    with pytest.raises(ValueError, match="batch_size"):
        length_batches(lengths, batch_size=0)


def test_no_rows_gives_an_empty_result(predictor: StancePredictor) -> None:
    probabilities, truncated = predictor.predict_proba([])
    assert probabilities.shape == (0, len(predictor.labels)) and truncated == []
    assert predictor.predict([]) == []


def test_temperature_divides_the_logits(model_dir: Path, tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    shutil.copytree(model_dir, hot)
    InferenceConfig(max_length=MAX_LENGTH, temperature=2.0).save(hot)
    rows = growing_rows()[:5]

    cold_p, _ = StancePredictor(model_dir).predict_proba(rows)
    hot_p, _ = StancePredictor(hot).predict_proba(rows)

    # softmax(z / 2) is proportional to sqrt(softmax(z)).
    expected = np.sqrt(cold_p) / np.sqrt(cold_p).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(hot_p, expected, atol=1e-5)


def test_a_file_without_backend_keys_loads_as_torch_fp32(tmp_path: Path) -> None:
    (tmp_path / "inference.json").write_text(json.dumps({"max_length": 64}))
    config = InferenceConfig.load(tmp_path)
    assert (config.backend, config.precision, config.onnx_file) == ("torch", "fp32", None)
    assert config.temperature == 1.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "onnx"}, "needs onnx_file"),
        ({"backend": "onnx", "onnx_file": "../model.onnx"}, "file name in the directory"),
        ({"backend": "torch", "precision": "int8"}, "fp32 weights only"),
        ({"backend": "torch", "onnx_file": "model.onnx"}, "only for backend 'onnx'"),
        ({"backend": "tensorrt"}, "backend"),
    ],
)
def test_inconsistent_backend_fields_are_rejected_naming_the_file(
    tmp_path: Path, fields: dict, message: str
) -> None:
    (tmp_path / "inference.json").write_text(json.dumps({"max_length": 64, **fields}))
    with pytest.raises(ValueError, match=message) as raised:
        InferenceConfig.load(tmp_path)
    assert str(tmp_path / "inference.json") in str(raised.value)


def test_labels_come_from_the_config_in_logit_order(tmp_path: Path) -> None:
    from pipeline.inference import load_labels

    (tmp_path / "config.json").write_text(
        json.dumps({"id2label": {"1": "hostile", "0": "supportive"}}), encoding="utf-8"
    )
    assert load_labels(tmp_path) == ["supportive", "hostile"]


@pytest.mark.parametrize(
    "text", ["{not json", json.dumps({"num_labels": 4}), json.dumps({"id2label": {"1": "x"}})]
)
def test_a_config_without_usable_labels_names_the_file(tmp_path: Path, text: str) -> None:
    from pipeline.inference import load_labels

    (tmp_path / "config.json").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="config.json: no usable id2label"):
        load_labels(tmp_path)


def test_the_stock_bert_head_still_loads(tmp_path: Path, make_tiny_model) -> None:
    """Models trained with train.pooling: cls (every version before marker pooling)."""
    model_dir = make_tiny_model(tmp_path / "cls", None, MAX_LENGTH, pooling="cls")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "bert"
    scores, _ = StancePredictor(model_dir).predict_proba([("Tokyo summoned the envoy.", "japan")])
    assert scores.shape == (1, 4) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)


def test_tokenizer_of_a_marker_model_loads_without_a_config_warning(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AutoTokenizer reads config.json first: an unknown model_type made transformers fall
    back to a bare config with a warning that the model 'can yield errors'."""
    from transformers.utils import logging as transformers_logging

    from pipeline.inference import pair_tokenizer

    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "stance-bert"
    transformers_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            pair_tokenizer(model_dir, MAX_LENGTH)
    finally:
        transformers_logging.disable_propagation()
    assert "to instantiate a model of type" not in caplog.text
