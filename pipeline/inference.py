"""Stance prediction with a saved model directory: shared by evaluation and serving.

The model directory is a Hugging Face save (config with id2label/label2id, tokenizer,
weights). Inputs are (sentence, actor) rows; the pair formatting is pipeline.formatting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pipeline.formatting import model_input

INFERENCE_CONFIG = "inference.json"  # written beside the weights by `train`


class InferenceConfig(BaseModel):
    """How to run a saved model: the file ``inference.json`` beside its weights.

    ``max_length`` is the training max_length (longer pairs are truncated and flagged);
    ``temperature`` divides the logits before the softmax (fitted on validation by
    ``train``, so the scores are calibrated probabilities; 1.0 = uncalibrated).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_length: int = Field(ge=8, le=512)
    temperature: float = Field(default=1.0, gt=0)

    @classmethod
    def load(cls, model_dir: str | Path) -> InferenceConfig:
        path = Path(model_dir) / INFERENCE_CONFIG
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: {model_dir} is not a stance model directory "
                "(train writes inference.json beside the weights)"
            )
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as error:
            raise ValueError(f"{path}: {error}") from None

    def save(self, model_dir: str | Path) -> None:
        (Path(model_dir) / INFERENCE_CONFIG).write_text(self.model_dump_json(indent=2) + "\n")


@dataclass(frozen=True)
class Prediction:
    actor: str
    stance: str
    scores: dict[str, float]
    truncated: bool


class StancePredictor:
    def __init__(self, model_dir: str | Path, max_length: int | None = None):
        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir)
        self.model.eval()
        self.config = InferenceConfig.load(self.model_dir)
        self.max_length = max_length or self.config.max_length
        self.temperature = self.config.temperature
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def predict_proba(
        self, rows: list[tuple[str, str]], batch_size: int = 32
    ) -> tuple[np.ndarray, list[bool]]:
        """Class probabilities (n x labels) and a truncation flag per (sentence, actor) row."""
        probabilities, truncated = [], []
        for begin in range(0, len(rows), batch_size):
            batch = rows[begin : begin + batch_size]
            pairs = [model_input(sentence, actor) for sentence, actor in batch]
            full = self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=False)
            truncated += [len(ids) > self.max_length for ids in full["input_ids"]]
            encoded = self.tokenizer(
                [a for a, _ in pairs],
                [b for _, b in pairs],
                truncation="only_second",
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self.model(**encoded).logits
            probabilities.append(torch.softmax(logits.float() / self.temperature, dim=-1).numpy())
        if not probabilities:
            return np.zeros((0, len(self.labels))), []
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
