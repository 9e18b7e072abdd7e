"""The classifier's architecture: a BERT encoder read at the actor's marks.

`pipeline.formatting` wraps every mention of the row's actor in brackets. The stock
`BertForSequenceClassification` classifies from the [CLS] token alone; this model
classifies from two readings of the encoder's last layer, side by side:

- the mean over all tokens (the reading all-MiniLM-L6-v2 was trained for), and
- the mean over the opening marks of the actor's mentions in the sentence segment
  (an "entity start" reading: the vector that sits where the actor is named, so the
  classifier looks at the actor the row is about, not at the sentence as a whole).

A row whose actor is not marked (no mention found) reads the all-token mean twice.
The mark's token id is saved in the config (``marker_token_id``), so the artifact
describes itself; the model is an ordinary `AutoModelForSequenceClassification` once
`register_architecture()` has told the Auto classes about its ``model_type``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils.generic import can_return_tuple

from pipeline.formatting import MARK_CLOSE, MARK_OPEN
from pipeline.model_config import MODEL_TYPE, StanceBertConfig, register_config

# train.pooling: the stock [CLS] head, or this model
Pooling = Literal["cls", "marker"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


def marker_features(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor,
    marker_token_id: int,
) -> torch.Tensor:
    """(batch, 2 * hidden): the all-token mean beside the mean at the actor's opening marks
    in the second segment (the all-token mean again where there is none)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    marks = (input_ids == marker_token_id) & (token_type_ids == 1) & (attention_mask == 1)
    marks = marks.unsqueeze(-1).to(hidden.dtype)
    count = marks.sum(1)
    at_marks = (hidden * marks).sum(1) / count.clamp(min=1)
    return torch.cat([mean, torch.where(count > 0, at_marks, mean)], dim=-1)


class StanceBertForSequenceClassification(BertPreTrainedModel):
    config_class = StanceBertConfig

    def __init__(self, config: StanceBertConfig):
        super().__init__(config)
        if config.marker_token_id is None:
            raise ValueError(f"a {MODEL_TYPE} config needs marker_token_id")
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(2 * config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple  # a tuple when config.return_dict is False (the ONNX export)
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
        ).last_hidden_state
        features = marker_features(
            hidden, input_ids, attention_mask, token_type_ids, self.config.marker_token_id
        )
        logits = self.classifier(self.dropout(features))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def register_architecture() -> None:
    """Tell AutoConfig and AutoModelForSequenceClassification about ``stance-bert``
    (idempotent; every loader of a saved model calls it first)."""
    register_config()
    AutoModelForSequenceClassification.register(
        StanceBertConfig, StanceBertForSequenceClassification, exist_ok=True
    )


def marker_token_id(tokenizer) -> int:
    """The token id of the opening mark, checked to be a token of its own for this tokenizer
    (a tokenizer that glues it to the next word would leave the model nothing to read)."""
    ids = tokenizer(f"{MARK_OPEN}Japan{MARK_CLOSE} said", add_special_tokens=False)["input_ids"]
    mark = tokenizer.convert_tokens_to_ids(MARK_OPEN)
    if mark == tokenizer.unk_token_id or not ids or ids[0] != mark:
        raise ValueError(
            f"the tokenizer does not keep the actor mark {MARK_OPEN!r} as a token of its own "
            f"(ids {ids[:4]}); marker pooling needs it (train.pooling: cls does not)"
        )
    return mark


def new_classifier(base: str, pooling: str, tokenizer, **config):
    """The untrained classifier over the encoder at ``base`` (config: num_labels,
    id2label, label2id): the stock BERT [CLS] head, or the marker-reading one, whose
    mark id comes from ``tokenizer`` (checked by `marker_token_id`)."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {list(POOLINGS)}")
    if pooling == "cls":
        return AutoModelForSequenceClassification.from_pretrained(base, **config)
    register_architecture()
    base_config = AutoConfig.from_pretrained(base).to_dict()
    base_config.pop("model_type", None)
    base_config.update(config)
    stance_config = StanceBertConfig(marker_token_id=marker_token_id(tokenizer), **base_config)
    return AutoModelForSequenceClassification.from_pretrained(base, config=stance_config)
