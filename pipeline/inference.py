"""Stance prediction with a saved model directory: shared by evaluation, serving and MLflow.

A model directory holds a Hugging Face config (id2label), the tokenizer and either
torch weights (what `train` saves) or ONNX files (what `export` writes), plus
``inference.json`` (``InferenceConfig``), which says which backend runs it. Inputs are
(sentence, actor) rows; the pair formatting is pipeline.formatting.

One predictor, two backends: rows are tokenised once, sorted by length, padded per
batch (each batch to its own longest row), run through the backend, and the
probabilities put back in request order. Both backends return logits; the softmax
over ``logits / temperature`` is computed here, identically for both.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.atomic import write_text
from pipeline.formatting import model_input

logger = logging.getLogger(__name__)

# Rows encoded and scored at a time: memory stays flat however many rows a call gets.
CHUNK_ROWS = 8192
INFERENCE_CONFIG = "inference.json"  # written beside the weights by `train` and `export`
MODEL_CONFIG = "config.json"  # the Hugging Face config: id2label names the outputs

Backend = Literal["torch", "onnx"]
Precision = Literal["fp32", "int8"]


class InferenceConfig(BaseModel):
    """How to run a saved model: the file ``inference.json`` beside its weights.

    ``max_length`` is the training max_length (longer pairs are truncated and flagged);
    ``temperature`` divides the logits before the softmax (1.0 = uncalibrated).
    ``backend`` is ``torch`` (Hugging Face weights in the directory, always fp32) or
    ``onnx`` (the ONNX Runtime session of ``onnx_file``, a file in the directory, whose
    weights are ``precision``). The defaults describe what `train` saves, so files
    without the backend keys load as torch fp32.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_length: int = Field(ge=8, le=512)
    temperature: float = Field(default=1.0, gt=0)
    backend: Backend = "torch"
    precision: Precision = "fp32"
    onnx_file: str | None = None

    @model_validator(mode="after")
    def _backend_fields_agree(self) -> InferenceConfig:
        if self.backend == "onnx":
            if not self.onnx_file:
                raise ValueError("backend 'onnx' needs onnx_file (the .onnx file to run)")
            if Path(self.onnx_file).name != self.onnx_file:
                raise ValueError(
                    f"onnx_file must be a file name in the directory, got {self.onnx_file!r}"
                )
        else:
            if self.onnx_file is not None:
                raise ValueError("onnx_file is only for backend 'onnx'")
            if self.precision != "fp32":
                raise ValueError("backend 'torch' runs fp32 weights only")
        return self

    @classmethod
    def load(cls, model_dir: str | Path) -> InferenceConfig:
        path = Path(model_dir) / INFERENCE_CONFIG
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: {model_dir} is not a stance model directory "
                "(train and export write inference.json beside the weights)"
            )
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as error:
            raise ValueError(f"{path}: {error}") from None

    def save(self, model_dir: str | Path) -> None:
        write_text(
            Path(model_dir) / INFERENCE_CONFIG,
            self.model_dump_json(indent=2, exclude_none=True) + "\n",
        )


def model_dir_summary(model_dir: str | Path) -> dict[str, str]:
    """What runs a saved model and how big it is: ``backend``, ``precision`` (from its
    inference.json) and ``model_size_mb`` (all its files). The registry version tags."""
    config = InferenceConfig.load(model_dir)
    size = sum(path.stat().st_size for path in Path(model_dir).rglob("*") if path.is_file())
    return {
        "backend": config.backend,
        "precision": config.precision,
        "model_size_mb": f"{size / 1e6:.1f}",
    }


@dataclass(frozen=True)
class Prediction:
    actor: str
    stance: str
    scores: dict[str, float]
    truncated: bool


