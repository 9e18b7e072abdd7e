"""DVC stage `export`: the fine-tuned model as ONNX (fp32 and int8), behind an accuracy gate.

Exports the torch model with `torch.onnx.export` (dynamic batch and sequence axes),
quantises it to int8 with ONNX Runtime (by default static: int8 weights per output
channel, activation scales calibrated on training rows, so a row's scores do not
depend on its batch-mates; `export.quantization: dynamic` computes them per batch),
and writes a complete servable directory: tokenizer, config.json, both .onnx files,
and inference.json naming the served file (int8 unless `export.serve_precision` says
fp32).

The gate scores the validation split and the seed set with the torch model (the
reference, what `evaluate` measured) and the int8 session, through the same
predictor. The int8 model must keep macro-F1 within `export.max_f1_drop` of the
reference and give the same label on at least `export.min_label_agreement` of the
rows, on each set; otherwise the stage fails and prints the figures, unless
`serve_precision` is fp32 (then int8 is measured and reported but not served). The
figures, and how far int8 scores move between a row scored alone and in a batch, go
to a DVC metrics file and to the training run in MLflow, with the ONNX directory
(artifact `onnx/`), so they travel with the registered version and the hand-off can
fetch the champion's.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
from sklearn.metrics import f1_score

from pipeline import tracking
from pipeline.atomic import replacing, write_json
from pipeline.config import StrictParams, load_section, require
from pipeline.inference import (
    INFERENCE_CONFIG,
    MODEL_CONFIG,
    InferenceConfig,
    Precision,
    StancePredictor,
    encode,
    length_batches,
    pad_batch,
    pair_tokenizer,
)
from pipeline.lineage import flatten
from pipeline.records import LabelledRow, load_labelled

logger = logging.getLogger(__name__)

ONNX_FILES: dict[str, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
BATCH_CHECK_ROWS = 100  # validation rows scored alone and batched (batch dependence)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
# Copied from the torch directory: everything (config, tokenizer, run id) except the
# torch weights (the ONNX directory holds no pickle), inference.json (rewritten) and
# what train could not log to MLflow (training.train_log).
NOT_COPIED = ("*.safetensors", "*.bin", "*.pt", "*.pth", INFERENCE_CONFIG, tracking.PENDING_FILE)


QUANTIZATIONS = ("static", "dynamic")


class ExportParams(StrictParams):
    opset: int
    quantization: str
    per_channel: bool
    calibration_rows: int
    fp32_down_projections: bool
    int8_embeddings: bool
    serve_precision: str
    max_f1_drop: float
    min_label_agreement: float
    batch_size: int

    def check(self) -> None:
        require(14 <= self.opset <= 21, "export.opset", "must be in [14, 21]")
        require(
            self.quantization in QUANTIZATIONS,
            "export.quantization",
            f"must be one of {list(QUANTIZATIONS)}, got {self.quantization!r}",
        )
        require(self.calibration_rows >= 1, "export.calibration_rows", "must be >= 1")
        require(
            self.serve_precision in ONNX_FILES,
            "export.serve_precision",
            f"must be one of {sorted(ONNX_FILES)}, got {self.serve_precision!r}",
        )
        require(0 <= self.max_f1_drop <= 1, "export.max_f1_drop", "must be in [0, 1]")
        require(
            0 <= self.min_label_agreement <= 1, "export.min_label_agreement", "must be in [0, 1]"
        )
        require(self.batch_size >= 1, "export.batch_size", "must be >= 1")


def export_fp32(model_dir: Path, out_path: Path, opset: int, max_length: int) -> None:
    """The torch classifier as one ONNX file: inputs (batch, sequence) int64, logits out.

    Traced with padding in the example (so the mask path is recorded) and with eager
    attention (so no shape-dependent fast path is baked into the graph).
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipeline.model import register_architecture

    register_architecture()
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager"
    )
    model.eval()
    model.config.return_dict = False
    width = min(16, max_length)
    input_ids = torch.full((2, width), 1000, dtype=torch.long)
    attention_mask = torch.ones((2, width), dtype=torch.long)
    attention_mask[1, width // 2 :] = 0
    token_type_ids = torch.zeros((2, width), dtype=torch.long)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    with warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript exporter (dynamo=False) is deprecated but needs no extra
        # package; torch is pinned, and the tests check the graph against torch.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (input_ids, attention_mask, token_type_ids),
            str(out_path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**dynamic, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
        )


def down_projections(model) -> set[str]:
    """MatMul nodes with a constant weight that maps a wider input to a narrower output:
    in a BERT encoder, the feed-forward output projections (intermediate -> hidden),
    whose inputs (GELU outputs) carry the largest activation outliers."""
    from onnx import numpy_helper

    weights = {w.name: numpy_helper.to_array(w).shape for w in model.graph.initializer}
    return {
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and len(weights.get(node.input[1], ())) == 2
        and weights[node.input[1]][0] > weights[node.input[1]][1]
    }


class _Batches:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_batches(
    model_dir: Path, rows: list[tuple[str, str]], batch_size: int
) -> list[dict[str, np.ndarray]]:
    """(sentence, actor) rows encoded and padded exactly as the predictor feeds the model."""
    config = InferenceConfig.load(model_dir)
    tokenizer, pad_id = pair_tokenizer(model_dir, config.max_length)
    encoded = encode(tokenizer, rows)
    lengths = [len(ids) for ids in encoded.input_ids]
    return [pad_batch(encoded, i, pad_id) for i in length_batches(lengths, batch_size)]


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    params: ExportParams,
    calibration: list[dict[str, np.ndarray]] | None = None,
) -> None:
    """int8 weights (per output channel if ``params.per_channel``) with ONNX Runtime.

    ``static``: activation scales fixed from ``calibration`` batches (training rows), so
    a row's scores do not depend on the rows it is batched with; only MatMuls with
    constant weights are quantised (QLinearMatMul), and with ``fp32_down_projections``
    the feed-forward output projections stay fp32. ``dynamic``: activation scales are
    computed per batch at run time (every MatMul with a constant weight), so a row's
    scores move a little with its batch-mates; the embedding tables (Gather) are int8
    too only with ``int8_embeddings``.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="stance-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        if params.quantization == "dynamic":
            quantize_dynamic(
                str(prepared),
                str(out_path),
                per_channel=params.per_channel,
                weight_type=QuantType.QInt8,
                # ONNX Runtime's default list also quantises Gather: the embedding tables.
                op_types_to_quantize=None if params.int8_embeddings else ["MatMul"],
            )
            return
        if not calibration:
            raise ValueError("static quantisation needs calibration batches")
        model = onnx.load(str(prepared))
        constants = {w.name for w in model.graph.initializer}
        nodes = {
            n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in constants
        }
        if params.fp32_down_projections:
            nodes -= down_projections(model)
        quantize_static(
            str(prepared),
            str(out_path),
            _Batches(calibration),
            quant_format=QuantFormat.QOperator,
            per_channel=params.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_quantize=sorted(nodes),
        )


def write_servable(
    model_dir: Path,
    out_dir: Path,
    params: ExportParams,
    calibration_rows: list[tuple[str, str]] | None = None,
) -> dict[str, Path]:
    """out_dir: tokenizer, config.json, the fp32 and int8 .onnx files, inference.json;
    the paths of the .onnx files.

    ``calibration_rows`` ((sentence, actor) training rows, never seeds) set the static
    activation scales. The directory is built beside out_dir and replaces it whole at
    the end (pipeline.atomic): a failed or killed export leaves the old one.
    """
    source = InferenceConfig.load(model_dir)
    if not (model_dir / MODEL_CONFIG).is_file():
        raise FileNotFoundError(f"{model_dir / MODEL_CONFIG} is missing")
    with replacing(out_dir) as staging:
        staging.mkdir()
        build_servable(model_dir, staging, source, params, calibration_rows)
    return {precision: out_dir / file for precision, file in ONNX_FILES.items()}


def build_servable(
    model_dir: Path,
    out_dir: Path,
    source: InferenceConfig,
    params: ExportParams,
    calibration_rows: list[tuple[str, str]] | None,
) -> None:
    """write_servable's files, into the empty directory out_dir."""
    ignored = shutil.ignore_patterns(*NOT_COPIED)(
        str(model_dir), [p.name for p in model_dir.iterdir()]
    )
    for path in model_dir.iterdir():
        if path.is_file() and path.name not in ignored:
            shutil.copy2(path, out_dir / path.name)
    paths = {precision: out_dir / file for precision, file in ONNX_FILES.items()}
    started = time.perf_counter()
    export_fp32(model_dir, paths["fp32"], params.opset, source.max_length)
    logger.info("exported %s in %.1f s", paths["fp32"].name, time.perf_counter() - started)
    started = time.perf_counter()
    calibration = None
    if params.quantization == "static":
        if not calibration_rows:
            raise ValueError("export.quantization static needs calibration rows (--train)")
        calibration = calibration_batches(model_dir, calibration_rows, params.batch_size)
    quantize_int8(paths["fp32"], paths["int8"], params, calibration)
    logger.info(
        "quantised %s (%s) in %.1f s",
        paths["int8"].name, params.quantization, time.perf_counter() - started,
    )  # fmt: skip
    served: Precision = "int8" if params.serve_precision == "int8" else "fp32"
    InferenceConfig(
        max_length=source.max_length,
        temperature=source.temperature,
        backend="onnx",
        precision=served,
        onnx_file=ONNX_FILES[served],
    ).save(out_dir)


