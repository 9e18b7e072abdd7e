"""The configuration of the marker-reading classifier (pipeline/model.py), without torch.

Kept apart from the model so that loading a tokenizer or an ONNX model directory, whose
config.json names ``model_type: stance-bert``, needs no torch: `register_config()` lets
AutoConfig (and AutoTokenizer, which reads the config first) recognise the type.
"""

from __future__ import annotations

from transformers import AutoConfig, BertConfig

MODEL_TYPE = "stance-bert"


class StanceBertConfig(BertConfig):
    model_type = MODEL_TYPE

    def __init__(self, marker_token_id: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.marker_token_id = marker_token_id


def register_config() -> None:
    """Tell AutoConfig about ``stance-bert`` (idempotent)."""
    AutoConfig.register(MODEL_TYPE, StanceBertConfig, exist_ok=True)