@dataclass(frozen=True)
class Encoded:
    """Token ids per row (unpadded, already cut to max_length) and the truncation flags.

    ``truncated[i]`` is true when row i's full pair is longer than max_length: the
    same definition as tokenising it untruncated and comparing lengths.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    truncated: list[bool]

    def __len__(self) -> int:
        return len(self.input_ids)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pair_tokenizer(model_dir: Path, max_length: int):
    """The directory's fast (Rust) tokenizer, set to cut only the sentence to max_length,
    and its padding id.

    A private copy: its truncation settings do not leak into other users of the files.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from pipeline.model_config import register_config

    register_config()  # AutoTokenizer reads config.json first; it may name stance-bert
    loaded = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(loaded, "is_fast", False):
        raise ValueError(f"{model_dir}: the tokenizer must be a fast (Rust) tokenizer")
    tokenizer = Tokenizer.from_str(loaded.backend_tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length, strategy="only_second", stride=0)
    return tokenizer, loaded.pad_token_id or 0


def encode(tokenizer, rows: list[tuple[str, str]]) -> Encoded:
    """Tokenise every (sentence, actor) row once, as the pair (actor name, marked sentence).

    The tokenizer truncates the second segment; the tokens it cut are kept in each
    encoding's ``overflowing`` list, which is empty exactly when nothing was cut. So one
    pass gives both the model input and the truncation flag.
    """
    pairs = [model_input(sentence, actor) for sentence, actor in rows]
    encodings = tokenizer.encode_batch(pairs, add_special_tokens=True) if pairs else []
    return Encoded(
        input_ids=[e.ids for e in encodings],
        token_type_ids=[e.type_ids for e in encodings],
        truncated=[bool(e.overflowing) for e in encodings],
    )


def length_batches(lengths: list[int], batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (sorted, stable), longest last."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[begin : begin + batch_size] for begin in range(0, len(order), batch_size)]


def pad_batch(encoded: Encoded, indices: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """int64 input_ids / token_type_ids / attention_mask for the rows at ``indices``,
    right-padded to the longest of them."""
    width = max(len(encoded.input_ids[i]) for i in indices)
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((len(indices), width), dtype=np.int64)
    attention_mask = np.zeros((len(indices), width), dtype=np.int64)
    for row, i in enumerate(indices):
        n = len(encoded.input_ids[i])
        input_ids[row, :n] = encoded.input_ids[i]
        token_type_ids[row, :n] = encoded.token_type_ids[i]
        attention_mask[row, :n] = 1
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
    }


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


class LogitsBackend(Protocol):
    input_names: list[str]

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


# The torch weights a model directory may hold: safetensors only. A pickle file
# (pytorch_model.bin, *.pt) can run code when loaded, so it is never read.
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def check_safetensors(model_dir: Path) -> None:
    """FileNotFoundError unless ``model_dir`` has safetensors weights (pickles are refused)."""
    if any((model_dir / name).is_file() for name in SAFETENSORS_WEIGHTS):
        return
    pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
    found = f"; it has {', '.join(pickles)}, pickle files that are never loaded" if pickles else ""
    raise FileNotFoundError(
        f"{model_dir} has no {SAFETENSORS_WEIGHTS[0]}{found}: the torch backend loads "
        "safetensors weights only (train saves them; ONNX models name their onnx_file)"
    )


class TorchBackend:
    """The Hugging Face torch model (fp32); torch uses its own default thread count.

    Weights come from safetensors only (``check_safetensors``, and
    ``use_safetensors=True`` so transformers never falls back to a pickle).
    """

    def __init__(self, model_dir: Path):
        import torch
        from transformers import AutoModelForSequenceClassification

        from pipeline.model import register_architecture

        check_safetensors(model_dir)
        register_architecture()  # a marker-pooling model names its own model_type
        self._torch = torch
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, use_safetensors=True
        )
        self.model.eval()
        accepted = inspect.signature(self.model.forward).parameters
        self.input_names = [
            n for n in ("input_ids", "token_type_ids", "attention_mask") if n in accepted
        ]

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        tensors = {name: torch.from_numpy(inputs[name]) for name in self.input_names}
        with torch.inference_mode():
            return self.model(**tensors).logits.float().numpy()


# ONNX Runtime's intra-op threads spin (busy-wait) between tasks by default. In the
# service they share this machine's 2 cores with the request threads, and spinning takes
# CPU from them. Measured with the service on the committed model (2 rounds per setting,
# invented 36-token pairs): 4 clients x 1 sentence, p99 53-55 ms spinning vs 41-46 ms
# not, 115-136 vs 152-167 sentences/s; 4 clients x 32, 243-276 vs 255-265 sentences/s.
# One intra-op thread instead halved the 4 x 32 throughput (149-159). Scores are equal.
ALLOW_SPINNING = "0"