def gate_figures(
    gold: list[str], reference: list[str], candidate: list[str], labels: list[str]
) -> dict[str, float]:
    """Macro-F1 of the reference and the candidate against gold, and their label agreement."""

    def macro_f1(predicted: list[str]) -> float:
        return float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))

    reference_f1, candidate_f1 = macro_f1(reference), macro_f1(candidate)
    return {
        "reference_macro_f1": reference_f1,
        "int8_macro_f1": candidate_f1,
        "macro_f1_drop": reference_f1 - candidate_f1,
        "label_agreement": float(
            np.mean([a == b for a, b in zip(reference, candidate, strict=True)])
        ),
        "rows": float(len(gold)),
    }


def gate_failures(figures: dict[str, dict[str, float]], params: ExportParams) -> list[str]:
    """One message per set and rule that the int8 model breaks (empty: the gate passes)."""
    failures = []
    for name, found in figures.items():
        if found["macro_f1_drop"] > params.max_f1_drop:
            failures.append(
                f"{name}: int8 macro-F1 {found['int8_macro_f1']:.4f} is "
                f"{found['macro_f1_drop']:.4f} below fp32 {found['reference_macro_f1']:.4f} "
                f"(export.max_f1_drop {params.max_f1_drop})"
            )
        if found["label_agreement"] < params.min_label_agreement:
            failures.append(
                f"{name}: int8 and fp32 agree on {found['label_agreement']:.2%} of labels "
                f"(export.min_label_agreement {params.min_label_agreement:.0%})"
            )
    return failures


