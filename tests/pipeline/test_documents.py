"""The shared document-scoring path (pipeline/documents.py): selection, one call, assembly."""

import pytest

from pipeline.documents import (
    assemble,
    candidates,
    predict_selections,
    score_document,
    score_documents,
)
from pipeline.inference import Prediction
from pipeline.labels import STANCES

TEXTS = [
    "Tokyo said its position had not changed.\nBeijing and Washington both responded.",
    "The ferry left on time.",
    "Taipei thanked Japan. China protested to Japan.",
]


class LengthPredictor:
    """Deterministic: the stance follows the sentence length; records each call's rows."""

    labels = list(STANCES)

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def predict(self, rows, batch_size=32):
        self.calls.append(list(rows))
        out = []
        for sentence, actor in rows:
            stance = STANCES[len(sentence) % len(STANCES)]
            scores = {s: (1.0 if s == stance else 0.0) for s in STANCES}
            out.append(Prediction(actor, stance, scores, False))
        return out


def test_candidates_select_detected_actors_in_sentence_then_actor_order() -> None:
    selection = candidates(TEXTS[0])

    assert [s.text for s in selection.sentences] == [
        "Tokyo said its position had not changed.",
        "Beijing and Washington both responded.",
    ]
    assert selection.rows == [(0, "japan"), (1, "china"), (1, "us")]
    assert selection.pairs()[1] == ("Beijing and Washington both responded.", "china")
    assert candidates(TEXTS[0], ["us", "taiwan"]).rows == [(1, "us")]
    assert candidates(TEXTS[1]).rows == []


def test_many_documents_in_one_predict_call_equal_one_by_one() -> None:
    together = LengthPredictor()
    scored = score_documents(together, TEXTS)

    assert len(together.calls) == 1
    assert len(together.calls[0]) == sum(len(candidates(t).rows) for t in TEXTS)
    assert scored == [score_document(LengthPredictor(), text) for text in TEXTS]
    # Every content sentence is kept; offsets point into each document.
    for text, sentences in zip(TEXTS, scored, strict=True):
        assert [s.index for s in sentences] == list(range(len(sentences)))
        assert all(text[s.start : s.end] == s.text for s in sentences)
    assert [[p.actor for p in s.predictions] for s in scored[2]] == [
        ["japan", "taiwan"],
        ["japan", "china"],
    ]
    assert scored[1][0].predictions == []


def test_assemble_needs_one_prediction_per_row() -> None:
    selection = candidates(TEXTS[0])
    with pytest.raises(ValueError, match="2 predictions for 3 rows"):
        assemble(selection, LengthPredictor().predict(selection.pairs()[:2]))


def test_a_predictor_that_drops_rows_is_an_error() -> None:
    class Short(LengthPredictor):
        def predict(self, rows, batch_size=32):
            return super().predict(rows[:-1], batch_size)

    with pytest.raises(ValueError, match="returned 2 predictions for 3"):
        predict_selections(Short(), [candidates(TEXTS[0])])
