"""DVC stage `export`: the fine-tuned model as ONNX (fp32 and int8), behind an accuracy gate.

Exports the torch model with `torch.onnx.export` (dynamic batch and sequence axes),
quantises the weights to int8 with ONNX Runtime (dynamic quantisation: int8 weights,
activations quantised per batch at run time), and writes a complete servable
directory: tokenizer, config.json, both .onnx files, and inference.json naming the
served file (int8 unless `export.serve_precision` says fp32).

The gate scores the validation split and the seed set with the torch model (the
reference, what `evaluate` measured) and the int8 session, through the same
predictor. The int8 model must keep macro-F1 within `export.max_f1_drop` of the
reference and give the same label on at least `export.min_label_agreement` of the
rows, on each set; otherwise the stage fails and prints the figures, unless
`serve_precision` is fp32 (then int8 is measured and reported but not served). The
figures go to a DVC metrics file and to the training run in MLflow, with the ONNX
files, so they travel with the registered version.
"""

from __future__ import annotations

import argparse
import json
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
from pipeline.config import StrictParams, load_section, require
from pipeline.inference import (
    INFERENCE_CONFIG,
    MODEL_CONFIG,
    InferenceConfig,
    Precision,
    StancePredictor,
)
from pipeline.records import LabelledRow, load_labelled

logger = logging.getLogger(__name__)

ONNX_FILES: dict[str, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
# Copied from the torch directory: everything (config, tokenizer, run id) except the
# torch weights (the ONNX directory holds no pickle) and inference.json (rewritten).
NOT_COPIED = ("*.safetensors", "*.bin", "*.pt", "*.pth", INFERENCE_CONFIG)
MLFLOW_ARTIFACT_DIR = "onnx"


class ExportParams(StrictParams):
    opset: int
    per_channel: bool
    serve_precision: str
    max_f1_drop: float
    min_label_agreement: float
    batch_size: int

    def check(self) -> None:
        require(14 <= self.opset <= 21, "export.opset", "must be in [14, 21]")
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


def quantize_int8(fp32_path: Path, out_path: Path, per_channel: bool) -> None:
    """Dynamic int8 quantisation of the weights (MatMul/Gemm/Attention) with ONNX Runtime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="stance-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(out_path),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )


def write_servable(model_dir: Path, out_dir: Path, params: ExportParams) -> dict[str, Path]:
    """out_dir: tokenizer, config.json, the fp32 and int8 .onnx files, inference.json."""
    source = InferenceConfig.load(model_dir)
    if not (model_dir / MODEL_CONFIG).is_file():
        raise FileNotFoundError(f"{model_dir / MODEL_CONFIG} is missing")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    ignored = shutil.ignore_patterns(*NOT_COPIED)(
        str(model_dir), [p.name for p in model_dir.iterdir()]
    )
    for path in model_dir.iterdir():
        if path.is_file() and path.name not in ignored:
            shutil.copy2(path, out_dir / path.name)
    paths = {precision: out_dir / file for precision, file in ONNX_FILES.items()}
    started = time.perf_counter()
    export_fp32(model_dir, paths["fp32"], params.opset, source.max_length)
    logger.info("exported %s in %.1f s", paths["fp32"], time.perf_counter() - started)
    started = time.perf_counter()
    quantize_int8(paths["fp32"], paths["int8"], params.per_channel)
    logger.info("quantised %s in %.1f s", paths["int8"], time.perf_counter() - started)
    served: Precision = "int8" if params.serve_precision == "int8" else "fp32"
    InferenceConfig(
        max_length=source.max_length,
        temperature=source.temperature,
        backend="onnx",
        precision=served,
        onnx_file=ONNX_FILES[served],
    ).save(out_dir)
    return paths


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
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_section("export", ExportParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)

    sets = {"validation": load_labelled(args.validation), "seed": load_labelled(args.test)}
    paths = write_servable(args.model_dir, args.out_dir, params)
    with tempfile.TemporaryDirectory(prefix="stance-gate-") as scratch:
        figures = run_gate(args.model_dir, int8_view(args.out_dir, Path(scratch)), sets, params)
    for name, found in figures.items():
        logger.info(
            "%s: fp32 macro-F1 %.4f, int8 %.4f, label agreement %.2f%% (%d rows)",
            name, found["reference_macro_f1"], found["int8_macro_f1"],
            100 * found["label_agreement"], found["rows"],
        )  # fmt: skip
    metrics = flat_metrics(figures, params, {p: path.stat().st_size for p, path in paths.items()})
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")

    tracking.setup(tracking_params.experiment)
    with mlflow.start_run(run_id=tracking.read_run_id(args.model_dir)):
        mlflow.log_metrics(
            {f"export_{k}": float(v) for k, v in metrics.items() if not isinstance(v, str)}
        )
        mlflow.set_tag("served_precision", params.serve_precision)
        mlflow.log_artifacts(str(args.out_dir), artifact_path=MLFLOW_ARTIFACT_DIR)

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