def stances(predictor: StancePredictor, rows: list[LabelledRow], batch_size: int) -> list[str]:
    predictions = predictor.predict([(r.sentence, r.actor) for r in rows], batch_size=batch_size)
    return [p.stance for p in predictions]


def run_gate(
    model_dir: Path,
    int8_dir: Path,
    sets: dict[str, list[LabelledRow]],
    params: ExportParams,
) -> dict[str, dict[str, float]]:
    """Gate figures per set: the torch model against the int8 session in ``int8_dir``."""
    reference = StancePredictor(model_dir)
    candidate = StancePredictor(int8_dir)
    if reference.labels != candidate.labels:
        raise RuntimeError(f"label order differs: {reference.labels} vs {candidate.labels}")
    figures = {}
    for name, rows in sets.items():
        figures[name] = gate_figures(
            [r.stance for r in rows],
            stances(reference, rows, params.batch_size),
            stances(candidate, rows, params.batch_size),
            reference.labels,
        )
    return figures


def calibration_sample(rows: list[LabelledRow], n: int) -> list[tuple[str, str]]:
    """``n`` (sentence, actor) training rows spread evenly over the file (deterministic)."""
    step = max(1, len(rows) // n)
    return [(r.sentence, r.actor) for r in rows[::step][:n]]


def batch_dependence(
    predictor: StancePredictor, rows: list[LabelledRow], batch_size: int
) -> dict[str, float]:
    """How much a row's scores move between being scored alone and in length-sorted
    batches: 0 for static quantisation (fixed scales), not for dynamic."""
    pairs = [(r.sentence, r.actor) for r in rows]
    batched, _ = predictor.predict_proba(pairs, batch_size=batch_size)
    alone = np.concatenate([predictor.predict_proba([pair], batch_size=1)[0] for pair in pairs])
    return {
        "batch_max_score_change": float(np.abs(alone - batched).max()),
        "batch_label_changes": float((alone.argmax(1) != batched.argmax(1)).sum()),
        "batch_rows": float(len(pairs)),
    }


def int8_view(out_dir: Path, scratch: Path) -> Path:
    """A directory that runs the int8 file whatever inference.json serves (for the gate)."""
    config = InferenceConfig.load(out_dir)
    view = scratch / "int8"
    shutil.copytree(out_dir, view, ignore=shutil.ignore_patterns(ONNX_FILES["fp32"]))
    config.model_copy(update={"precision": "int8", "onnx_file": ONNX_FILES["int8"]}).save(view)
    return view


def flat_metrics(
    figures: dict[str, dict[str, float]], params: ExportParams, sizes: dict[str, int]
) -> dict[str, float | str | bool]:
    metrics: dict[str, float | str | bool] = {
        f"{name}_{key}": value for name, found in figures.items() for key, value in found.items()
    }
    metrics.update({f"{precision}_mb": size / 1e6 for precision, size in sizes.items()})
    metrics["served_precision"] = params.serve_precision
    metrics["gate_passed"] = not gate_failures(figures, params)
    return metrics


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="calibration rows")
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_section("export", ExportParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)
    tracking.setup(tracking_params.experiment)  # an unreachable server fails before any work

    sets = {"validation": load_labelled(args.validation), "seed": load_labelled(args.test)}
    calibration = calibration_sample(load_labelled(args.train), params.calibration_rows)
    paths = write_servable(args.model_dir, args.out_dir, params, calibration)
    with tempfile.TemporaryDirectory(prefix="stance-gate-") as scratch:
        int8_dir = int8_view(args.out_dir, Path(scratch))
        figures = run_gate(args.model_dir, int8_dir, sets, params)
        batching = batch_dependence(
            StancePredictor(int8_dir), sets["validation"][:BATCH_CHECK_ROWS], params.batch_size
        )
    logger.info(
        "int8, each row alone vs in batches of %d: largest score change %.4f, %d label(s) changed",
        params.batch_size, batching["batch_max_score_change"], batching["batch_label_changes"],
    )  # fmt: skip
    for name, found in figures.items():
        logger.info(
            "%s: fp32 macro-F1 %.4f, int8 %.4f, label agreement %.2f%% (%d rows)",
            name, found["reference_macro_f1"], found["int8_macro_f1"],
            100 * found["label_agreement"], found["rows"],
        )  # fmt: skip
    sizes = {p: path.stat().st_size for p, path in paths.items()}
    metrics = {
        **flat_metrics(figures, params, sizes),
        **{f"int8_{k}": v for k, v in batching.items()},
    }
    write_json(args.metrics, metrics)

    with mlflow.start_run(run_id=tracking.read_run_id(args.model_dir)):
        tracking.log_params(flatten(params.model_dump(), "export"))
        mlflow.log_metrics(
            {f"export_{k}": float(v) for k, v in metrics.items() if not isinstance(v, str)}
        )
        mlflow.set_tag("served_precision", params.serve_precision)
        mlflow.log_artifacts(str(args.out_dir), artifact_path=tracking.ONNX_ARTIFACT_DIR)

    failures = gate_failures(figures, params)
    if failures and params.serve_precision == "int8":
        raise SystemExit(
            "export: the int8 model fails the accuracy gate:\n  "
            + "\n  ".join(failures)
            + "\nServe fp32 instead with export.serve_precision: fp32 in params.yaml."
        )
    if failures:
        logger.warning("int8 fails the gate (%s); serving fp32 as configured", "; ".join(failures))
    logger.info("servable ONNX directory %s (%s)", args.out_dir, params.serve_precision)


if __name__ == "__main__":
    main()
