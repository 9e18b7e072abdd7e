"""ONNX export and int8 quantisation of a tiny real model; the accuracy gate's rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.inference import InferenceConfig, StancePredictor
from pipeline.records import LabelledRow
from training.export import (
    ONNX_FILES,
    ExportParams,
    batch_dependence,
    down_projections,
    gate_failures,
    gate_figures,
    int8_view,
    write_servable,
)

MAX_LENGTH = 32
PARAMS = ExportParams(
    opset=17,
    quantization="static",
    per_channel=True,
    calibration_rows=64,
    fp32_down_projections=True,
    int8_embeddings=False,
    serve_precision="int8",
    max_f1_drop=0.01,
    min_label_agreement=0.97,
    batch_size=8,
)
# Our own sentences, of varied length; two of them longer than MAX_LENGTH tokens.
ROWS = [
    ("Beijing summoned the Japanese ambassador late on Friday.", "china"),
    ("Tokyo said it would not withdraw the remarks.", "japan"),
    ("A State Department spokesperson declined to comment on the dispute.", "us"),
    ("Taipei thanked its friends in Japan.", "taiwan"),
    ("Seoul called for calm.", "other"),
    (
        "Japan's cabinet secretary repeated that the government's position on the strait "
        "had not changed and that the prime minister had described a hypothetical case "
        "in answer to a question from an opposition lawmaker in the budget committee.",
        "japan",
    ),
    ("China's coast guard said its ships patrolled near the islands again.", "china"),
    (
        "Washington reaffirmed that the treaty covers the islands, while urging Beijing "
        "and Tokyo to keep talking through every channel available to them this winter.",
        "us",
    ),
]


# Calibration rows: our own, none of them in ROWS (the gate never calibrates on what it scores).
CALIBRATION = [
    (f"{place} officials {verb} the remarks about the strait on day {day}.", actor)
    for day, (place, actor) in enumerate(
        [("Tokyo", "japan"), ("Beijing", "china"), ("Washington", "us"), ("Taipei", "taiwan")] * 4
    )
    for verb in ("discussed", "criticised", "welcomed", "noted")
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> dict[str, Path]:
    """A tiny model (activations in a trained model's range) and its servable ONNX directory."""
    root = tmp_path_factory.mktemp("export")
    torch_dir = make_tiny_model(root / "torch", None, MAX_LENGTH, initializer_range=0.1)
    onnx_dir = root / "onnx"
    write_servable(torch_dir, onnx_dir, PARAMS, CALIBRATION)
    fp32_dir = root / "onnx-fp32"
    shutil.copytree(onnx_dir, fp32_dir)
    InferenceConfig(
        max_length=MAX_LENGTH, backend="onnx", precision="fp32", onnx_file=ONNX_FILES["fp32"]
    ).save(fp32_dir)
    return {"torch": torch_dir, "onnx": onnx_dir, "fp32": fp32_dir}


def test_servable_directory_holds_onnx_files_and_no_torch_weights(exported) -> None:
    onnx_dir = exported["onnx"]
    names = {p.name for p in onnx_dir.iterdir()}

    assert {"config.json", "tokenizer.json", "inference.json", *ONNX_FILES.values()} <= names
    assert not [n for n in names if n.endswith((".safetensors", ".bin", ".pt"))]
    assert json.loads((onnx_dir / "inference.json").read_text()) == {
        "max_length": MAX_LENGTH,
        "temperature": 1.0,
        "backend": "onnx",
        "precision": "int8",
        "onnx_file": "model.int8.onnx",
    }
    predictor = StancePredictor(onnx_dir)
    assert (predictor.backend_name, predictor.precision) == ("onnx", "int8")
    assert predictor.labels == StancePredictor(exported["torch"]).labels


def test_serve_precision_fp32_names_the_fp32_file(exported, tmp_path: Path) -> None:
    write_servable(
        exported["torch"],
        tmp_path / "out",
        PARAMS.model_copy(update={"serve_precision": "fp32"}),
        CALIBRATION,
    )
    config = InferenceConfig.load(tmp_path / "out")
    assert (config.precision, config.onnx_file) == ("fp32", "model.onnx")
    # The gate still measures int8, whatever is served.
    view = int8_view(tmp_path / "out", tmp_path)
    assert StancePredictor(view).precision == "int8"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("batch", [1, 64])
def test_exported_graph_takes_batch_1_and_64_at_every_length_up_to_max_length(
    exported, precision: str, batch: int
) -> None:
    """Dynamic axes: every (batch, length) runs; fp32 matches torch, padding included."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification

    session = ort.InferenceSession(str(exported["onnx"] / ONNX_FILES[precision]))
    model = AutoModelForSequenceClassification.from_pretrained(exported["torch"]).eval()
    rng = np.random.default_rng(batch)
    for length in range(1, MAX_LENGTH + 1):
        input_ids = rng.integers(1000, 20000, size=(batch, length), dtype=np.int64)
        attention_mask = np.ones((batch, length), dtype=np.int64)
        for row in range(batch):  # rows padded to random lengths, as in a mixed batch
            attention_mask[row, rng.integers(1, length + 1) :] = 0
        token_type_ids = np.zeros((batch, length), dtype=np.int64)
        feed = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        (logits,) = session.run(None, feed)
        assert logits.shape == (batch, len(model.config.id2label))
        assert np.isfinite(logits).all()
        if precision == "fp32":
            with torch.inference_mode():
                expected = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits
            np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, err_msg=f"{length}")


def test_int8_agrees_with_fp32_within_tolerance(exported) -> None:
    """Same rows through the predictor: int8 probabilities within 0.01 of fp32.

    The tiny model's probabilities spread about 0.05 around 0.25, so a broken
    quantisation (wrong scales, a dropped layer) shows far above the tolerance;
    correct int8 weights move them by about 0.003.
    """
    fp32, _ = StancePredictor(exported["fp32"]).predict_proba(ROWS * 8, batch_size=16)
    int8, _ = StancePredictor(exported["onnx"]).predict_proba(ROWS * 8, batch_size=16)
    reference, _ = StancePredictor(exported["torch"]).predict_proba(ROWS * 8, batch_size=16)

    np.testing.assert_allclose(fp32, reference, atol=1e-5)  # the fp32 graph is the model
    assert np.abs(int8 - fp32).max() <= 0.01
    assert fp32.std(axis=1).mean() > 0.01  # the rows are not all uniform


def labelled(rows: list[tuple[str, str]]) -> list[LabelledRow]:
    return [
        LabelledRow(id=f"r{i}", doc="d", sentence=s, actor=a, stance="neutral")
        for i, (s, a) in enumerate(rows)
    ]


def test_static_int8_scores_do_not_depend_on_batch_mates(exported) -> None:
    """Fixed activation scales: a row scored alone scores as in any batch."""
    found = batch_dependence(StancePredictor(exported["onnx"]), labelled(ROWS * 3), 8)
    assert found["batch_rows"] == len(ROWS) * 3
    assert found["batch_max_score_change"] < 1e-5
    assert found["batch_label_changes"] == 0


def test_dynamic_quantisation_is_the_documented_alternative(exported, tmp_path: Path) -> None:
    params = PARAMS.model_copy(update={"quantization": "dynamic"})
    write_servable(exported["torch"], tmp_path / "dynamic", params)  # no calibration needed
    int8, _ = StancePredictor(tmp_path / "dynamic").predict_proba(ROWS * 4, batch_size=16)
    fp32, _ = StancePredictor(exported["fp32"]).predict_proba(ROWS * 4, batch_size=16)
    assert np.abs(int8 - fp32).max() <= 0.01
    with pytest.raises(ValueError, match="calibration"):
        write_servable(exported["torch"], tmp_path / "static", PARAMS)


def int8_gather_tables(onnx_path: Path) -> list[str]:
    """8-bit initializers that a Gather (an embedding lookup) reads; ONNX Runtime puts a
    DequantizeLinear after such a lookup."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    quantized = {w.name for w in graph.initializer if w.data_type in eight_bit}
    return sorted(
        node.input[0]
        for node in graph.node
        if node.op_type == "Gather" and node.input[0] in quantized
    )


@pytest.mark.parametrize("int8_embeddings", [False, True])
def test_dynamic_int8_keeps_the_embedding_tables_fp32_unless_asked(
    exported, tmp_path: Path, int8_embeddings: bool
) -> None:
    params = PARAMS.model_copy(
        update={"quantization": "dynamic", "int8_embeddings": int8_embeddings}
    )
    write_servable(exported["torch"], tmp_path / "dynamic", params)
    tables = int8_gather_tables(tmp_path / "dynamic" / ONNX_FILES["int8"])
    if int8_embeddings:
        # word, position and token-type embeddings
        assert len(tables) == 3 and all("embeddings" in name for name in tables), tables
    else:
        assert tables == []


def test_down_projections_are_the_feed_forward_outputs(exported) -> None:
    import onnx

    model = onnx.load(str(exported["onnx"] / ONNX_FILES["fp32"]))
    found = down_projections(model)
    # The tiny model: 2 layers, hidden 32, intermediate 64: one 64 -> 32 MatMul per layer.
    assert len(found) == 2
    assert all("output/dense" in name and "attention" not in name for name in found)


def test_onnx_and_torch_predictors_flag_the_same_truncated_rows(exported) -> None:
    _, onnx_flags = StancePredictor(exported["onnx"]).predict_proba(ROWS)
    _, torch_flags = StancePredictor(exported["torch"]).predict_proba(ROWS)
    assert onnx_flags == torch_flags and sum(onnx_flags) == 2


def test_the_served_session_does_not_spin_and_uses_every_core(exported) -> None:
    from pipeline.inference import available_cores

    predictor = StancePredictor(exported["onnx"])
    options = predictor.backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == available_cores()
    assert StancePredictor(exported["onnx"], threads=1).backend.session.get_session_options(
    ).intra_op_num_threads == 1  # fmt: skip


def test_gate_figures_and_failures_name_the_set_and_the_rule() -> None:
    labels = ["supportive", "hostile", "hedging", "neutral"]
    gold = [label for label in labels for _ in range(25)]
    reference = list(gold)
    hostile = gold.index("hostile")
    candidate = list(gold)
    candidate[hostile : hostile + 3] = ["neutral"] * 3  # 3 of 100 rows flipped

    figures = gate_figures(gold, reference, candidate, labels)

    assert figures["label_agreement"] == pytest.approx(0.97)
    assert figures["rows"] == 100
    assert figures["reference_macro_f1"] == pytest.approx(1.0)
    assert figures["macro_f1_drop"] == pytest.approx(1 - figures["int8_macro_f1"])
    failures = gate_failures({"seed": figures}, PARAMS)
    # 97% agreement passes; the macro-F1 drop (about 0.03) does not.
    assert len(failures) == 1
    assert failures[0].startswith("seed: int8 macro-F1") and "export.max_f1_drop" in failures[0]
    assert gate_failures({"seed": gate_figures(gold, reference, reference, labels)}, PARAMS) == []
    candidate[hostile + 3] = "neutral"  # a fourth row: 96% agreement
    fewer = gate_figures(gold, reference, candidate, labels)
    assert any("export.min_label_agreement" in f for f in gate_failures({"v": fewer}, PARAMS))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("serve_precision", "fp16", "export.serve_precision"),
        ("quantization", "qat", "export.quantization"),
        ("calibration_rows", 0, "export.calibration_rows"),
        ("opset", 9, "export.opset"),
        ("min_label_agreement", 1.5, "export.min_label_agreement"),
        ("batch_size", 0, "export.batch_size"),
    ],
)
def test_bad_export_params_name_the_key(field: str, value, message: str) -> None:
    from pipeline.config import ConfigError, parse_section

    raw = {**PARAMS.model_dump(), field: value}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_section(raw, "export", ExportParams)