class OnnxBackend:
    """An ONNX Runtime CPU session with one intra-op thread per available core, threads
    that sleep rather than spin when idle (ALLOW_SPINNING)."""

    def __init__(self, onnx_path: Path, threads: int | None = None):
        import onnxruntime as ort

        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} is missing (named by {INFERENCE_CONFIG})")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", ALLOW_SPINNING)
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: inputs[name] for name in self.input_names}
        return self.session.run([self.output_name], feed)[0]


def load_labels(model_dir: Path) -> list[str]:
    """Output names in logit order, from the directory's Hugging Face config (read as JSON:
    the ONNX path needs no model class, whatever architecture the config names)."""
    path = Path(model_dir) / MODEL_CONFIG
    try:
        id2label = json.loads(path.read_text(encoding="utf-8"))["id2label"]
        return [id2label[str(i)] for i in range(len(id2label))]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: no usable id2label ({error!r})") from error


class StancePredictor:
    """(sentence, actor) rows in, stance probabilities out, on the backend the directory names.

    ``backend`` and ``precision`` report what runs (from ``inference.json``);
    ``threads`` overrides ONNX Runtime's intra-op threads (default: available cores).
    """

    def __init__(
        self, model_dir: str | Path, max_length: int | None = None, threads: int | None = None
    ):
        self.model_dir = Path(model_dir)
        self.config = InferenceConfig.load(self.model_dir)
        self.max_length = max_length or self.config.max_length
        self.temperature = self.config.temperature
        self.backend_name: Backend = self.config.backend
        self.precision: Precision = self.config.precision
        self.labels = load_labels(self.model_dir)
        self.tokenizer, self.pad_id = pair_tokenizer(self.model_dir, self.max_length)
        if self.config.backend == "onnx":
            assert self.config.onnx_file is not None  # InferenceConfig checks it
            self.backend: LogitsBackend = OnnxBackend(
                self.model_dir / self.config.onnx_file, threads
            )
        else:
            self.backend = TorchBackend(self.model_dir)
        logger.info(
            "predictor: %s %s from %s (max_length %d)",
            self.backend_name, self.precision, self.model_dir, self.max_length,
        )  # fmt: skip

    def encode(self, rows: list[tuple[str, str]]) -> Encoded:
        return encode(self.tokenizer, rows)

    def predict_encoded(self, encoded: Encoded, batch_size: int = 32) -> np.ndarray:
        """Probabilities (n x labels) of already encoded rows, in their order."""
        probabilities = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        lengths = [len(ids) for ids in encoded.input_ids]
        for indices in length_batches(lengths, batch_size):
            logits = self.backend.logits(pad_batch(encoded, indices, self.pad_id))
            probabilities[indices] = softmax(logits, self.temperature)
        return probabilities

    def predict_proba(
        self, rows: list[tuple[str, str]], batch_size: int = 32
    ) -> tuple[np.ndarray, list[bool]]:
        """Class probabilities (n x labels) and a truncation flag per (sentence, actor) row."""
        probabilities, truncated = [np.zeros((0, len(self.labels)), dtype=np.float32)], []
        for begin in range(0, len(rows), CHUNK_ROWS):
            encoded = self.encode(rows[begin : begin + CHUNK_ROWS])
            probabilities.append(self.predict_encoded(encoded, batch_size))
            truncated += encoded.truncated
        return np.concatenate(probabilities), truncated

    def predict(self, rows: list[tuple[str, str]], batch_size: int = 32) -> list[Prediction]:
        probabilities, truncated = self.predict_proba(rows, batch_size)
        return [
            Prediction(
                actor=actor,
                stance=self.labels[int(np.argmax(p))],
                scores={label: float(p[i]) for i, label in enumerate(self.labels)},
                truncated=flag,
            )
            for (_, actor), p, flag in zip(rows, probabilities, truncated, strict=True)
        ]
